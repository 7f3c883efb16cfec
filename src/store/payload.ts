/** A caller's payload as it is stored: plain JSON that round-trips, within the size limit. */
import { PayloadError } from '../errors.js';

/** Serialises a user payload, refusing what cannot round-trip through JSON or fit in one etcd value. */
export function encodePayload(payload: unknown, maxBytes: number, field = 'payload'): unknown {
  if (payload === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    throw new PayloadError(field, `is not JSON-serialisable (${(err as Error).message}); pass plain objects, arrays, strings, numbers, booleans or null`);
  }
  if (text === undefined) throw new PayloadError(field, `is not JSON-serialisable (got ${typeof payload}); pass plain data`);
  const size = Buffer.byteLength(text);
  if (size > maxBytes) {
    throw new PayloadError(field, `is ${size} bytes as JSON, over the ${maxBytes}-byte limit (maxPayloadBytes); keep large data in your own store and pass a reference`);
  }
  return JSON.parse(text) as unknown;
}
