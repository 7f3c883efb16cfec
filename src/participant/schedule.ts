/**
 * A resource's retry schedule (max-effort notification): instead of the service's exponential
 * backoff, the delays after each failed attempt, e.g. `['5m', '10m', '30m', '1h', '24h']`; the
 * branch is parked once the last delay has been waited and the attempt after it failed. The next
 * attempt's time is persisted with the branch, as exponential backoff's is, so a schedule survives
 * restarts and leader changes.
 */
import { ValidationError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MAX_STEPS = 100;

/** `'5m'`, `'1.5h'`, `'250ms'` or a number of milliseconds, as milliseconds. */
export function durationMs(value: unknown, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 1) throw new ValidationError(field, `must be at least 1 ms, got ${value}`);
    return Math.round(value);
  }
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim()) : null;
  if (!m) throw new ValidationError(field, `must be a duration like '30s', '5m', '1h', '1d' or a number of ms, got ${JSON.stringify(value)}`);
  const ms = Math.round(Number(m[1]) * UNITS[m[2]!]!);
  if (ms < 1) throw new ValidationError(field, `must be at least 1 ms, got ${JSON.stringify(value)}`);
  return ms;
}

/** The schedule's delays in ms, validated; undefined for the default (exponential backoff). */
export function parseRetrySchedule(retry: unknown, field = 'options.retry'): readonly number[] | undefined {
  if (retry === undefined || retry === 'exponential') return undefined;
  if (!Array.isArray(retry) || retry.length === 0 || retry.length > MAX_STEPS) {
    throw new ValidationError(field, `must be 'exponential' or a list of 1 to ${MAX_STEPS} delays like ['5m', '10m', '1h'], got ${JSON.stringify(retry)}`);
  }
  return retry.map((step, i) => durationMs(step, `${field}[${i}]`));
}
