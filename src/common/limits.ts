/**
 * Request limits, checked by the client before sending and by the node on
 * receipt. They are part of the protocol (DESIGN.md §6).
 */
import { hashTagProblem, shardForKey } from './hash.js';

/** Smallest key, in bytes of UTF-8. */
export const MIN_KEY_BYTES = 1;
/** Largest key, in bytes of UTF-8. */
export const MAX_KEY_BYTES = 20;
/** Largest value, in bytes. */
export const MAX_VALUE_BYTES = 1024;
/**
 * Most requests in one `BatchRequest` message. The client splits its queue into messages of at
 * most this many; a node refuses a larger message whole (every item INVALID_ARGUMENT). With the
 * key and value limits it bounds the largest legal message, which is what the node's client
 * service lets in (`src/node/client-limits.ts`).
 */
export const MAX_BATCH_ITEMS = 256;

/**
 * Most compares in one transaction, and most operations in each of its branches (success,
 * failure). etcd's default `--max-txn-ops` is 128 for all of them together.
 */
export const MAX_TXN_OPS = 64;
/** Most bytes of keys and values together in one transaction (both branches and the compares). */
export const MAX_TXN_BYTES = 64 * 1024;
/**
 * The room a transaction takes in a BatchRequest, counted in single-key items: a message holds
 * at most MAX_BATCH_ITEMS items' room, so its bytes stay within what 256 of the largest
 * single-key items take (the node's Batch message limit), whatever transactions are in it. The
 * largest legal transaction is smaller than this many of the largest items (a node test checks it).
 */
export const TXN_BATCH_SLOTS = 64;

/**
 * How many of `items`, from index `from`, the next Batch message takes: at most MAX_BATCH_ITEMS items' room, a
 * transaction (request or response: 64 gets answer up to 64 values) taking TXN_BATCH_SLOTS, and
 * at least one item. Used by the client for requests and by the node for responses.
 */
export function batchChunkLength<T>(items: readonly T[], isTxn: (item: T) => boolean, from = 0): number {
  let room = MAX_BATCH_ITEMS;
  let length = 0;
  for (let i = from; i < items.length; i++) {
    const slots = isTxn(items[i] as T) ? TXN_BATCH_SLOTS : 1;
    if (slots > room && length > 0) break;
    room -= slots;
    length += 1;
    if (room <= 0) break;
  }
  return length;
}

/**
 * The longest TTL a key may have: 365 days, in ms. Expiry times are log time (ms since the
 * epoch), so any TTL up to this keeps them far inside what the encoders carry.
 */
export const MAX_TTL_MS = 365 * 24 * 3600 * 1000;

/** A broken limit, as a value: `{ ok: false, message }` names what was wrong and the limit. */
export type LimitCheck = { ok: true } | { ok: false; message: string };

const OK: LimitCheck = { ok: true };

/** Checks a key given as its UTF-8 bytes. */
export function checkKeyBytes(key: Uint8Array): LimitCheck {
  if (key.length < MIN_KEY_BYTES) return { ok: false, message: 'key is empty: a key is 1–20 bytes of UTF-8' };
  if (key.length > MAX_KEY_BYTES) {
    return { ok: false, message: `key is ${key.length} bytes of UTF-8: the limit is ${MAX_KEY_BYTES} bytes` };
  }
  if (!isValidUtf8(key)) return { ok: false, message: 'key is not valid UTF-8' };
  const tagProblem = hashTagProblem(key);
  if (tagProblem !== undefined) return { ok: false, message: tagProblem };
  return OK;
}

