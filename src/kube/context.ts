/** What the mirror's reconcilers share: the etcd model, the apiserver's objects, the edge to write through. */
import type { ListWatch, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Model } from '../cli/index.js';
import type { Store } from '../store/index.js';
import type { KubeApi, KubeObject } from './api.js';
import type { Condition } from './objects.js';
import type { MirrorMetrics } from './metrics.js';

/** The label the mirror puts on the objects it creates: only those it deletes while their transaction lives. */
export const MANAGED_BY = { key: 'app.kubernetes.io/managed-by', value: 'txloop-mirror' } as const;

export interface MirrorContext {
  api: KubeApi;
  /** The txloop namespace in etcd, as the CLI models it (kept by the informer). */
  model: Model;
  store: Store;
  transactions: ListWatch<KubeObject & KubernetesObject>;
  participants: ListWatch<KubeObject & KubernetesObject>;
  /** Whether this replica leads now: checked right before each write. */
  leading(): boolean;
  graceMs: number;
  /** The services' lease TTL: an app without a leader for longer is Degraded. */
  leaderlessAfterMs: number;
  /** A leader's figures older than this do not make its app Ready. */
  staleAfterMs: number;
  /** A heartbeat-only status change is written at most this often. */
  heartbeatEveryMs: number;
  /** The app name the mirror's own election uses: not a Participant. */
  mirrorApp: string;
  /** When the mirror last saw each app with a leader. */
  leaderSeen: Map<string, number>;
  watchingSince: number;
  /** Repair outcomes not yet seen back from the apiserver, by object name, for the object (uid) they answer. */
  outcomes: Map<string, { uid: string | undefined; condition: Condition }>;
  /** The resourceVersion of the mirror's last write of each object (`txn/<name>`, `txp/<name>`), and when, until the cache shows it. */
  written: Map<string, { version: string; at: number }>;
  metrics: MirrorMetrics;
  logger: Logger;
  now(): number;
}

/** Whether `a` is a later resourceVersion than `b` (they are etcd revisions; opaque ones are never "later"). */
function laterVersion(a: string, b: string | undefined): boolean {
  return b !== undefined && /^\d+$/.test(a) && /^\d+$/.test(b) && BigInt(a) > BigInt(b);
}

/** How long a write may take to come back through the watch before the cache is trusted again (a watch that died is restarted meanwhile). */
const LAG_LIMIT_MS = 5_000;

/**
 * Whether the cache still shows `key` from before the mirror's own last write of it (or not yet at
 * all, after a create): acting on it would undo that write, or run a repair again, so the
 * reconcile waits for the watch to catch up — for LAG_LIMIT_MS at most.
 */
export function cacheLags(ctx: MirrorContext, key: string, cached: KubeObject | undefined): boolean {
  const mine = ctx.written.get(key);
  if (mine === undefined) return false;
  if (ctx.now() - mine.at > LAG_LIMIT_MS || (cached && !laterVersion(mine.version, cached.metadata.resourceVersion))) {
    ctx.written.delete(key);
    return false;
  }
  return true;
}

/** Notes the version a write returned, for cacheLags. */
export function remember(ctx: MirrorContext, key: string, obj: KubeObject): KubeObject {
  if (obj.metadata.resourceVersion !== undefined) ctx.written.set(key, { version: obj.metadata.resourceVersion, at: ctx.now() });
  return obj;
}

/** The object is gone by the mirror's own delete: nothing to wait for. */
export function forget(ctx: MirrorContext, key: string): void {
  ctx.written.delete(key);
}
