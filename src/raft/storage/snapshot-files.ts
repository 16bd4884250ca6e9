/**
 * Snapshot data files: `snap/<group>-<term>-<index>.snap`, the raw bytes of
 * the snapshot. Their length and CRC live in the WAL marker that names them,
 * so a file is trusted only if it matches the marker.
 *
 * A file is written as temp file + fsync + rename, and the directory fsynced,
 * BEFORE the marker that names it is written to the WAL: a marker that
 * survived a crash always finds its file. New WAL segments are written the
 * same way, so a segment never exists half made.
 *
 * @internal
 */
import { join } from 'node:path';
import { crc32c } from './crc32c.js';
import type { FileHandle, FileSystem } from './file-system.js';
import type { SnapshotMarker } from './wal-codec.js';
import { WalCorruptionError } from './wal-errors.js';
import type { WalGroup } from './wal-group.js';

/** Suffix of files being written; leftovers are deleted on open. */
export const TEMP_SUFFIX = '.tmp';

/** True for the error a file system raises for a missing file. */
export function isNotFound(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'ENOENT';
}

/** Writes all of `data` at `position` with synchronous writes (into the page cache). */
export function writeFully(handle: FileHandle, data: Uint8Array, position: number): void {
  let written = 0;
  while (written < data.length) written += handle.writeSync(data, written, data.length - written, position + written);
}

/**
 * Writes `data` to `dir/name` durably except for the directory entry: the
 * caller fsyncs `dir` once after writing all its files.
 */
export async function writeFileAtomically(fs: FileSystem, dir: string, name: string, data: Uint8Array): Promise<void> {
  const finalPath = join(dir, name);
  const tempPath = finalPath + TEMP_SUFFIX;
  const handle = await fs.open(tempPath, 'truncate');
  try {
    writeFully(handle, data, 0);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await fs.rename(tempPath, finalPath);
}

/** Reads the snapshot data named by `marker` and checks it against the marker's length and CRC. */
export async function readSnapshotFile(fs: FileSystem, dir: string, name: string, marker: SnapshotMarker): Promise<Uint8Array> {
  const path = join(dir, name);
  let data: Uint8Array;
  try {
    data = await fs.readFile(path);
  } catch (error) {
    if (isNotFound(error)) {
      throw new WalCorruptionError('SNAPSHOT_MISSING', path, 0, 'a snapshot marker names this file but it does not exist');
    }
    throw error;
  }
  if (data.length !== marker.dataLength || crc32c(data) !== marker.dataCrc) {
    throw new WalCorruptionError(
      'SNAPSHOT_CORRUPT',
      path,
      0,
      `expected ${marker.dataLength} bytes with crc ${marker.dataCrc}, found ${data.length} bytes`,
    );
  }
  return data;
}

/** Deletes a file, ignoring one that is already gone. */
export async function removeFile(fs: FileSystem, path: string): Promise<void> {
  try {
    await fs.unlink(path);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

/**
 * Reads and verifies the snapshot data of every recovered group, then deletes
 * the snapshot files no group's marker names (left over from a crash). Call it
 * only once the recovered markers are durable.
 */
export async function loadSnapshots(fs: FileSystem, snapDir: string, groups: ReadonlyMap<number, WalGroup>): Promise<void> {
  const referenced = new Set<string>();
  for (const group of groups.values()) {
    const name = group.snapshotFile;
    if (name === undefined || group.recovered === undefined) continue;
    referenced.add(name);
    group.recovered.snapshotData = await readSnapshotFile(fs, snapDir, name, group.marker);
  }
  for (const name of await fs.readdir(snapDir)) {
    if (!referenced.has(name)) await removeFile(fs, join(snapDir, name));
  }
}
