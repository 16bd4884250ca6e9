/**
 * The client's checks of what a caller passes, before anything is sent: keys and values
 * within the limits of `common/limits.ts`, as the bytes that go on the wire.
 */
import { checkKeyBytes, checkTtl, checkValueBytes } from '../common/index.js';
import { KVError } from './errors.js';

/**
 * Validates and encodes a key; rejects with INVALID_ARGUMENT naming the limit. The bytes are the
 * call's own (a Buffer, as the wire types want it): every attempt of the call sends them as they are.
 */
export function keyToBytes(key: unknown): Buffer {
  if (typeof key !== 'string') throw new KVError('INVALID_ARGUMENT', `key must be a string, got ${typeof key}`);
  const bytes = Buffer.from(key, 'utf8');
  const check = checkKeyBytes(bytes);
  if (!check.ok) throw new KVError('INVALID_ARGUMENT', check.message);
  return bytes;
}

/**
 * Validates and encodes a value; rejects with INVALID_ARGUMENT naming the limit. A string is
 * encoded once; a Uint8Array is copied once, so that the caller changing it after the call
 * changes nothing that a retry of the call sends.
 */
export function valueToBytes(value: unknown): Buffer {
  if (typeof value === 'string') return checkedValue(Buffer.from(value, 'utf8'));
  // Checked before the copy: an oversized array is refused without being copied.
  if (value instanceof Uint8Array) return Buffer.from(checkedValue(value));
  throw new KVError('INVALID_ARGUMENT', `value must be a string or Uint8Array, got ${typeof value}`);
}

function checkedValue<T extends Uint8Array>(bytes: T): T {
  const check = checkValueBytes(bytes);
  if (!check.ok) throw new KVError('INVALID_ARGUMENT', check.message);
  return bytes;
}

/** Validates a `ttlMs` option: absent is 0 (no TTL); else 1 ms to 365 days. */
export function ttlOf(ttlMs: unknown): number {
  if (ttlMs === undefined) return 0;
  if (typeof ttlMs !== 'number') throw new KVError('INVALID_ARGUMENT', `ttlMs must be a number of ms, got ${typeof ttlMs}`);
  const check = checkTtl(ttlMs);
  if (!check.ok || ttlMs === 0) throw new KVError('INVALID_ARGUMENT', check.ok ? 'ttlMs of 0: leave it out for a key that never expires' : check.message);
  return ttlMs;
}
