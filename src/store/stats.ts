/** The leader's published figures (`<ns><app>/stats`), bound to its lease so they vanish with it. */
import { cmp, op, type Fence } from '../etcd/index.js';
import type { StoreEdge } from './edge.js';
import type { ServiceStats } from '../stats.js';

export class StatsStore {
  constructor(private readonly edge: StoreEdge) {}

  /** Writes `stats` while `fence` still holds; false when it no longer does. */
  async publish(app: string, fence: Fence, lease: string, stats: ServiceStats): Promise<boolean> {
    const res = await this.edge.txn([...cmp.fenced(fence)], [op.put(this.edge.keys.stats(app), stats, lease)]);
    return res.succeeded;
  }
}
