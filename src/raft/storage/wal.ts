/**
 * The node's write-ahead log, shared by every Raft group it hosts (DESIGN.md §3
 * "Durability"; raft-engine's shared log, STYLE.md §5).
 *
 * Layout under the node's data dir:
 * - `wal/<16-digit sequence>.log`: append-only segments of CRC-checked records
 *   (format in `wal-codec.ts`), rolled at about `segmentBytes`;
 * - `snap/<group>-<term>-<index>.snap`: snapshot data, one file per group's latest snapshot.
 *
 * Writes from every group's {@link DurableStorage} are encoded into one
 * in-memory buffer; {@link Wal.sync} writes it and fsyncs once for all of them
 * (group commit). Concurrent syncs coalesce: while one is on disk, later
 * callers share the next one.
 *
 * Every segment starts with a checkpoint: the hard state and snapshot marker
 * of every live group. So an old segment can be deleted as soon as each
 * group's durable snapshot covers the entries it holds there.
 *
 * Snapshot files ahead of their markers. A marker must never be durable before
 * the file it names. A snapshot from the leader (`applySnapshot`) has its file
 * written by the sync that carries its marker: the replica answers the leader only
 * once both are durable. A group's own snapshot (`createSnapshot`) is written in
 * the background instead, and its marker appended only once the file and its
 * directory entry are durable (then a sync is started for it). Nothing waits for
 * that marker: until it is durable a crash recovers the previous snapshot and the
 * entries after it, which the WAL keeps until then (a segment goes only once the
 * durable markers cover it). So a turn's fsync never waits for a snapshot file's
 * five round trips (open, write and fsync, close, rename, the directory's fsync).
 * - One file is written at a time per group; the newest snapshot taken meanwhile
 *   is written next. So a group that snapshots faster than its disk writes a file
 *   still gets its markers in (each write lands), and holds at most two.
 * - A written file's marker is appended only if it is newer than the group's latest
 *   marker and no tombstone came first: markers never go back in time. A passed
 *   file is deleted like any obsolete one, after the next flush: only then is every
 *   marker that may name a file of that name (two incarnations of a group can
 *   snapshot at the same term and index) known durable or replaced.
 * - Operations on one file name never overlap ({@link Wal} `onFile`).
 *
 * Each sync's records are written as one batch behind a batch header (the
 * segment's random nonce and the batch's sequence number), and a batch is
 * written only once the previous one is durable; `wal-scan.ts` explains how
 * recovery uses this to tell a torn unsynced tail from corruption.
 *
 * All file I/O goes through the injected {@link FileSystem} (`WalOptions.fs`).
 */
import { join } from 'node:path';
import type { ConfState, Entry, HardState, RaftLogger, RandomSource, Snapshot } from '../types.js';
import { crc32c } from './crc32c.js';
import { DurableStorage, type GroupLog } from './durable-storage.js';
import { nodeFileSystem, type FileHandle, type FileSystem } from './file-system.js';
import { fsyncSegment, InlineFsyncPolicy } from './fsync-policy.js';
import { MemoryStorage, type MemoryStorageOptions } from './memory-storage.js';
import { loadSnapshots, removeFile, TEMP_SUFFIX, writeFileAtomically, writeFully } from './snapshot-files.js';
import { BATCH_HEADER_BYTES, RecordEncoder, type SnapshotMarker } from './wal-codec.js';
import { WalError } from './wal-errors.js';
import { groupIdOfSnapshotFile, snapshotFileName, WalGroup, type SnapshotWrite } from './wal-group.js';
import { listSegments, replaySegments, type SegmentInfo } from './wal-recovery.js';
import { groupsPinning } from './wal-purge.js';
import { createSegment, cryptoRandom, drawNonce, encodeCheckpoint } from './wal-segment.js';

