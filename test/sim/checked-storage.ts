/**
 * A `ReplicaStorageProvider` that hands the host its real storage (the WAL on the simulated
 * disk) wrapped, so the checker sees every append before it happens, and what the WAL
 * recovered at every restart (log matching).
 */
import type { ReplicaStorageProvider } from '../../src/node/replica-storage.js';
import type { ConfState, Entry, HardState, Snapshot, WritableStorage } from '../../src/raft/index.js';
import type { SimChecker } from './sim-checker.js';

/** Wraps `provider` so every append of every group is checked first. */
export function checkedStorage(provider: ReplicaStorageProvider, checker: SimChecker, nodeId: string): ReplicaStorageProvider {
  const wrap = (shardId: number, storage: WritableStorage): WritableStorage => new CheckedStorage(shardId, nodeId, storage, checker);
  return {
    recovered: (shardId) => {
      const storage = provider.recovered(shardId);
      if (storage === undefined) return undefined;
      const first = storage.firstIndex();
      const entries = storage.entries(first, storage.lastIndex() + 1, Number.POSITIVE_INFINITY);
      const previous = storage.term(first - 1);
      if (entries.ok) checker.onAppend(shardId, nodeId, entries.value, previous.ok ? previous.value : undefined);
      return wrap(shardId, storage);
    },
    recoveredShardIds: () => provider.recoveredShardIds(),
    create: (shardId, confState) => wrap(shardId, provider.create(shardId, confState)),
    drop: (shardId) => provider.drop(shardId),
    sync: () => provider.sync(),
    failure: () => provider.failure(),
    groupsPinningLog: () => provider.groupsPinningLog(),
    logBytes: () => provider.logBytes(),
    fsyncsInline: () => provider.fsyncsInline(),
    close: () => provider.close(),
  };
}

class CheckedStorage implements WritableStorage {
  constructor(
    private readonly shardId: number,
    private readonly nodeId: string,
    private readonly storage: WritableStorage,
    private readonly checker: SimChecker,
  ) {}

  initialState(): ReturnType<WritableStorage['initialState']> {
    return this.storage.initialState();
  }

  entries(lo: number, hi: number, maxBytes: number): ReturnType<WritableStorage['entries']> {
    return this.storage.entries(lo, hi, maxBytes);
  }

  term(index: number): ReturnType<WritableStorage['term']> {
    return this.storage.term(index);
  }

  firstIndex(): number {
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.storage.lastIndex();
  }

  snapshot(): ReturnType<WritableStorage['snapshot']> {
    return this.storage.snapshot();
  }

  setHardState(hardState: HardState): void {
    this.storage.setHardState(hardState);
  }

  append(entries: Entry[]): void {
    const first = entries[0];
    if (first !== undefined) {
      const previous = this.storage.term(first.index - 1);
      this.checker.onAppend(this.shardId, this.nodeId, entries, previous.ok ? previous.value : undefined);
    }
    this.storage.append(entries);
  }

  applySnapshot(snapshot: Snapshot): void {
    this.storage.applySnapshot(snapshot);
  }

  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    return this.storage.createSnapshot(index, confState, data);
  }

  compact(index: number): void {
    this.storage.compact(index);
  }
}
