/**
 * `<ns><app>/leader`: who holds a service's leadership, bound to its lease (etcd/election.ts writes
 * it, store/parse.ts validates it, `txloop get leaders` shows it). Part of the public API.
 */
export interface LeaderRecord {
  identity: string;
  host: string;
  pid: number;
  since: number;
  /** The lease id, in decimal. */
  lease: string;
}