/** Tuning of a {@link Wal}. */
export interface WalOptions {
  /**
   * Roll to a new segment once the current one reaches this many bytes.
   * Default 32 MiB. Smaller segments are garbage-collected sooner but roll
   * (and restate every group's checkpoint) more often.
   */
  segmentBytes?: number;
  /**
   * When the segments add up to more than this many bytes, {@link Wal.groupsPinningLog}
   * names the groups that must snapshot for the oldest segments to be deleted
   * (`wal-purge.ts`). Default 3 × `segmentBytes` (96 MiB). It bounds the WAL on disk to
   * about this plus one segment, and so what a restart replays; lower means more
   * snapshots of quiet groups.
   */
  purgeBytes?: number;
  /**
   * The file system under `dir`. Default {@link nodeFileSystem}; the
   * whole-node simulator passes a simulated disk that can lose power.
   */
  fs?: FileSystem;
  /**
   * Source of each segment's nonce, the random number in its batch headers
   * that lets recovery trust a header it finds after damage. Default
   * crypto-random; the simulator passes a seeded one so a run replays. It MUST
   * be unpredictable to clients in production: one that knew a segment's nonce
   * could plant a batch header in its values and make a torn tail look like
   * corruption, keeping the node from starting.
   */
  random?: RandomSource;
  /**
   * Monotonic time (ms) that times the inline fsyncs and spaces their probes
   * (`fsync-policy.ts`). Default `performance.now`; the simulator passes its node's clock.
   */
  clock?: () => number;
}

/** Options of {@link Wal.openGroup}. */
export interface OpenGroupOptions {
  /**
   * Members of a group created now (bootstrap): recorded as the conf state of
   * an empty snapshot at index 0, term 0. Ignored for a recovered group. Omit
   * for an uninitialized replica that waits for the leader's snapshot.
   */
  confState?: ConfState;
}

/** Records buffered for one sync, and what becomes true once they are durable. */
interface WriteBatch {
  encoder: RecordEncoder;
  /** Highest entry index per group incarnation in this batch. */
  maxIndexByGroup: Map<WalGroup, number>;
  /** Snapshot data files to write BEFORE the records (name → data). */
  snapshotFiles: Map<string, Uint8Array>;
  /** The latest marker per group in this batch. */
  snapshotMarkers: Map<WalGroup, SnapshotMarker>;
  /** Groups whose tombstone is in this batch. */
  tombstones: WalGroup[];
  /** Snapshot files that may be unreferenced once this batch is durable. */
  obsoleteFiles: string[];
}

function newBatch(): WriteBatch {
  return {
    encoder: new RecordEncoder(64 * 1024, { batchHeader: true }),
    maxIndexByGroup: new Map(),
    snapshotFiles: new Map(),
    snapshotMarkers: new Map(),
    tombstones: [],
    obsoleteFiles: [],
  };
}

function clearBatch(batch: WriteBatch): void {
  batch.encoder.clear();
  batch.maxIndexByGroup.clear();
  batch.snapshotFiles.clear();
  batch.snapshotMarkers.clear();
  batch.tombstones.length = 0;
  batch.obsoleteFiles.length = 0;
}

const DEFAULT_SEGMENT_BYTES = 32 * 1024 * 1024;

/** A logger that drops everything, when none is injected. */
const SILENT: RaftLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * The shared WAL of one node. Open it with {@link Wal.open}, get each group's
 * storage with {@link Wal.openGroup}, call {@link Wal.sync} once per host-loop
 * turn BEFORE sending that turn's messages, and {@link Wal.close} at shutdown.
 */
export class Wal {
  private readonly fs: FileSystem;
  private readonly random: RandomSource;
  private readonly walDir: string;
  private readonly snapDir: string;
  private readonly logger: RaftLogger;
  private readonly segmentBytes: number;
  private readonly purgeBytes: number;
  /** Segments on disk, oldest first; the last is the one being appended to. */
  private readonly segmentList: SegmentInfo[];
  /** Live groups by id (recovered or opened, not dropped). */
  private readonly groups: Map<number, WalGroup>;
  /** Dropped groups whose tombstone is not durable yet: a crash now would recover them. */
  private readonly dropping = new Set<WalGroup>();
  private handle: FileHandle;
  /** Bytes in the current segment. */
  private segmentSize: number;
  /** The current segment's nonce, in every batch header written to it. */
  private nonce: number;
  /** Sequence number of the next batch written to the current segment. */
  private nextSequence: number;
  /** Where appends go. */
  private active: WriteBatch = newBatch();
  /** The batch being written (or idle and empty). */
  private spare: WriteBatch = newBatch();
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private failure: WalError | undefined;
  private closed = false;
  /** The last operation queued on each snapshot file name (`onFile`). */
  private readonly fileOps = new Map<string, Promise<void>>();
  /** Snapshot files being written ahead of their markers, until the marker is appended or the file deleted. */
  private readonly snapshotWrites = new Set<Promise<void>>();
  /** Whether a flush fsyncs inline or on the thread pool (`fsync-policy.ts`). */
  readonly fsyncPolicy = new InlineFsyncPolicy();
  private readonly clock: () => number;

