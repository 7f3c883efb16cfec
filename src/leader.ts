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

/**
 * `<ns><app>/replica/<replicaId>`: one live replica of a service, leader or standby, bound to its
 * election lease, so it vanishes when the replica closes (its lease revoked) or dies (its lease
 * expires after the TTL). The replica id is the lease id in hex. etcd/election.ts writes it when the
 * lease is granted, store/parse.ts validates it, `txloop get leaders` counts them (REPLICAS). Part of
 * the public API.
 */
export interface ReplicaRecord {
  identity: string;
  host: string;
  pid: number;
  /** When its lease was granted (ms since the epoch): a replica that renews its lease announces itself again. */
  since: number;
  /** The lease id, in decimal (the key's replica id is the same id in hex). */
  lease: string;
}
