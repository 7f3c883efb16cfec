import type { Watcher } from 'etcd3';

/**
 * Cancels an etcd3 watcher without hanging: etcd3 drops a watcher that etcd cancelled (e.g. on
 * compaction) and a second cancel() then waits for a reply that never comes.
 */
export async function cancelWatcher(watcher: Watcher, timeoutMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([watcher.cancel().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
}
