/**
 * The file operations the WAL and its snapshot files need, as an interface: production passes {@link nodeFileSystem} (`node:fs`), the
 * whole-node simulator a simulated disk that keeps synced and unsynced bytes apart
 * and can lose power (DESIGN.md §4: time and I/O come in through small interfaces).
 *
 * Durability is explicit, as on a real disk: written bytes are durable once
 * {@link FileHandle.datasync} resolves; a creation, rename or deletion once
 * {@link FileSystem.syncDirectory} of its directory resolves.
 */
import { fdatasyncSync, writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle as NodeFileHandle } from 'node:fs/promises';

/** An open file. */
export interface FileHandle {
  /**
   * Copies `data[offset, offset + length)` into the file at `position`, synchronously
   * (into the page cache: microseconds, no thread-pool round trip). Returns the bytes
   * written. Durable only once a later {@link datasync} resolves.
   */
  writeSync(data: Uint8Array, offset: number, length: number, position: number): number;
  /** Makes every byte written so far, and the file's length, durable. */
  datasync(): Promise<void>;
  /**
   * {@link datasync} on the calling thread: durable when it returns, and nothing else runs
   * meanwhile. Optional: the WAL uses it only while the disk proves fast (`fsync-policy.ts`),
   * and a handle without it is always synced through {@link datasync}.
   */
  datasyncSync?(): void;
  /** Sets the file's length (durable after the next {@link datasync}). */
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

/** How {@link FileSystem.open} opens a file. */
export type OpenMode =
  /** Create it, or empty it if it exists (`w+`). */
  | 'truncate'
  /** Open an existing file for reading and writing (`r+`); rejects with ENOENT if missing. */
  | 'existing';

/** The file system as the storage layer uses it. Errors carry Node's `code` (`ENOENT`, …). */
export interface FileSystem {
  /** Creates `path` and missing parents; resolves if it exists. */
  mkdir(path: string): Promise<void>;
  /** Names of the entries of a directory. */
  readdir(path: string): Promise<string[]>;
  /** The whole file; rejects with code `ENOENT` when it does not exist. */
  readFile(path: string): Promise<Uint8Array>;
  open(path: string, mode: OpenMode): Promise<FileHandle>;
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): Promise<void>;
  /** Deletes a file; rejects with code `ENOENT` when it does not exist. */
  unlink(path: string): Promise<void>;
  /** Makes the directory's entries durable: files created, renamed or deleted in it. */
  syncDirectory(path: string): Promise<void>;

}

class NodeHandle implements FileHandle {
  constructor(private readonly handle: NodeFileHandle) {}

  writeSync(data: Uint8Array, offset: number, length: number, position: number): number {
    return writeSync(this.handle.fd, data, offset, length, position);
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  datasyncSync(): void {
    fdatasyncSync(this.handle.fd);
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** The real file system (`node:fs`). */
export const nodeFileSystem: FileSystem = {
  async mkdir(path) {
    await mkdir(path, { recursive: true });
  },
  readdir(path) {
    return readdir(path);
  },
  async readFile(path) {
    const data = await readFile(path);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  },
  async open(path, mode) {
    return new NodeHandle(await open(path, mode === 'truncate' ? 'w+' : 'r+'));
  },
  rename(from, to) {
    return rename(from, to);
  },
  unlink(path) {
    return unlink(path);
  },
  async syncDirectory(path) {
    const handle = await open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};