  private constructor(init: {
    fs: FileSystem;
    random: RandomSource;
    walDir: string;
    snapDir: string;
    logger: RaftLogger;
    segmentBytes: number;
    purgeBytes: number;
    segments: SegmentInfo[];
    groups: Map<number, WalGroup>;
    handle: FileHandle;
    segmentSize: number;
    nonce: number;
    nextSequence: number;
    clock: () => number;
  }) {
    this.fs = init.fs;
    this.clock = init.clock;
    this.random = init.random;
    this.walDir = init.walDir;
    this.snapDir = init.snapDir;
    this.logger = init.logger;
    this.segmentBytes = init.segmentBytes;
    this.purgeBytes = init.purgeBytes;
    this.segmentList = init.segments;
    this.groups = init.groups;
    this.handle = init.handle;
    this.segmentSize = init.segmentSize;
    this.nonce = init.nonce;
    this.nextSequence = init.nextSequence;
  }

  /**
   * Opens (creating if needed) the WAL under `dir` (`dir/wal`, `dir/snap`) and
   * recovers every group's hard state, snapshot and entries. A torn unsynced
   * batch at the tail of the last segment is cut off (the file is truncated);
   * damage anywhere else rejects with `WalCorruptionError` naming the file and
   * offset (`wal-scan.ts`).
   */
  static async open(dir: string, logger: RaftLogger = SILENT, options: WalOptions = {}): Promise<Wal> {
    const fs = options.fs ?? nodeFileSystem;
    const random = options.random ?? cryptoRandom;
    const walDir = join(dir, 'wal');
    const snapDir = join(dir, 'snap');
    await fs.mkdir(walDir);
    await fs.mkdir(snapDir);
    await fs.syncDirectory(dir); // the entries of wal/ and snap/ themselves
    const walNames = await fs.readdir(walDir);
    for (const name of walNames) if (name.endsWith(TEMP_SUFFIX)) await removeFile(fs, join(walDir, name));
    const replay = await replaySegments(fs, listSegments(walDir, walNames));

    // What recovery read may be in the page cache only: a killed process wrote it and never synced
    // it, or renamed a new segment into place without syncing the directory. Make it durable BEFORE
    // building on it: before deleting the snapshot files it no longer names (a power cut could bring
    // back an older state that names them), and before writing a batch after it (a power cut could
    // leave that batch's header behind a torn earlier batch, which recovery must refuse; wal-scan.ts).
    const last = replay.segments[replay.segments.length - 1];
    const lastHandle = last === undefined ? undefined : await fs.open(last.path, 'existing');
    try {
      if (last !== undefined && lastHandle !== undefined) {
        if (replay.tornBytes > 0) {
          await lastHandle.truncate(replay.lastSegmentValidBytes);
          logger.warn('wal torn tail cut off', { file: last.path, offset: replay.lastSegmentValidBytes, bytes: replay.tornBytes });
        }
        await lastHandle.datasync();
        await fs.syncDirectory(walDir);
      }
      await loadSnapshots(fs, snapDir, replay.groups);
    } catch (error) {
      await lastHandle?.close().catch(() => undefined);
      throw error;
    }

    const make = (handle: FileHandle, segmentSize: number, nonce: number, nextSequence: number): Wal => {
      logger.info('wal recovered', { segments: replay.segments.length, groups: replay.groups.size });
      const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
      const purgeBytes = options.purgeBytes ?? 3 * segmentBytes;
      const { segments, groups } = replay;
      const clock = options.clock ?? (() => performance.now());
      const wal = new Wal({ fs, random, walDir, snapDir, logger, segmentBytes, purgeBytes, segments, groups, handle, segmentSize, nonce, nextSequence, clock });
      for (const { groupId, from, to } of replay.raised) {
        // Recorded, so the next sync makes the raise durable and the log says what the group runs with.
        wal.active.encoder.hardState(groupId, to);
        logger.warn('wal raised a recovered hard state to its snapshot', { group: groupId, from, to });
      }
      return wal;
    };
    if (lastHandle !== undefined && replay.lastSegmentNonce !== undefined) {
      return make(lastHandle, replay.lastSegmentValidBytes, replay.lastSegmentNonce, replay.lastSegmentSequence + 1);
    }
    await lastHandle?.close(); // written before batch headers: carry on in a new segment
    const nonce = drawNonce(random);
    const checkpoint = encodeCheckpoint(replay.groups.values(), nonce);
    const { segment, handle } = await createSegment(fs, walDir, (last?.sequence ?? 0) + 1, checkpoint);
    replay.segments.push(segment);
    return make(handle, checkpoint.length, nonce, 1);
  }

