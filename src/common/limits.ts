/**
 * Request limits, checked by the client before sending and by the node on
 * receipt. They are part of the protocol (DESIGN.md §6).
 */

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
