/** Shared helpers of the storage tests: temp dirs, entries, property-test options. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryType, type Entry } from '../../../src/raft/types.js';
import type { DurableStorage } from '../../../src/raft/storage/index.js';

/** A fresh temp dir; remove it with {@link removeTempDir}. */
export async function makeTempDir(prefix = 'kvstore-wal-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Removes a temp dir made by {@link makeTempDir}. */
export async function removeTempDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}

/** Consecutive entries `[from, to]` of `term`, with data naming index and term. */
export function makeEntries(from: number, to: number, term: number): Entry[] {
  const entries: Entry[] = [];
  for (let index = from; index <= to; index++) {
    entries.push({ index, term, type: EntryType.Normal, data: new TextEncoder().encode(`e${index}t${term}`) });
  }
  return entries;
}

/** All entries `[firstIndex, lastIndex]` a storage holds, for comparisons. */
export function allEntries(storage: Pick<DurableStorage, 'entries' | 'firstIndex' | 'lastIndex'>): Entry[] {
  const result = storage.entries(storage.firstIndex(), storage.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
  if (!result.ok) throw new Error(`entries unavailable: ${result.reason}`);
  return result.value;
}

/**
 * fast-check options: `SEED=n` replays a run (fast-check prints the seed of a
 * failure); `PROPERTY_RUNS=n` runs more (or fewer) cases than the default.
 */
export function propertyOptions(defaultRuns: number): { numRuns: number; seed?: number } {
  const runs = process.env['PROPERTY_RUNS'];
  const numRuns = runs === undefined ? defaultRuns : Number(runs);
  const seed = process.env['SEED'];
  return seed === undefined ? { numRuns } : { numRuns, seed: Number(seed) };
}