  /**
   * The I/O failure that stopped this WAL, if any: every sync rejects with it. A snapshot file
   * written in the background can fail with no sync to report it, so a host asks now and then.
   */
  failed(): WalError | undefined {
    return this.failure;
  }

  /** Bytes of every segment on disk (the WAL's share of the data dir). */
  bytes(): number {
    let total = this.segmentSize;
    for (let i = 0; i < this.segmentList.length - 1; i++) total += (this.segmentList[i] as SegmentInfo).bytes;
    return total;
  }

  /**
   * Ids of the groups that must snapshot for the WAL to fall back under its purge
   * threshold (empty while it is under): their entries keep its oldest segments.
   */
  groupsPinningLog(): number[] {
    return groupsPinning(this.segmentList, this.segmentSize, this.purgeBytes).map((group) => group.groupId);
  }

  /** Ids of the groups the WAL holds (recovered or opened since, not dropped), ascending. */
  groupIds(): number[] {
    return [...this.groups.keys()].sort((a, b) => a - b);
  }

  /** Sequence numbers of the segment files on disk, oldest first (for metrics and tests). */
  segments(): number[] {
    return this.segmentList.map((segment) => segment.sequence);
  }

  /**
   * The storage of group `groupId`: its recovered state if the WAL holds the
   * group, else a new empty group (with `options.confState` as its initial
   * members), whose creation is recorded so a restart remembers it. Each group
   * may be opened once per {@link Wal} (until dropped).
   */
  openGroup(groupId: number, options: OpenGroupOptions = {}): DurableStorage {
    this.checkOpen();
    let group = this.groups.get(groupId);
    if (group?.opened === true) throw new WalError('GROUP_ALREADY_OPEN', `group ${groupId} is already open`);
    let memory: MemoryStorage;
    if (group !== undefined) {
      const recovered = group.recovered ?? { entries: [], snapshotData: new Uint8Array(0) };
      const { index, term, confState } = group.marker;
      const memoryOptions: MemoryStorageOptions = { confState };
      if (group.hardState !== undefined) memoryOptions.hardState = group.hardState;
      memory = new MemoryStorage(memoryOptions);
      memory.applySnapshot({ metadata: { index, term, confState }, data: recovered.snapshotData });
      memory.append(recovered.entries);
      group.recovered = undefined;
    } else {
      group = new WalGroup(groupId);
      this.groups.set(groupId, group);
      const confState = options.confState ?? { voters: [], learners: [] };
      memory = new MemoryStorage({ confState });
      this.appendSnapshot(group, { metadata: { index: 0, term: 0, confState }, data: new Uint8Array(0) }, false);
    }
    group.opened = true;
    return new DurableStorage(memory, this.groupLog(group));
  }

  /**
   * Forgets a group (its replica was removed from this node): writes a
   * tombstone, so recovery drops everything the group wrote before it, and
   * deletes its snapshot file once the tombstone is durable. Its storage
   * rejects further writes. The id may be opened again later as a new group.
   */
  dropGroup(groupId: number): void {
    this.checkOpen();
    const group = this.groups.get(groupId);
    if (group === undefined) return;
    this.active.encoder.tombstone(groupId);
    group.dropped = true;
    group.recovered = undefined;
    group.nextWrite = undefined; // a file being written is deleted once written: no marker will name it
    this.groups.delete(groupId);
    this.active.tombstones.push(group);
    this.dropping.add(group);
    const file = group.snapshotFile;
    if (file !== undefined) this.active.obsoleteFiles.push(file);
  }

