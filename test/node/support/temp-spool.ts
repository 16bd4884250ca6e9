/** Snapshot spools in temporary directories, for tests that drive `raftService` directly. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotSpool, type SnapshotSpoolOptions } from '../../../src/node/snapshot-spool.js';

const dirs: string[] = [];

/** A spool in a fresh temporary directory; {@link removeTempSpools} deletes them all. */
export async function tempSpool(options: Omit<SnapshotSpoolOptions, 'dir'> = {}): Promise<SnapshotSpool> {
  const dir = await mkdtemp(join(tmpdir(), 'kvstore-spool-test-'));
  dirs.push(dir);
  return SnapshotSpool.open({ dir, ...options });
}

export async function removeTempSpools(): Promise<void> {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
}
