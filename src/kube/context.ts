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
  /** Repair outcomes written but not yet seen back from the apiserver, by object name. */
  outcomes: Map<string, Condition>;
  metrics: MirrorMetrics;
  logger: Logger;
  now(): number;
}