  /**
   * Makes every record appended before this call durable: writes the files of
   * snapshots from a leader, then the buffered records, with one fsync for all
   * groups. A group's own snapshot is not such a record: its marker follows its
   * file, later (see the file's comment; {@link syncAll} waits for it). Calls
   * made while a sync is on disk share the next one. After an I/O failure every
   * sync rejects with `WalError('IO_FAILED')`: the node must stop (a failed
   * fsync cannot be retried safely).
   */
  sync(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.queued !== undefined) return this.queued;
    const empty = this.active.encoder.length === 0 && this.active.obsoleteFiles.length === 0;
    if (this.running !== undefined) {
      if (empty) return this.running;
      const start = (): Promise<void> => this.startFlush();
      this.queued = this.running.then(start, start);
      return this.queued;
    }
    if (empty) return Promise.resolve();
    return this.startFlush();
  }

  /**
   * {@link sync}, once every snapshot file being written has its marker appended: on return
   * everything appended before the call is durable, the markers of `createSnapshot` included.
   * For shutdown and tests; a host's turn calls `sync()`, which never waits for a snapshot file.
   */
  async syncAll(): Promise<void> {
    await this.snapshotsWritten();
    await this.sync();
  }

  /** Syncs what is buffered, snapshots being written included, and closes the segment; later writes throw `WalError('CLOSED')`. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.snapshotsWritten();
      if (this.failure === undefined) await this.sync();
    } finally {
      await Promise.allSettled([this.running, this.queued]);
      this.closed = true;
      await this.handle.close();
    }
  }

  private startFlush(): Promise<void> {
    this.queued = undefined;
    const flush = this.flush();
    this.running = flush;
    const clear = (): void => {
      if (this.running === flush) this.running = undefined;
    };
    void flush.then(clear, clear);
    return flush;
  }

  private async flush(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const batch = this.active;
    this.active = this.spare;
    this.spare = batch;
    const records = batch.encoder.length;
    const batchBytes = records === 0 ? 0 : BATCH_HEADER_BYTES + records;
    // Decided and encoded now, while group state matches exactly the records in `batch`.
    let next: { nonce: number; checkpoint: Buffer } | undefined;
    if (this.segmentSize + batchBytes >= this.segmentBytes) {
      const nonce = drawNonce(this.random);
      next = { nonce, checkpoint: encodeCheckpoint(this.groups.values(), nonce) };
    }
    try {
      if (batch.snapshotFiles.size > 0) {
        for (const [name, data] of batch.snapshotFiles) await this.onFile(name, () => writeFileAtomically(this.fs, this.snapDir, name, data));
        await this.fs.syncDirectory(this.snapDir);
      }
      if (records > 0) {
        // A synchronous write: it only copies into the page cache (microseconds for a turn's
        // records), while an async write is a thread-pool round trip per turn — on the 2-core
        // bench machine ~13% of a busy node's samples sat in it. The fsync is inline too while
        // the disk proves fast, else on the thread pool (fsync-policy.ts).
        // Flushes never overlap (sync() queues the next behind this one), so this batch is
        // durable BEFORE the next is written: the rule recovery relies on (wal-scan.ts).
        const bytes = batch.encoder.framedBytes(this.nonce, this.nextSequence);
        this.nextSequence += 1;
        writeFully(this.handle, bytes, this.segmentSize);
        this.segmentSize += bytes.length;
        await fsyncSegment(this.handle, this.fsyncPolicy, this.clock, this.logger);
      }
      this.markDurable(batch);
      if (next !== undefined) await this.roll(next.checkpoint, next.nonce);
      await this.deleteObsoleteSnapshots(batch.obsoleteFiles);
      await this.collectGarbage();
    } catch (error) {
      throw this.fail(error);
    } finally {
      clearBatch(batch);
    }
  }

  /** Records what became true now that `batch` is on disk in the current segment. */
  private markDurable(batch: WriteBatch): void {
    const segment = this.segmentList[this.segmentList.length - 1] as SegmentInfo;
    for (const [group, maxIndex] of batch.maxIndexByGroup) {
      const previous = segment.maxIndexByGroup.get(group);
      if (previous === undefined || maxIndex > previous) segment.maxIndexByGroup.set(group, maxIndex);
    }
    for (const [group, marker] of batch.snapshotMarkers) {
      group.durableSnapshotIndex = marker.index;
      group.durableSnapshotFile = snapshotFileName(group.groupId, marker);
    }
    for (const group of batch.tombstones) {
      segment.maxIndexByGroup.delete(group);
      group.durableSnapshotIndex = Number.MAX_SAFE_INTEGER;
      group.durableSnapshotFile = undefined;
      this.dropping.delete(group);
    }
  }

  /** Starts the next segment with `checkpoint` (encoded with `nonce`), written whole so it is never half made. */
  private async roll(checkpoint: Buffer, nonce: number): Promise<void> {
    const sequence = (this.segmentList[this.segmentList.length - 1] as SegmentInfo).sequence + 1;
    const { segment, handle } = await createSegment(this.fs, this.walDir, sequence, checkpoint);
    (this.segmentList[this.segmentList.length - 1] as SegmentInfo).bytes = this.segmentSize;
    await this.handle.close();
    this.handle = handle;
    this.segmentSize = checkpoint.length;
    this.nonce = nonce;
    this.nextSequence = 1;
    this.segmentList.push(segment);
    this.logger.debug('wal segment rolled', { sequence, groups: this.groups.size });
  }

  /** Deletes those of `names` that no group needs ({@link removeIfUnneeded}). */
  private async deleteObsoleteSnapshots(names: readonly string[]): Promise<void> {
    for (const name of names) await this.removeIfUnneeded(name);
  }

  /**
   * Deletes snapshot file `name` unless a group needs it: its latest marker (written
   * by this or a later flush) or its latest durable marker (which a crash now would
   * recover) names it, or it is the group's snapshot being or to be written. A group
   * whose tombstone is not durable yet still counts. Only at the end of a flush, after
   * `markDurable`: a marker that named `name` in the batch just written is then durable
   * or replaced by a durable one. Decided when the deletion's turn comes (`onFile`), so
   * a write of the same name queued before it wins.
   */
  private removeIfUnneeded(name: string): Promise<void> {
    return this.onFile(name, async () => {
      // A file's name starts with its group's id: only incarnations of that group can need it.
      const groupId = groupIdOfSnapshotFile(name);
      if (this.groups.get(groupId)?.needsFile(name) === true) return;
      for (const group of this.dropping) if (group.groupId === groupId && group.needsFile(name)) return;
      await removeFile(this.fs, join(this.snapDir, name));
    });
  }

  /**
   * Runs `operation` on snapshot file `name` once every operation queued on that name
   * before it has settled. A write ahead of its marker, a flush's write and a deletion of
   * one name (two incarnations of a group can snapshot at the same term and index) so
   * never overlap: a deletion never removes a file just renamed into place, nor two
   * writes share the temp file.
   */
  private onFile(name: string, operation: () => Promise<void>): Promise<void> {
    const previous = this.fileOps.get(name);
    const run = previous === undefined ? operation() : previous.then(operation, operation);
    this.fileOps.set(name, run);
    const forget = (): void => {
      if (this.fileOps.get(name) === run) this.fileOps.delete(name);
    };
    void run.then(forget, forget);
    return run;
  }

  /** Resolves once no snapshot file is being written ahead of its marker. */
  private async snapshotsWritten(): Promise<void> {
    while (this.snapshotWrites.size > 0) await Promise.allSettled([...this.snapshotWrites]);
  }

  /** Records the first I/O failure (every later sync rejects with it) and returns it. */
  private fail(error: unknown): WalError {
    if (this.failure === undefined) {
      this.failure = new WalError('IO_FAILED', `wal write failed: ${String(error)}`, { cause: error });
      this.logger.error('wal write failed', { dir: this.walDir, error: String(error) });
    }
    return this.failure;
  }

  /**
   * Deletes the oldest segments while every group's durable snapshot covers
   * all the entries it has in them. Never the current segment; always a prefix,
   * so replay order is kept.
   */
  private async collectGarbage(): Promise<void> {
    while (this.segmentList.length > 1) {
      const oldest = this.segmentList[0] as SegmentInfo;
      for (const [group, maxIndex] of oldest.maxIndexByGroup) {
        if (group.durableSnapshotIndex < maxIndex) return;
      }
      await removeFile(this.fs, oldest.path);
      this.segmentList.shift();
      this.logger.debug('wal segment deleted', { sequence: oldest.sequence });
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new WalError('CLOSED', 'the wal is closed');
  }

  private groupLog(group: WalGroup): GroupLog {
    return {
      groupId: group.groupId,
      checkWritable: () => {
        this.checkOpen();
        if (group.dropped) throw new WalError('GROUP_DROPPED', `group ${group.groupId} was dropped`);
      },
      appendEntries: (entries) => this.appendEntries(group, entries),
      appendHardState: (hardState) => this.appendHardState(group, hardState),
      appendSnapshot: (snapshot, replacesLog) => this.appendSnapshot(group, snapshot, replacesLog),
    };
  }

  private appendEntries(group: WalGroup, entries: Entry[]): void {
    const last = entries[entries.length - 1];
    if (last === undefined) return;
    this.active.encoder.entries(group.groupId, entries);
    const previous = this.active.maxIndexByGroup.get(group);
    if (previous === undefined || last.index > previous) this.active.maxIndexByGroup.set(group, last.index);
  }

  private appendHardState(group: WalGroup, hardState: HardState): void {
    this.active.encoder.hardState(group.groupId, hardState);
    group.hardState = { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
  }

  /**
   * A snapshot from the leader (`replacesLog`) or one without data: its marker now, its file
   * (if any) written by the flush that carries the marker, before the marker. The group's
   * own snapshot with data: its file now, in the background, and its marker once the file
   * is durable.
   */
  private appendSnapshot(group: WalGroup, snapshot: Snapshot, replacesLog: boolean): void {
    const { index, term, confState } = snapshot.metadata;
    const data = snapshot.data;
    const marker: SnapshotMarker = {
      index,
      term,
      confState: { voters: [...confState.voters], learners: [...confState.learners] },
      replacesLog,
      dataLength: data.length,
      dataCrc: data.length === 0 ? 0 : crc32c(data),
    };
    const file = snapshotFileName(group.groupId, marker);
    if (replacesLog || file === undefined) {
      group.nextWrite = undefined; // older than this marker: it would go back in time
      this.appendMarker(group, marker, data);
      return;
    }
    const write: SnapshotWrite = { marker, file };
    if (group.writing !== undefined) group.nextWrite = { write, data };
    else this.startWrite(group, write, data);
  }

  /** Writes the file of `write` in the background; {@link written} follows. */
  private startWrite(group: WalGroup, write: SnapshotWrite, data: Uint8Array): void {
    group.writing = write;
    const done = this.onFile(write.file, async () => {
      await writeFileAtomically(this.fs, this.snapDir, write.file, data);
      await this.fs.syncDirectory(this.snapDir);
    })
      .then(() => this.written(group, write))
      .catch((error: unknown) => {
        this.fail(error);
      });
    this.snapshotWrites.add(done);
    void done.then(() => this.snapshotWrites.delete(done));
  }

  /**
   * The file of `write` is durable: its marker joins the WAL, unless a tombstone or a newer
   * marker (a snapshot from the leader) came first, and then the file is obsolete. Then the
   * snapshot taken meanwhile, if any, is written, and a sync starts (the host may have nothing
   * else to sync). After a failure nothing is appended: the node stops, and a restart deletes
   * the files no marker names.
   */
  private written(group: WalGroup, write: SnapshotWrite): void {
    group.writing = undefined;
    if (this.failure !== undefined) return;
    if (!group.dropped && write.marker.index > group.marker.index) this.appendMarker(group, write.marker, undefined);
    else this.active.obsoleteFiles.push(write.file);
    const next = group.nextWrite;
    group.nextWrite = undefined;
    if (next !== undefined && !group.dropped && next.write.marker.index > group.marker.index) this.startWrite(group, next.write, next.data);
    void this.sync().catch(() => undefined); // its failure is the host's next sync's
  }

  /** Appends `marker`; `data`: its file, to be written by the flush before the marker (undefined: written already). */
  private appendMarker(group: WalGroup, marker: SnapshotMarker, data: Uint8Array | undefined): void {
    this.active.encoder.snapshot(group.groupId, marker);
    const previousFile = group.snapshotFile;
    group.marker = marker;
    const file = group.snapshotFile;
    if (file !== undefined && data !== undefined) this.active.snapshotFiles.set(file, data);
    if (previousFile !== undefined && previousFile !== file) this.active.obsoleteFiles.push(previousFile);
    this.active.snapshotMarkers.set(group, marker);
  }
}
