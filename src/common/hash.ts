/**
 * The key → shard function, part of the protocol: `xxh64(utf8(key), seed 0) mod S`.
 * Any client in any language can compute it.
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
  const hash = hasher.h64Raw(key, 0n);
  return Number(hash % BigInt(shardCount));
}