/** Checks a value's size. */
export function checkValueBytes(value: Uint8Array): LimitCheck {
  if (value.length > MAX_VALUE_BYTES) {
    return { ok: false, message: `value is ${value.length} bytes: the limit is ${MAX_VALUE_BYTES} bytes` };
  }
  return OK;
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** True when `bytes` decode as UTF-8 without replacement characters. */
export function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    strictDecoder.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** One key a transaction names: in a compare or an operation, with the value it compares or puts. */
export interface TxnKeyUse {
  key: Uint8Array;
  value?: Uint8Array | undefined;
  /** True for a put or a delete. */
  writes: boolean;
  /** A put's TTL in ms (0 or absent: none). */
  ttlMs?: number | undefined;
}

/** A transaction as its limits see it. */
export interface TxnShape {
  compares: readonly TxnKeyUse[];
  success: readonly TxnKeyUse[];
  failure: readonly TxnKeyUse[];
}

/** A transaction within its limits, with the shard of its keys and its first key; or what broke a limit. */
export type TxnCheck = { ok: true; shardId: number; key: Uint8Array } | { ok: false; message: string };

/**
 * Checks a transaction: at most {@link MAX_TXN_OPS} compares and operations per branch,
 * {@link MAX_TXN_BYTES} of keys and values, each key and value within its own limit, no key
 * written twice in one branch, and every key in one shard (of `shardCount`). The client
 * checks before sending, the node again on receipt; the message names the rule.
 */
export function checkTxn(txn: TxnShape, shardCount: number): TxnCheck {
  const parts = [['compare', 'compares', txn.compares], ['success operation', 'success operations', txn.success], ['failure operation', 'failure operations', txn.failure]] as const;
  let bytes = 0;
  for (const [, plural, uses] of parts) {
    if (uses.length > MAX_TXN_OPS) return { ok: false, message: `transaction has ${uses.length} ${plural}: the limit is ${MAX_TXN_OPS}` };
    for (const use of uses) bytes += use.key.length + (use.value?.length ?? 0);
  }
  if (bytes > MAX_TXN_BYTES) {
    return { ok: false, message: `transaction holds ${bytes} bytes of keys and values: the limit is ${MAX_TXN_BYTES}` };
  }
  let first: { key: Uint8Array; shardId: number } | undefined;
  for (const [name, , uses] of parts) {
    const written = new Set<string>();
    for (const [i, use] of uses.entries()) {
      const where = `${name} ${i + 1}`;
      const key = checkKeyBytes(use.key);
      if (!key.ok) return { ok: false, message: `${where}: ${key.message}` };
      if (use.value !== undefined) {
        const value = checkValueBytes(use.value);
        if (!value.ok) return { ok: false, message: `${where}: ${value.message}` };
      }
      const ttl = checkTtl(use.ttlMs ?? 0);
      if (!ttl.ok) return { ok: false, message: `${where}: ${ttl.message}` };
      if (use.writes) {
        const id = Buffer.from(use.key).toString('latin1');
        if (written.has(id)) {
          return { ok: false, message: `${where} writes ${printableKey(use.key)} again: a transaction writes each key at most once per branch` };
        }
        written.add(id);
      }
      const shardId = shardForKey(use.key, shardCount);
      if (first === undefined) first = { key: use.key, shardId };
      else if (shardId !== first.shardId) {
        return {
          ok: false,
          message: `transaction spans shards ${first.shardId} (key ${printableKey(first.key)}) and ${shardId} (key ${printableKey(use.key)}): ` +
            'all its keys must be in one shard; give them one hash tag, e.g. {user42}cart and {user42}order',
        };
      }
    }
  }
  if (first === undefined) return { ok: false, message: 'transaction has no compare and no operation' };
  return { ok: true, shardId: first.shardId, key: first.key };
}

/** A key for an error message: its UTF-8 text, quoted. */
function printableKey(key: Uint8Array): string {
  return JSON.stringify(Buffer.from(key).toString('utf8'));
}

/** Checks a TTL in ms: 0 (none), or a whole number from 1 to {@link MAX_TTL_MS}. */
export function checkTtl(ttlMs: number): LimitCheck {
  if (ttlMs === 0) return OK;
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS) {
    return { ok: false, message: `TTL of ${ttlMs} ms: a TTL is a whole number of ms from 1 to ${MAX_TTL_MS} (365 days)` };
  }
  return OK;
}
