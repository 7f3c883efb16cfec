/**
 * etcd's own counters, scraped from its /metrics endpoint (served on the client URL): raft proposals
 * committed, watch events sent, and the bytes its gRPC server received from and sent to clients. The
 * bench takes them before and after a phase, so each figure is what etcd itself did for it.
 */
export interface EtcdCounters {
  proposals: number;
  watchEvents: number;
  /** gRPC messages etcd sent on Watch streams (one may carry several events). */
  watchMessages: number;
  bytesReceived: number;
  bytesSent: number;
}

const SERIES: Record<Exclude<keyof EtcdCounters, 'watchMessages'>, string> = {
  proposals: 'etcd_server_proposals_committed_total',
  watchEvents: 'etcd_debugging_mvcc_events_total',
  bytesReceived: 'etcd_network_client_grpc_received_bytes_total',
  bytesSent: 'etcd_network_client_grpc_sent_bytes_total',
};

export async function scrapeEtcd(endpoint: string): Promise<EtcdCounters> {
  const res = await fetch(`${endpoint.replace(/\/$/, '')}/metrics`);
  if (!res.ok) throw new Error(`etcd /metrics at ${endpoint}: HTTP ${res.status}`);
  const text = await res.text();
  const value = (name: string, labels = ''): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels}`) && (labels !== '' || l[name.length] === ' '));
    if (!line) throw new Error(`etcd /metrics has no ${name}${labels}`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  return {
    proposals: value(SERIES.proposals),
    watchEvents: value(SERIES.watchEvents),
    watchMessages: value('grpc_server_msg_sent_total', '{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}'),
    bytesReceived: value(SERIES.bytesReceived),
    bytesSent: value(SERIES.bytesSent),
  };
}

export function diffCounters(a: EtcdCounters, b: EtcdCounters): EtcdCounters {
  return {
    proposals: b.proposals - a.proposals,
    watchEvents: b.watchEvents - a.watchEvents,
    watchMessages: b.watchMessages - a.watchMessages,
    bytesReceived: b.bytesReceived - a.bytesReceived,
    bytesSent: b.bytesSent - a.bytesSent,
  };
}
