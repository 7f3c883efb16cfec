/** Builds the etcd3 client from connection options; TLS and auth are passed through untouched. */
import { noop } from 'cockatiel';
import { Etcd3, type IOptions } from 'etcd3';
import { defaultEndpoints, validateEndpoints, type EtcdConnectionOptions } from './options.js';

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
    grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 },
    // etcd3's default per-host circuit breaker fails every call for 5 s after three failures, with a
    // message that names no endpoint, and keeps failing a while after etcd is back; txloop's loops
    // back off with jitter themselves. The global policy (retry on another member) stays.
    faultHandling: { host: () => noop },
  };
  if (options.credentials) config.credentials = options.credentials;
  if (options.auth) config.auth = { username: options.auth.username, password: options.auth.password };
  return new Etcd3(config);
}
