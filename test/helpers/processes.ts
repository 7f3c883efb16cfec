/** Spawns fixture services (test/fixtures/) as real processes and follows their JSON-line reports. */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { JsonLineProcess } from '../../tools/processes.js';

export interface Replica {
  readonly identity: string;
  readonly child: ChildProcess;
  readonly events: Record<string, unknown>[];
  readonly stderr: string[];
  exited(): boolean;
  kill(signal: NodeJS.Signals): void;
  waitForEvent(match: (e: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

class FixtureReplica implements Replica {
  readonly process: JsonLineProcess;

  constructor(
    fixture: string,
    readonly identity: string,
    env: Record<string, string>,
  ) {
    const script = fileURLToPath(new URL(`../fixtures/${fixture}`, import.meta.url));
    this.process = new JsonLineProcess({ name: identity, script, env: { IDENTITY: identity, ...env } });
  }

  get child(): ChildProcess {
    return this.process.child;
  }

  get events(): Record<string, unknown>[] {
    return this.process.events;
  }

  get stderr(): string[] {
    return this.process.stderr;
  }

  exited(): boolean {
    return this.process.hasExited();
  }

  kill(signal: NodeJS.Signals): void {
    this.process.kill(signal);
  }

  waitForEvent(match: (e: Record<string, unknown>) => boolean, what: string, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    return this.process.waitForEvent(match, what, { timeoutMs });
  }
}

/** Runs test/fixtures/<fixture> with IDENTITY=identity and `env` added to this process's environment. */
export function spawnReplica(fixture: string, identity: string, env: Record<string, string>): Replica {
  return new FixtureReplica(fixture, identity, env);
}

/** SIGKILLs the replica (resuming it first, should it be stopped) and waits until it is gone. */
export async function stopReplica(r: Replica): Promise<void> {
  if (!(r instanceof FixtureReplica)) throw new Error(`${r.identity} was not started by spawnReplica`);
  await r.process.killNow();
}
