/**
 * `txloop sidecar` (also the `txloop-sidecar` binary): runs one txloop service beside a service in
 * any language and serves it api/openapi.yaml on localhost. The connection flags are the CLI's own
 * (--endpoints, TLS, --user, --namespace, TXLOOP_* defaults). Prints `{"event":"ready","url":…}` on
 * stdout once it listens; logs (pino JSON) go to stderr; SIGTERM or SIGINT stop it gracefully.
 */
import { readFileSync, statSync } from 'node:fs';
import { Command } from 'commander';
import { pino } from 'pino';
import { startSidecar, loadResourcesFile } from '../../sidecar/index.js';
import { etcdOptionsOf, parseDuration, resolveConnection, type GlobalOptions } from '../connection.js';
import { UsageError } from '../errors.js';

interface SidecarFlags {
  app?: string;
  listen: string;
  listenUnsafeAny?: boolean;
  serviceUrl?: string;
  resources?: string;
  tokenFile?: string;
  maxAttempts?: string;
  handlerTimeout?: string;
  leaseTtl?: string;
  retention?: string;
  startTimeout?: string;
  restTccAllow?: string;
  logLevel: string;
}

export const SIDECAR_ENV = { app: 'TXLOOP_APP', serviceUrl: 'TXLOOP_SERVICE_URL', resources: 'TXLOOP_SIDECAR_RESOURCES', token: 'TXLOOP_SIDECAR_TOKEN', listen: 'TXLOOP_SIDECAR_LISTEN' } as const;

export function sidecarCommand(name: string): Command {
  return new Command('sidecar')
    .description('Run one txloop service beside a service in any language, serving it over localhost HTTP (api/openapi.yaml)')
    .option('--app <name>', `the service's app name (env ${SIDECAR_ENV.app})`)
    .option('--listen <host:port>', `where to listen; port 0 picks a free one (env ${SIDECAR_ENV.listen})`, process.env[SIDECAR_ENV.listen] ?? '127.0.0.1:7480')
    .option('--listen-unsafe-any', 'allow a non-loopback --listen without a token')
    .option('--service-url <url>', `where the service listens for phase-2 callbacks (env ${SIDECAR_ENV.serviceUrl})`)
    .option('--resources <file>', `the resources file, YAML: each resource's callback paths (env ${SIDECAR_ENV.resources})`)
    .option('--token-file <file>', `a bearer token both directions carry (or the token itself in env ${SIDECAR_ENV.token})`)
    .option('--max-attempts <n>', 'phase-2 attempts before a branch is parked (default 10)')
    .option('--handler-timeout <duration>', 'a callback running longer is a failed attempt (default 30s)')
    .option('--lease-ttl <seconds>', 'leader lease TTL (default 10)')
    .option('--retention <duration>', 'how long finished transactions are kept (default 1h, at most 30d)')
    .option('--rest-tcc-allow <origins>', 'REST-TCC participants (http://host:port, comma-separated) the coordinator may PUT/DELETE besides loopback ones')
    .option('--start-timeout <duration>', 'give up when etcd has not answered the first list by then (default 30s)')
    .option('--log-level <level>', 'pino level of the logs on stderr', 'info')
    .addHelpText(
      'after',
      `
The resources file:
  resources:
    debit:   { try: /debit/try, confirm: /debit/confirm, cancel: /debit/cancel, retry: ['5m', '1h'] }
    reserve: { action: /reserve/action, compensate: /reserve/compensate }
    receipt: { deliver: /receipt/deliver }
  checkBacks:
    order paid: /checkback/order-paid

Example:
  ${name} sidecar --app bank-go --endpoints http://127.0.0.1:2379 --service-url http://127.0.0.1:8081 --resources resources.yaml`,
    )
    .action(async (...params: unknown[]) => {
      const cmd = params[params.length - 1] as Command;
      const flags = cmd.opts<SidecarFlags>();
      const connection = resolveConnection(cmd.optsWithGlobals<GlobalOptions>());
      const app = flags.app ?? process.env[SIDECAR_ENV.app];
      const serviceUrl = flags.serviceUrl ?? process.env[SIDECAR_ENV.serviceUrl];
      const resourcesPath = flags.resources ?? process.env[SIDECAR_ENV.resources];
      if (!app) throw new UsageError(`--app is required (or ${SIDECAR_ENV.app})`);
      if (!serviceUrl) throw new UsageError(`--service-url is required (or ${SIDECAR_ENV.serviceUrl}): where the sidecar calls the service back`);
      if (!resourcesPath) throw new UsageError(`--resources is required (or ${SIDECAR_ENV.resources})`);
      const token = tokenOf(flags.tokenFile);
      const logger = pino({ level: flags.logLevel, base: { app } }, pino.destination(2));
      const sidecar = await startSidecar({
        app,
        namespace: connection.namespace,
        etcd: etcdOptionsOf(connection),
        listen: listenOf(flags.listen),
        unsafeAnyAddress: flags.listenUnsafeAny ?? false,
        serviceUrl,
        ...(token ? { token } : {}),
        resources: loadResourcesFile(resourcesPath),
        logger,
        ...(flags.restTccAllow !== undefined ? { restTccAllow: originsOf(flags.restTccAllow) } : {}),
        ...(flags.startTimeout !== undefined ? { startTimeoutMs: parseDuration(flags.startTimeout, '--start-timeout') } : {}),
        service: {
          ...(flags.maxAttempts !== undefined ? { maxAttempts: positive(flags.maxAttempts, '--max-attempts') } : {}),
          ...(flags.handlerTimeout !== undefined ? { handlerTimeoutMs: parseDuration(flags.handlerTimeout, '--handler-timeout') } : {}),
          ...(flags.leaseTtl !== undefined ? { leaseTtlSeconds: positive(flags.leaseTtl, '--lease-ttl') } : {}),
          ...(flags.retention !== undefined ? { retentionMs: parseDuration(flags.retention, '--retention', 30 * 86_400_000) } : {}),
        },
      });
      process.stdout.write(`${JSON.stringify({ event: 'ready', url: sidecar.url, app })}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      logger.info('stopping: finishing requests in flight, resigning leadership');
      await sidecar.close();
    });
}

export function listenOf(value: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`invalid --listen ${JSON.stringify(value)}: use host:port, e.g. 127.0.0.1:7480 (port 0 picks a free one)`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function tokenOf(file: string | undefined): string | undefined {
  let token = process.env[SIDECAR_ENV.token];
  if (file !== undefined) {
    try {
      // A regular file of a token's size: not a FIFO or a device the read would hang on.
      const st = statSync(file);
      if (!st.isFile() || st.size > 4096) throw new UsageError(`--token-file ${file} must be a regular file of at most 4 KiB holding the token`);
      token = readFileSync(file, 'utf8');
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`cannot read --token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  token = token?.trim();
  if (token !== undefined && !/^[!-~]{16,512}$/.test(token)) throw new UsageError('the sidecar token must be 16-512 printable characters without spaces');
  return token || undefined;
}

function originsOf(value: string): string[] {
  return value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean)
    .map((v) => {
      let url: URL;
      try {
        url = new URL(v);
      } catch {
        throw new UsageError(`invalid --rest-tcc-allow ${JSON.stringify(v)}: use origins like http://10.0.0.5:8080`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`invalid --rest-tcc-allow ${JSON.stringify(v)}: http:// or https:// only`);
      return url.origin;
    });
}

function positive(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`invalid ${flag} ${JSON.stringify(v)}: a whole number from 1`);
  return n;
}
