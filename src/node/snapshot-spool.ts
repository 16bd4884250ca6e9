/**
 * Where a node keeps the snapshots it is receiving: each stream's chunks go to a file of
 * its own as they arrive, so a transfer holds a few chunks of memory (what gRPC reads
 * ahead while the stream is paused: at most 16 messages), not the snapshot — however
 * many peers send at once and however slowly. Only a whole snapshot is read back, once,
 * to be checked (`snapshot-check.ts`) and handed to its replica, which decodes it into
 * its in-memory state machine.
 *
 * ## Bounds
 * - At most `maxReceiving` streams at once (default {@link MAX_CONCURRENT_SNAPSHOT_RECEIVES}):
 *   another is refused at its first chunk and its sender retries later, as Raft does
 *   for any failed snapshot. The manager may move up to 32 replicas at once; each
 *   leader also sends at most a few at a time (`RaftTransport`).
 * - At most `maxSnapshotBytes` per stream (1 GiB): so at most `maxReceiving` GiB of
 *   spool files on disk, and none after a restart (the directory is emptied on open).
 * - Reading a snapshot back for its install holds it in memory once, until its replica
 *   has decoded and persisted it at its next full turn. The slot is free once the snapshot
 *   is handed over, so while a replica's disk stalls, snapshots that keep arriving for it
 *   wait in memory — at most as many as the leaders send in that time.
 *
 * The files are scratch: never fsynced (a crash loses an unfinished transfer, which the
 * leader sends again) and deleted as soon as they are read back or the stream fails.
 * @internal
 */
import { mkdir, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** Largest snapshot a node accepts (bytes). */
export const MAX_SNAPSHOT_BYTES = 1 << 30;
/** Snapshot streams a node receives at once, by default. */
export const MAX_CONCURRENT_SNAPSHOT_RECEIVES = 4;

/** One snapshot stream being written to its spool file. */
export interface SpooledReception {
  /** Bytes written so far. */
  readonly bytes: number;
  /**
   * Appends a chunk. Rejects past the per-stream limit (nothing more is written) or
   * when the file cannot be written; the reception is then aborted.
   */
  append(chunk: Uint8Array): Promise<void>;
  /** Reads the whole snapshot back and deletes its file; frees the slot. */
  finish(): Promise<Buffer>;
  /** Deletes the file and frees the slot; safe to call twice or after `finish`. */
  abort(): Promise<void>;
}

export interface SnapshotSpoolOptions {
  /** The spool directory; emptied by {@link SnapshotSpool.open}. */
  dir: string;
  maxReceiving?: number;
  maxSnapshotBytes?: number;
}

/** The spool of one node: a directory and a count of the streams using it. */
export class SnapshotSpool {
  private receiving = 0;
  private sequence = 0;
  readonly maxReceiving: number;
  readonly maxSnapshotBytes: number;

  private constructor(readonly dir: string, options: SnapshotSpoolOptions) {
    this.maxReceiving = options.maxReceiving ?? MAX_CONCURRENT_SNAPSHOT_RECEIVES;
    this.maxSnapshotBytes = options.maxSnapshotBytes ?? MAX_SNAPSHOT_BYTES;
  }

  /** Creates the directory, or empties it of what a crash left behind. */
  static async open(options: SnapshotSpoolOptions): Promise<SnapshotSpool> {
    await mkdir(options.dir, { recursive: true });
    for (const name of await readdir(options.dir)) await rm(join(options.dir, name), { force: true, recursive: true });
    return new SnapshotSpool(options.dir, options);
  }

  /** Streams being received now. */
  get active(): number {
    return this.receiving;
  }

  /** A new reception, or undefined when `maxReceiving` streams are already being received. */
  begin(): SpooledReception | undefined {
    if (this.receiving >= this.maxReceiving) return undefined;
    this.receiving += 1;
    this.sequence += 1;
    return new Reception(join(this.dir, `${this.sequence}.part`), this.maxSnapshotBytes, () => {
      this.receiving -= 1;
    });
  }
}

class Reception implements SpooledReception {
  bytes = 0;
  private handle: Promise<FileHandle> | undefined;
  private released = false;

  constructor(
    private readonly path: string,
    private readonly maxBytes: number,
    private readonly onRelease: () => void,
  ) {}

  async append(chunk: Uint8Array): Promise<void> {
    if (this.released) throw new Error('snapshot reception already ended');
    if (this.bytes + chunk.length > this.maxBytes) {
      await this.abort();
      throw new Error(`snapshot stream past ${this.maxBytes} bytes`);
    }
    const position = this.bytes;
    this.bytes += chunk.length;
    try {
      this.handle ??= open(this.path, 'w');
      const handle = await this.handle;
      let written = 0;
      while (written < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, written, chunk.length - written, position + written);
        written += bytesWritten;
      }
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  async finish(): Promise<Buffer> {
    if (this.released) throw new Error('snapshot reception already ended');
    try {
      if (this.handle === undefined) return Buffer.alloc(0);
      await (await this.handle).close();
      this.handle = undefined;
      const data = await readFile(this.path);
      if (data.length !== this.bytes) throw new Error(`spool file holds ${data.length} bytes, ${this.bytes} were written`);
      return data;
    } finally {
      await this.abort();
    }
  }

  async abort(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const handle = this.handle;
    this.handle = undefined;
    try {
      if (handle !== undefined) await handle.then((opened) => opened.close()).catch(() => undefined);
      await rm(this.path, { force: true });
    } finally {
      this.onRelease();
    }
  }
}
