/**
 * `txloop mirror`: the Kubernetes status mirror (src/kube/). Connects to etcd with the CLI's own
 * connection flags (--endpoints, TLS, --user, --namespace, TXLOOP_* defaults) and to the apiserver
 * with --kubeconfig, KUBECONFIG or the pod's service account. Prints `{"event":"ready","url":…}`
 * once it listens; logs (pino JSON) go to stderr; SIGTERM or SIGINT resign and stop it.
 */
import { hostname } from 'node:os';
import { Command } from 'commander';
import { pino } from 'pino';
import { createEtcdClient } from '../../etcd/index.js';
import type { Mirror } from '../../kube/index.js';
import { etcdOptionsOf, parseDuration, resolveConnection, type GlobalOptions } from '../connection.js';
import { CliError, UsageError } from '../errors.js';
import { listenOf } from './sidecar.js';

interface MirrorFlags {
  kubeNamespace?: string;
  kubeconfig?: string;
  identity?: string;
  listen: string;
  leaseTtl: string;
  grace: string;
  resync: string;
  serviceLeaseTtl: string;
  startTimeout: string;
  logLevel: string;
}

/** RFC 1123 label: a Kubernetes namespace name. */
const NAMESPACE_RE = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

export function mirrorCommand(name: string): Command {
  return new Command('mirror')
    .description('Mirror txloop into Kubernetes: a Participant per app, a Transaction per transaction that needs eyes; run the repairs asked in spec.repair')
    .option('--kube-namespace <name>', "where the objects live (default: the pod's namespace, else default)")
    .option('--kubeconfig <file>', 'kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or the pod service account)')
    .option('--identity <name>', "this replica's name in the mirror's election (default host/pid)")
    .option('--listen <host:port>', 'where /healthz, /readyz and /metrics are served', '127.0.0.1:7481')
    .option('--lease-ttl <duration>', "the mirror's own leader lease", '10s')
    .option('--grace <duration>', 'a transaction not finished this long past its deadline is mirrored', '1m')
    .option('--resync <duration>', 'relist both sides and look at every object this often', '5m')
    .option('--service-lease-ttl <duration>', "the services' lease TTL: an app without a leader for longer is Degraded", '10s')
    .option('--start-timeout <duration>', 'give up when etcd has not answered the first list by then', '30s')
    .option('--log-level <level>', 'pino level of the logs on stderr', 'info')
    .addHelpText(
      'after',
      `
Only one replica writes (its own etcd lease, <namespace>txloop-mirror/leader); the others keep their
caches warm and take over when it goes. Repairs: set spec.repair on a Transaction
(kubectl patch txn XID --type merge -p '{"spec":{"repair":{"action":"retry","reason":"ledger back"}}}')
or annotate it (txloop.io/repair=retry, txloop.io/repair-reason=...; -branch, -as for resolve).

Example:
  ${name} mirror --endpoints http://127.0.0.1:2379 --kubeconfig ~/.kube/config --kube-namespace txloop`,
    )
    .action(async (...params: unknown[]) => {
      const cmd = params[params.length - 1] as Command;
      const flags = cmd.opts<MirrorFlags>();
      // Loaded only for this command: the Kubernetes client costs every other command ~0.5 s and ~100 MB.
      const { Mirror, podNamespace, serveMirror } = await import('../../kube/index.js');
      const connection = resolveConnection(cmd.optsWithGlobals<GlobalOptions>());
      const kubeNamespace = flags.kubeNamespace ?? podNamespace() ?? 'default';
      if (!NAMESPACE_RE.test(kubeNamespace)) throw new UsageError(`invalid --kube-namespace ${JSON.stringify(kubeNamespace)}: a Kubernetes namespace name (lower case letters, digits, '-')`);
      const listen = listenOf(flags.listen);
      const leaseTtlSeconds = Math.round(parseDuration(flags.leaseTtl, '--lease-ttl') / 1000);
      if (leaseTtlSeconds < 2) throw new UsageError('invalid --lease-ttl: at least 2s');
      const graceMs = parseDuration(flags.grace, '--grace', 30 * 86_400_000);
      const resyncMs = parseDuration(flags.resync, '--resync', 86_400_000);
      const leaderlessAfterMs = parseDuration(flags.serviceLeaseTtl, '--service-lease-ttl');
      const startTimeoutMs = parseDuration(flags.startTimeout, '--start-timeout');
      const identity = flags.identity ?? `${hostname()}/${process.pid}`;
      const logger = pino({ level: flags.logLevel, base: { component: 'mirror', identity } }, pino.destination(2));

      // client-node's watch restarts run un-awaited (an auth plugin failing there rejects nowhere):
      // log it and go on, the mirror's own backoff restarts the watch, rather than let Node exit.
      process.on('unhandledRejection', (err) => logger.error({ err: err instanceof Error ? err.message : String(err) }, 'unhandled rejection (ignored)'));
      const client = createEtcdClient(etcdOptionsOf(connection));
      let mirror: Mirror;
      try {
        mirror = new Mirror({ client, namespace: connection.namespace, endpoints: connection.endpoints, kubeNamespace, ...(flags.kubeconfig !== undefined ? { kubeconfig: flags.kubeconfig } : {}), logger, identity, leaseTtlSeconds, graceMs, resyncMs, leaderlessAfterMs });
      } catch (err) {
        client.close();
        throw new CliError(`mirror: ${(err as Error).message}`);
      }
      // A referenced timer, not withDeadline's unref'd one: with etcd unreachable nothing else keeps
      // Node alive, and it would exit 13 (an unsettled await) before saying why.
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          mirror.start(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new CliError(`mirror: etcd at ${connection.endpoints.join(',')} did not answer the first list within ${startTimeoutMs / 1000}s (--start-timeout)`)), startTimeoutMs);
          }),
        ]);
      } catch (err) {
        await mirror.close().catch(() => undefined);
        client.close();
        throw err instanceof CliError ? err : new CliError(`mirror: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
      const server = await serveMirror(mirror, listen);
      logger.info({ url: server.url, kubeNamespace, apiserver: mirror.api.server, etcdNamespace: connection.namespace }, 'mirror started');
      process.stdout.write(`${JSON.stringify({ event: 'ready', url: server.url })}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      logger.info('stopping: resigning leadership');
      await mirror.close();
      await server.close();
      client.close();
    });
}
