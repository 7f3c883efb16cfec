import { pino, type Logger } from 'pino';

/** Default logger: JSON lines on stderr; secrets (etcd passwords, TLS keys) are redacted if ever passed in. */
export function defaultLogger(): Logger {
  return pino(
    {
      name: 'txloop',
      level: process.env.TXLOOP_LOG_LEVEL ?? 'info',
      redact: { paths: ['password', '*.password', 'auth', '*.auth', 'credentials', '*.credentials', 'privateKey', '*.privateKey'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}
