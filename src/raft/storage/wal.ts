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
 * Every segment after the first starts with a checkpoint: the hard state and
 * snapshot marker of every live group. So an old segment can be deleted as
 * soon as each group's durable snapshot covers the entries it holds there.
 *
 * All file I/O goes through the injected {@link FileSystem} (`WalOptions.fs`).
 */
import { join } from 'node:path';
import type { ConfState, Entry, HardState, RaftLogger, Snapshot } from '../types.js';
import { crc32c } from './crc32c.js';
import { DurableStorage, type GroupLog } from './durable-storage.js';
import { nodeFileSystem, type FileHandle, type FileSystem } from './file-system.js';
import { MemoryStorage, type MemoryStorageOptions } from './memory-storage.js';
import { readSnapshotFile, removeFile, TEMP_SUFFIX, writeFileAtomically, writeFully } from './snapshot-files.js';
import { RecordEncoder, type SnapshotMarker } from './wal-codec.js';
import { WalError } from './wal-errors.js';
import { WalGroup } from './wal-group.js';
import { listSegments, replaySegments, segmentFileName, type SegmentInfo } from './wal-recovery.js';

/** Tuning of a {@link Wal}. */
export interface WalOptions {
  /**
   * Roll to a new segment once the current one reaches this many bytes.
   * Default 64 MiB. Smaller segments are garbage-collected sooner but roll
   * (and restate every group's checkpoint) more often.
   */
  segmentBytes?: number;
  /**
   * The file system under `dir`. Default {@link nodeFileSystem}; the
   * whole-node simulator passes a simulated disk that can lose power.
   */
  fs?: FileSystem;
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
  /** Snapshot index per group whose marker is in this batch. */
  snapshotIndexes: Map<WalGroup, number>;
  /** Groups whose tombstone is in this batch. */
  tombstones: WalGroup[];
  /** Snapshot files that may be unreferenced once this batch is durable. */
  obsoleteFiles: string[];
}

function newBatch(): WriteBatch {
  return {
    encoder: new RecordEncoder(),
    maxIndexByGroup: new Map(),
    snapshotFiles: new Map(),
    snapshotIndexes: new Map(),
    tombstones: [],
    obsoleteFiles: [],
  };
}

function clearBatch(batch: WriteBatch): void {
  batch.encoder.clear();
  batch.maxIndexByGroup.clear();
  batch.snapshotFiles.clear();
  batch.snapshotIndexes.clear();
  batch.tombstones.length = 0;
  batch.obsoleteFiles.length = 0;
}

const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

/** A logger that drops everything, when none is injected. */
const SILENT: RaftLogger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * The shared WAL of one node. Open it with {@link Wal.open}, get each group's
 * storage with {@link Wal.openGroup}, call {@link Wal.sync} once per host-loop
 * turn BEFORE sending that turn's messages, and {@link Wal.close} at shutdown.
 */
export class Wal {
  private readonly fs: FileSystem;
  private readonly walDir: string;
  private readonly snapDir: string;
  private readonly logger: RaftLogger;
  private readonly segmentBytes: number;
  /** Segments on disk, oldest first; the last is the one being appended to. */
  private readonly segmentList: SegmentInfo[];
  /** Live groups by id (recovered or opened, not dropped). */
  private readonly groups: Map<number, WalGroup>;
  private handle: FileHandle;
  /** Bytes in the current segment. */
  private segmentSize: number;
  /** Where appends go. */
  private active: WriteBatch = newBatch();
  /** The batch being written (or idle and empty). */
  private spare: WriteBatch = newBatch();
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  private failure: WalError | undefined;
  private closed = false;

  private constructor(
    fs: FileSystem,
    walDir: string,
    snapDir: string,
    logger: RaftLogger,
    segmentBytes: number,
    segments: SegmentInfo[],
    groups: Map<number, WalGroup>,
    handle: FileHandle,
    segmentSize: number,
  ) {
    this.fs = fs;
    this.walDir = walDir;
    this.snapDir = snapDir;
    this.logger = logger;
    this.segmentBytes = segmentBytes;
    this.segmentList = segments;
    this.groups = groups;
    this.handle = handle;
    this.segmentSize = segmentSize;
  }

