/**
 * Snapshot data files: `snap/<group>-<term>-<index>.snap`, the raw bytes of
 * the snapshot. Their length and CRC live in the WAL marker that names them,
 * so a file is trusted only if it matches the marker.
 *
 * A file is written as temp file + fsync + rename, and the directory fsynced,
 * BEFORE the marker that names it is written to the WAL: a marker that
 * survived a crash always finds its file.
 *
 * @internal
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from './crc32c.js';
import type { SnapshotMarker } from './wal-codec.js';
import { WalCorruptionError } from './wal-errors.js';

/** Suffix of files being written; leftovers are deleted on open. */
export const TEMP_SUFFIX = '.tmp';

/** Flushes a directory's entries (creations, renames) to disk. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `data` to `dir/name` durably except for the directory entry: the
 * caller fsyncs `dir` once after writing all its files.
 */
export async function writeFileAtomically(dir: string, name: string, data: Uint8Array): Promise<void> {
  const finalPath = join(dir, name);
  const tempPath = finalPath + TEMP_SUFFIX;
  const handle = await open(tempPath, 'w');
  try {
    let written = 0;
    while (written < data.length) {
      const { bytesWritten } = await handle.write(data, written, data.length - written, written);
      written += bytesWritten;
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(tempPath, finalPath);
}

/** Reads the snapshot data named by `marker` and checks it against the marker's length and CRC. */
export async function readSnapshotFile(dir: string, name: string, marker: SnapshotMarker): Promise<Uint8Array> {
  const path = join(dir, name);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
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
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Deletes a file, ignoring one that is already gone. */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
