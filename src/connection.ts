/** How to reach etcd: the connection options a service, the CLI and the bench share (etcd/client.ts uses them). */

/** How to reach etcd. TLS material and credentials are handed to the client unchanged and never logged. */
export interface EtcdConnectionOptions {
  /** etcd client URLs. @default process.env.TXLOOP_ENDPOINTS split on ',', else ['http://127.0.0.1:2379'] */
  endpoints?: string[];
  /** TLS: CA certificate, and the client certificate/key for mutual TLS. */
  credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  /** etcd user authentication. */
  auth?: { username: string; password: string };
  /** @default 5_000 */
  dialTimeoutMs?: number;
  /** Deadline of each etcd request (not of watch or keep-alive streams). @default 10_000 */
  requestTimeoutMs?: number;
}
