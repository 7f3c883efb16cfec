/**
 * The Participant reconciler, for one txloop app: created while the app has any key in etcd, its
 * status the leader and the figures the leader publishes, Ready and Degraded; deleted once the app
 * has nothing left. A status that differs only in its heartbeat is written at most every
 * heartbeatEveryMs (the leader publishes every few seconds; the apiserver need not hear each one).
 */
import { replicaCount } from '../cli/index.js';
import type { KubeObject } from './api.js';
import { MANAGED_BY, cacheLags, forget, remember, type MirrorContext } from './context.js';
import { keepTransitionTimes, participantStatus, sameStatus, type Condition, type ParticipantStatus } from './objects.js';
import type { ReconcileResult } from '../runtime/index.js';

export async function reconcileParticipant(ctx: MirrorContext, app: string): Promise<ReconcileResult> {
  if (!ctx.leading()) return;
  const { api, model } = ctx;
  let obj = ctx.participants.get(app, api.namespace) as KubeObject | undefined;
  if (cacheLags(ctx, `txp/${app}`, obj)) return { requeueAfterMs: 100 };
  const now = ctx.now();
  const service = model.service(app);
  // Its own records first: only an app without any needs the scan of every key that apps() makes.
  const present = app !== ctx.mirrorApp && (service.leader !== undefined || service.stats !== undefined || service.replicas.length > 0 || model.apps().includes(app));
  if (!present) {
    if (obj && ctx.leading()) {
      await api.delete('participant', app, obj.metadata);
      forget(ctx, `txp/${app}`);
    }
    return;
  }
  if (service.leader?.record) ctx.leaderSeen.set(app, now);
  const { status, recheckAfterMs } = participantStatus({
    service,
    replicas: replicaCount(service),
    now,
    leaderLastSeen: ctx.leaderSeen.get(app),
    watchingSince: ctx.watchingSince,
    leaderlessAfterMs: ctx.leaderlessAfterMs,
    staleAfterMs: ctx.staleAfterMs,
  });
  if (!obj) {
    if (!ctx.leading()) return;
    obj = remember(ctx, `txp/${app}`, await api.applyObject('participant', app, { [MANAGED_BY.key]: MANAGED_BY.value, 'txloop.io/app': app }, { app }));
  }
  const observed = obj.status as ParticipantStatus | undefined;
  status.conditions = keepTransitionTimes(status.conditions, observed?.conditions as Condition[] | undefined, now);
  let after = recheckAfterMs;
  if (!sameStatus(status, observed)) {
    const heartbeatOnly = observed?.lastHeartbeat !== undefined && status.lastHeartbeat !== undefined && sameStatus({ ...status, lastHeartbeat: observed.lastHeartbeat }, observed);
    const due = heartbeatOnly ? Date.parse(observed.lastHeartbeat!) + ctx.heartbeatEveryMs - now : 0;
    if (due > 0) after = after === undefined ? due : Math.min(after, due);
    else if (ctx.leading()) remember(ctx, `txp/${app}`, await api.applyStatus('participant', app, status, obj.metadata.resourceVersion));
  }
  return after !== undefined ? { requeueAfterMs: after + 50 } : undefined;
}
