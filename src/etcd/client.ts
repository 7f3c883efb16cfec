/** Builds the etcd3 client from connection options; TLS and auth are passed through untouched. */
import { Etcd3, type IOptions } from 'etcd3';
import { etcdFaultHandling } from './fault-handling.js';
import { MAX_RECEIVE_MESSAGE_BYTES } from './range.js';
import { defaultEndpoints, validateEndpoints, type EtcdConnectionOptions } from '../options.js';

export function createEtcdClient(options: EtcdConnectionOptions = {}): Etcd3 {
  const hosts = options.endpoints ? validateEndpoints(options.endpoints) : defaultEndpoints();
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const config: IOptions = {
    hosts,
    dialTimeout: options.dialTimeoutMs ?? 5_000,
    // A hung etcd (partitioned, paused) must not hang calls forever; streams (watch, keep-alive)
    // are long-lived by design and get no deadline.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
    // One watch response carries every event of a revision range; past gRPC's default 4 MiB limit
    // etcd3 silently restarts the watch at the current revision, skipping events.
    grpcOptions: { 'grpc.max_receive_message_length': MAX_RECEIVE_MESSAGE_BYTES },
    faultHandling: etcdFaultHandling(hosts.length),
  };
  if (options.credentials) config.credentials = options.credentials;
  if (options.auth) config.auth = { username: options.auth.username, password: options.auth.password };
  return new Etcd3(config);
}
