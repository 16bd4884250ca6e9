/**
 * Where replicas keep their Raft state. The host talks to one provider per node:
 * the durable one shares one WAL across every group, so one `sync()` per turn is
 * the node's only fsync; the in-memory one serves tests.
 * @internal
 */
import { type ConfState, MemoryStorage, type RaftLogger, type WritableStorage } from '../raft/index.js';
import { Wal, type WalOptions } from '../raft/storage/index.js';

/** Per-group storage of one node, with one shared sync. */
export interface ReplicaStorageProvider {
  /** Storage of a group found on disk at start-up, or undefined when there is none. */
  recovered(shardId: number): WritableStorage | undefined;
  /** Ids of every group found on disk at start-up. */
  recoveredShardIds(): number[];
  /** Fresh storage for a new group: bootstrapped with `confState`, or empty (uninitialized). */
  create(shardId: number, confState?: ConfState): WritableStorage;
  /** Deletes a group's state for good. */
  drop(shardId: number): void;
  /** Makes every buffered write of every group durable (one fsync). */
  sync(): Promise<void>;
  /** The error that stopped the storage, if one did, also in a write no `sync()` waits for. */
  failure(): Error | undefined;
  /** Groups that must snapshot for the log on disk to shrink back under its bound (`wal-purge.ts`). */
  groupsPinningLog(): number[];
  /** Bytes of log on disk (0 in memory). */
  logBytes(): number;
  /** True while the log fsyncs inline, on the node's thread (`fsync-policy.ts`); false in memory. */
  fsyncsInline(): boolean;
  /** Syncs and releases files. */
  close(): Promise<void>;
}

/** Keeps everything in memory; `sync()` is a no-op. For tests. */
export class MemoryStorageProvider implements ReplicaStorageProvider {
  private readonly groups = new Map<number, MemoryStorage>();

  recovered(shardId: number): WritableStorage | undefined {
    return this.groups.get(shardId);
  }

  recoveredShardIds(): number[] {
    return [...this.groups.keys()];
  }

  create(shardId: number, confState?: ConfState): WritableStorage {
    const storage = new MemoryStorage(confState === undefined ? {} : { confState });
    this.groups.set(shardId, storage);
    return storage;
  }

  drop(shardId: number): void {
    this.groups.delete(shardId);
  }

  async sync(): Promise<void> {
    // Nothing is buffered.
  }

  failure(): Error | undefined {
    return undefined;
  }

  groupsPinningLog(): number[] {
    return [];
  }

  logBytes(): number {
    return 0;
  }

  fsyncsInline(): boolean {
    return false;
  }

  async close(): Promise<void> {
    // Nothing to release.
  }
}

/**
 * The durable provider: one {@link Wal} under the node's data dir (`wal/`, `snap/`)
 * shared by every group, so one `sync()` covers a turn of every shard.
 */
export class WalStorageProvider implements ReplicaStorageProvider {
  private readonly recoveredIds: Set<number>;

  private constructor(private readonly wal: Wal) {
    this.recoveredIds = new Set(wal.groupIds());
  }

  /** Opens (creating if needed) and recovers the WAL under `dataDir`. */
  static async open(dataDir: string, logger: RaftLogger, options: WalOptions = {}): Promise<WalStorageProvider> {
    return new WalStorageProvider(await Wal.open(dataDir, logger, options));
  }

  recovered(shardId: number): WritableStorage | undefined {
    if (!this.recoveredIds.has(shardId)) return undefined;
    this.recoveredIds.delete(shardId);
    return this.wal.openGroup(shardId);
  }

  recoveredShardIds(): number[] {
    return [...this.recoveredIds];
  }

  create(shardId: number, confState?: ConfState): WritableStorage {
    if (this.recoveredIds.delete(shardId)) this.wal.dropGroup(shardId); // a leftover of an older incarnation
    return this.wal.openGroup(shardId, confState === undefined ? {} : { confState });
  }

  drop(shardId: number): void {
    this.recoveredIds.delete(shardId);
    this.wal.dropGroup(shardId);
  }

  sync(): Promise<void> {
    return this.wal.sync();
  }

  failure(): Error | undefined {
    return this.wal.failed();
  }

  fsyncsInline(): boolean {
    return this.wal.fsyncPolicy.isInline;
  }

  groupsPinningLog(): number[] {
    return this.wal.groupsPinningLog();
  }

  logBytes(): number {
    return this.wal.bytes();
  }

  close(): Promise<void> {
    return this.wal.close();
  }
}