  /**
   * Opens (creating if needed) the WAL under `dir` (`dir/wal`, `dir/snap`) and
   * recovers every group's hard state, snapshot and entries. A torn record at
   * the tail of the last segment is cut off (the file is truncated); damage
   * anywhere else rejects with `WalCorruptionError` naming the file and offset.
   */
  static async open(dir: string, logger: RaftLogger = SILENT, options: WalOptions = {}): Promise<Wal> {
    const fs = options.fs ?? nodeFileSystem;
    const walDir = join(dir, 'wal');
    const snapDir = join(dir, 'snap');
    await fs.mkdir(walDir);
    await fs.mkdir(snapDir);
    await fs.syncDirectory(dir); // the entries of wal/ and snap/ themselves
    const walNames = await fs.readdir(walDir);
    for (const name of walNames) if (name.endsWith(TEMP_SUFFIX)) await removeFile(fs, join(walDir, name));
    const replay = await replaySegments(fs, listSegments(walDir, walNames));
    for (const { groupId, from, to } of replay.raised) {
      logger.warn('wal raised a recovered hard state to its snapshot', { group: groupId, from, to });
    }

    const referenced = new Set<string>();
    for (const group of replay.groups.values()) {
      const name = group.snapshotFile;
      if (name === undefined || group.recovered === undefined) continue;
      referenced.add(name);
      group.recovered.snapshotData = await readSnapshotFile(fs, snapDir, name, group.marker);
    }
    for (const name of await fs.readdir(snapDir)) {
      if (!referenced.has(name)) await removeFile(fs, join(snapDir, name));
    }

    let handle: FileHandle;
    let segmentSize: number;
    const last = replay.segments[replay.segments.length - 1];
    if (last === undefined) {
      const path = join(walDir, segmentFileName(1));
      handle = await fs.open(path, 'truncate');
      await fs.syncDirectory(walDir);
      replay.segments.push({ sequence: 1, path, maxIndexByGroup: new Map() });
      segmentSize = 0;
    } else {
      handle = await fs.open(last.path, 'existing');
      segmentSize = replay.lastSegmentValidBytes;
      if (replay.tornBytes > 0) {
        await handle.truncate(segmentSize);
        await handle.datasync();
        logger.warn('wal torn tail cut off', { file: last.path, offset: segmentSize, bytes: replay.tornBytes });
      }
    }
    logger.info('wal recovered', { segments: replay.segments.length, groups: replay.groups.size });
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    return new Wal(fs, walDir, snapDir, logger, segmentBytes, replay.segments, replay.groups, handle, segmentSize);
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
    this.groups.delete(groupId);
    this.active.tombstones.push(group);
    const file = group.snapshotFile;
    if (file !== undefined) this.active.obsoleteFiles.push(file);
  }

  /**
   * Makes every record appended before this call durable: writes pending
   * snapshot files, then the buffered records, with one fsync for all groups.
   * Calls made while a sync is on disk share the next one. After an I/O
   * failure every sync rejects with `WalError('IO_FAILED')`: the node must
   * stop (a failed fsync cannot be retried safely).
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

  /** Syncs what is buffered and closes the segment; later writes throw `WalError('CLOSED')`. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
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
    const bytes = batch.encoder.bytes();
    // Decided and encoded now, while group state matches exactly the records in `batch`.
    const checkpoint = this.segmentSize + bytes.length >= this.segmentBytes ? this.encodeCheckpoint() : undefined;
    try {
      if (batch.snapshotFiles.size > 0) {
        for (const [name, data] of batch.snapshotFiles) await writeFileAtomically(this.fs, this.snapDir, name, data);
        await this.fs.syncDirectory(this.snapDir);
      }
      // A synchronous write: it only copies into the page cache (microseconds for a turn's
      // records), while an async write is a thread-pool round trip per turn — on the 2-core
      // bench machine ~13% of a busy node's samples sat in it. The fsync stays async.
      writeFully(this.handle, bytes, this.segmentSize);
      this.segmentSize += bytes.length;
      await this.handle.datasync();
      this.markDurable(batch);
      if (checkpoint !== undefined) await this.roll(checkpoint);
      await this.deleteObsoleteSnapshots(batch.obsoleteFiles);
      await this.collectGarbage();
    } catch (error) {
      this.failure = new WalError('IO_FAILED', `wal write failed: ${String(error)}`, { cause: error });
      this.logger.error('wal write failed', { dir: this.walDir, error: String(error) });
      throw this.failure;
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
    for (const [group, index] of batch.snapshotIndexes) group.durableSnapshotIndex = index;
    for (const group of batch.tombstones) segment.maxIndexByGroup.delete(group);
    for (const group of batch.tombstones) group.durableSnapshotIndex = Number.MAX_SAFE_INTEGER;
  }

  /** Hard state and snapshot marker of every live group: the head of a new segment. */
  private encodeCheckpoint(): Buffer {
    const encoder = new RecordEncoder(1024);
    for (const group of this.groups.values()) {
      if (group.hardState !== undefined) encoder.hardState(group.groupId, group.hardState);
      encoder.snapshot(group.groupId, { ...group.marker, replacesLog: false });
    }
    return Buffer.from(encoder.bytes());
  }

  /** Starts the next segment, written whole (checkpoint) by temp file + rename so it is never half made. */
  private async roll(checkpoint: Buffer): Promise<void> {
    const sequence = (this.segmentList[this.segmentList.length - 1] as SegmentInfo).sequence + 1;
    const name = segmentFileName(sequence);
    await writeFileAtomically(this.fs, this.walDir, name, checkpoint);
    await this.fs.syncDirectory(this.walDir);
    const path = join(this.walDir, name);
    const handle = await this.fs.open(path, 'existing');
    await this.handle.close();
    this.handle = handle;
    this.segmentSize = checkpoint.length;
    this.segmentList.push({ sequence, path, maxIndexByGroup: new Map() });
    this.logger.debug('wal segment rolled', { sequence, groups: this.groups.size });
  }

  /** Deletes snapshot files no live group's latest marker names any more. */
  private async deleteObsoleteSnapshots(names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    const referenced = new Set<string>();
    for (const group of this.groups.values()) {
      const file = group.snapshotFile;
      if (file !== undefined) referenced.add(file);
    }
    for (const name of names) if (!referenced.has(name)) await removeFile(this.fs, join(this.snapDir, name));
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
    this.active.encoder.snapshot(group.groupId, marker);
    const previousFile = group.snapshotFile;
    group.marker = marker;
    const file = group.snapshotFile;
    if (file !== undefined) this.active.snapshotFiles.set(file, data);
    if (previousFile !== undefined && previousFile !== file) this.active.obsoleteFiles.push(previousFile);
    this.active.snapshotIndexes.set(group, index);
  }
}
