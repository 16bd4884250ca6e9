/**
 * The client's checks of what a caller passes, before anything is sent: keys and values
 * within the limits of `common/limits.ts`, as the bytes that go on the wire.
 */
import { checkKeyBytes, checkTtl, checkValueBytes } from '../common/index.js';
import { KVError } from './errors.js';

const encoder = new TextEncoder();

/** Validates and encodes a key; rejects with INVALID_ARGUMENT naming the limit. */
export function keyToBytes(key: unknown): Uint8Array {
  if (typeof key !== 'string') throw new KVError('INVALID_ARGUMENT', `key must be a string, got ${typeof key}`);
  const bytes = encoder.encode(key);
  const check = checkKeyBytes(bytes);
  if (!check.ok) throw new KVError('INVALID_ARGUMENT', check.message);
  return bytes;
}

/** Validates and encodes a value; rejects with INVALID_ARGUMENT naming the limit. */
export function valueToBytes(value: unknown): Uint8Array {
  let bytes: Uint8Array;
  if (typeof value === 'string') bytes = encoder.encode(value);
  else if (value instanceof Uint8Array) bytes = value;
  else throw new KVError('INVALID_ARGUMENT', `value must be a string or Uint8Array, got ${typeof value}`);
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
