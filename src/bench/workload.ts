/**
 * The bench workload: a fixed keyspace of `keys` keys of exactly `keyBytes` bytes, values of exactly
 * `valueBytes` bytes, and a mix of operations (`--mix`):
 *
 * - a percentage of gets, the rest puts (`--mix 50`, the default): key i is `k` followed by i
 *   zero-padded to the key length;
 * - `txn`: every operation is one transaction, a two-key atomic write: if `{gN}a` exists, put the
 *   value to `{gN}a` and `{gN}b`. Keys come in pairs under one hash tag (`{g` + the pair's number
 *   zero-padded + `}` + `a` or `b`), so both keys of a pair share a shard, as a transaction needs;
 * - `ttl`: 50% gets and 50% puts as with `--mix 50`, but every put (the preload's too) carries a
 *   TTL, so the keys live in the TTL index and the cost of that shows against `--mix 50`.
 *
 * Every run with the same settings touches the same keys (and the key distribution is repeatable).
 */
import { checkTtl, MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../common/index.js';

/** What one operation of the run is: `get-put` (a percentage of gets), `txn` or `ttl` (see above). */
export type MixName = 'get-put' | 'txn' | 'ttl';

/** The named workloads `--mix` takes besides a percentage. */
export const NAMED_MIXES: readonly MixName[] = ['txn', 'ttl'];

/** The percentage of gets of `--mix ttl`: the same split as the default `--mix 50`, for comparison. */
export const TTL_MIX_GET_PERCENT = 50;

/**
 * The TTL of `--mix ttl`'s puts unless `--ttl` says otherwise: 10 minutes, longer than the preload,
 * warm-up and measurement of a usual run together, so no key expires during it. (30 s was too
 * short: on a loaded 2-core machine the preload of 10,000 keys alone took 21–47 s at 64 in flight.)
 */
export const DEFAULT_BENCH_TTL_MS = 10 * 60_000;

/** The shape of the load, shared by every worker. */
export interface WorkloadSettings {
  /** Size of the keyspace; every key is preloaded before the measured phase. With `txn`, an even number (pairs). */
  keys: number;
  /** Bytes per key (1…20 by the protocol's limit); must fit the key's prefix plus the largest index. */
  keyBytes: number;
  /** Bytes per value (0…1024). */
  valueBytes: number;
  /** Percentage of gets (0…100); the rest are puts. 0 with `txn` (no plain gets or puts), 50 with `ttl`. */
  getPercent: number;
  /** Which operations (see the file comment); absent means `get-put`. */
  mixName?: MixName;
  /** With `ttl`: the TTL every put carries, ms. */
  ttlMs?: number;
}

/** The bench settings a workload is made from (`BenchSettings` in results.ts has them all). */
export interface WorkloadFlags {
  keys: number;
  keyBytes: number;
  valueBytes: number;
  /** `--mix` as a percentage of gets. */
  mix: number;
  mixName?: MixName;
  ttlMs?: number | null;
}

/** The workers' workload from the settings (the mix name and TTL only when `--mix` named one). */
export function workloadOf(settings: WorkloadFlags): WorkloadSettings {
  const mixName = settings.mixName ?? 'get-put';
  return {
    keys: settings.keys, keyBytes: settings.keyBytes, valueBytes: settings.valueBytes, getPercent: settings.mix,
    ...(mixName === 'get-put' ? {} : { mixName }),
    ...(settings.ttlMs === undefined || settings.ttlMs === null ? {} : { ttlMs: settings.ttlMs }),
  };
}

/** Why a workload cannot be built, as one line naming the flag. */
export class WorkloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkloadError';
  }
}

/** What `--mix` asked for: the workload's name and its percentage of plain gets. */
export interface ParsedMix {
  mixName: MixName;
  getPercent: number;
}

/**
 * Parses `--mix`: a whole percentage of gets (0…100), or `txn`, or `ttl`; throws
 * {@link WorkloadError} naming what it takes otherwise.
 */
export function parseMix(text: string): ParsedMix {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'txn') return { mixName: 'txn', getPercent: 0 };
  if (trimmed === 'ttl') return { mixName: 'ttl', getPercent: TTL_MIX_GET_PERCENT };
  const percent = /^\d+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isSafeInteger(percent) || percent > 100) {
    throw new WorkloadError(`--mix wants a percentage of gets (a whole number in 0…100) or a named workload (${NAMED_MIXES.join(', ')}), got "${text}"`);
  }
  return { mixName: 'get-put', getPercent: percent };
}

