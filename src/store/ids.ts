/** The ids txloop makes: transaction ids (time-ordered, naming their initiator), branch ids, write ids. */
import { randomBytes } from 'node:crypto';

/** Time-ordered ids: listing keys sorts transactions by creation time. */
export function newXid(app: string, now = Date.now()): string {
  return `${app}.${now.toString(36).padStart(9, '0')}${randomId(8)}`;
}

export function newBranchId(): string {
  return randomId(12);
}

export function newWriteId(): string {
  return randomId(16);
}

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
// Ids are made for every write; one randomBytes call per id showed up in profiles, so draw from a pool.
let pool = Buffer.alloc(0);
let poolAt = 0;

function randomId(length: number): string {
  let out = '';
  // 252 = 7 × 36: rejecting bytes at or above it keeps every character equally likely.
  while (out.length < length) {
    if (poolAt >= pool.length) {
      pool = randomBytes(4096);
      poolAt = 0;
    }
    const b = pool[poolAt++]!;
    if (b < 252) out += ALPHABET[b % 36];
  }
  return out;
}
