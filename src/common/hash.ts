/**
 * The key → shard function, part of the protocol: `xxh64(utf8(hashed part), seed 0) mod S`.
 * Any client in any language can compute it.
 *
 * Hash tags, as in Redis Cluster: when a key contains `{`, only the bytes between the first
 * `{` and the first `}` after it are hashed, so `{u42}cart` and `{u42}order` always share a
 * shard (a transaction may then cover both). A key without `{` is hashed whole, exactly as
 * before hash tags existed. The tag must be closed and non-empty (`checkKeyBytes` refuses
 * `{u42` and `{}cart`), so every accepted key has exactly one hashed part.
 */
import xxhash from 'xxhash-wasm';

type Hasher = Awaited<ReturnType<typeof xxhash>>;

let hasher: Hasher | undefined;
let loading: Promise<Hasher> | undefined;

/** Loads the WebAssembly hasher once per process; call (and await) before {@link shardForKey}. */
export async function loadHasher(): Promise<void> {
  if (hasher !== undefined) return;
  loading ??= xxhash();
  hasher = await loading;
}

/**
 * The shard of a key given as its UTF-8 bytes. Throws if {@link loadHasher} has
 * not completed: that is a programming error, not an outcome.
 */
export function shardForKey(key: Uint8Array, shardCount: number): number {
  if (hasher === undefined) throw new Error('shardForKey called before loadHasher()');
  const hash = hasher.h64Raw(hashedPart(key), 0n);
  return Number(hash % BigInt(shardCount));
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * The bytes of `key` that decide its shard: the hash tag between the first `{` and the
 * first `}` after it when both are there with something between, else the whole key.
 */
export function hashedPart(key: Uint8Array): Uint8Array {
  const open = key.indexOf(OPEN_BRACE);
  if (open < 0) return key;
  const close = key.indexOf(CLOSE_BRACE, open + 1);
  if (close <= open + 1) return key;
  return key.subarray(open + 1, close);
}

/** Why a key's hash tag is malformed, or undefined when it has a good one or none. */
export function hashTagProblem(key: Uint8Array): string | undefined {
  const open = key.indexOf(OPEN_BRACE);
  if (open < 0) return undefined;
  const close = key.indexOf(CLOSE_BRACE, open + 1);
  if (close < 0) return 'key has an unbalanced brace: a hash tag is {…} with a closing } (e.g. {user42}cart)';
  if (close === open + 1) return 'key has an empty hash tag {}: put the part to hash between the braces (e.g. {user42}cart)';
  return undefined;
}