/** Checks the settings against the protocol limits; throws {@link WorkloadError}. */
export function checkWorkload(settings: WorkloadSettings): void {
  const mixName = settings.mixName ?? 'get-put';
  if (settings.keyBytes > MAX_KEY_BYTES) throw new WorkloadError(`--key-bytes ${settings.keyBytes} is over the key limit of ${MAX_KEY_BYTES} bytes`);
  if (mixName === 'txn') {
    if (settings.keys < 2 || settings.keys % 2 !== 0) {
      throw new WorkloadError(`--mix txn writes keys in pairs ({gN}a and {gN}b): --keys must be even and at least 2, got ${settings.keys}`);
    }
    const digits = String(settings.keys / 2 - 1).length;
    const needed = TAGGED_KEY_OVERHEAD_BYTES + digits;
    if (settings.keyBytes < needed) {
      throw new WorkloadError(`--key-bytes ${settings.keyBytes} is too short for --mix txn with ${settings.keys} keys: ` +
        `they need ${needed} bytes ("{g" + ${digits} digits + "}" + "a" or "b")`);
    }
  } else {
    const digits = String(Math.max(0, settings.keys - 1)).length;
    if (settings.keyBytes < 1 + digits) {
      throw new WorkloadError(`--key-bytes ${settings.keyBytes} is too short for ${settings.keys} keys: they need ${1 + digits} bytes ("k" + ${digits} digits)`);
    }
  }
  if (settings.valueBytes > MAX_VALUE_BYTES) throw new WorkloadError(`--value-bytes ${settings.valueBytes} is over the value limit of ${MAX_VALUE_BYTES} bytes`);
  if (settings.getPercent < 0 || settings.getPercent > 100) throw new WorkloadError(`--mix wants a percentage of gets in 0…100, got ${settings.getPercent}`);
  if (mixName === 'ttl') {
    const ttlMs = settings.ttlMs ?? 0;
    const check = checkTtl(ttlMs);
    if (!check.ok || ttlMs === 0) throw new WorkloadError(`--ttl: ${check.ok ? '--mix ttl needs a TTL' : check.message}`);
  } else if (settings.ttlMs !== undefined) {
    throw new WorkloadError('--ttl is the TTL of --mix ttl\'s puts: give --mix ttl, or leave --ttl out');
  }
}

/** The bytes a tagged key takes besides the pair's number: `{g`, `}` and the `a`/`b` suffix. */
const TAGGED_KEY_OVERHEAD_BYTES = 4;

/** Key number `index`: `k` + the index zero-padded to exactly `keyBytes` bytes. */
export function benchKey(index: number, keyBytes: number): string {
  return `k${String(index).padStart(keyBytes - 1, '0')}`;
}

/**
 * Key number `index` of the `txn` keyspace, exactly `keyBytes` bytes: pair `index >> 1` as its hash
 * tag, then `a` (even index) or `b` (odd). Keys 2n and 2n+1 share a shard.
 */
export function taggedBenchKey(index: number, keyBytes: number): string {
  const pair = String(Math.floor(index / 2)).padStart(keyBytes - TAGGED_KEY_OVERHEAD_BYTES, '0');
  return `{g${pair}}${index % 2 === 0 ? 'a' : 'b'}`;
}

/** Every key of the keyspace, in index order (with `txn`, pair by pair: `{g…0}a`, `{g…0}b`, `{g…1}a`, …). */
export function benchKeys(settings: Pick<WorkloadSettings, 'keys' | 'keyBytes' | 'mixName'>): string[] {
  const keyOf = settings.mixName === 'txn' ? taggedBenchKey : benchKey;
  return Array.from({ length: settings.keys }, (_, index) => keyOf(index, settings.keyBytes));
}

/**
 * What one operation of the run is, in one line: printed with each run and written to
 * results.json (`settings.opDescription`), so "ops/s" is never ambiguous.
 */
export function describeOperation(settings: Pick<WorkloadSettings, 'getPercent' | 'mixName' | 'ttlMs'>): string {
  switch (settings.mixName ?? 'get-put') {
    case 'txn':
      return 'one transaction: if {gN}a exists, put {gN}a and {gN}b (one Raft entry, two keys written)';
    case 'ttl':
      return `a get or a put (${settings.getPercent}% gets), every put with a TTL of ${formatTtl(settings.ttlMs ?? 0)}`;
    case 'get-put':
      return `a get or a put (${settings.getPercent}% gets)`;
  }
}

/** A TTL in ms as the shortest exact form of `--ttl` (`30s`, `1500ms`, `2m`). */
export function formatTtl(ttlMs: number): string {
  if (ttlMs % 3_600_000 === 0) return `${ttlMs / 3_600_000}h`;
  if (ttlMs % 60_000 === 0) return `${ttlMs / 60_000}m`;
  if (ttlMs % 1000 === 0) return `${ttlMs / 1000}s`;
  return `${ttlMs}ms`;
}

/** A value of exactly `valueBytes` printable bytes (the content does not matter to the store). */
export function benchValue(valueBytes: number): Uint8Array {
  const value = new Uint8Array(valueBytes);
  for (let i = 0; i < valueBytes; i++) value[i] = 97 + (i % 26);
  return value;
}
