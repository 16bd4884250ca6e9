/**
 * A `ReplicaStorageProvider` that hands the host its real storage (the WAL on the simulated
 * disk) wrapped, so the checker sees every append before it happens, and what the WAL
 * recovered at every restart (log matching).
 */
import type { ReplicaStorageProvider } from '../../src/node/replica-storage.js';
import type { ConfState, Entry, HardState, Snapshot, WritableStorage } from '../../src/raft/index.js';
import type { SimChecker } from './sim-checker.js';

/**
 * Wraps `provider` so every append of every group is checked first, what a restart
 * recovered is reported, and so is the hard state each completed sync made durable.
 */
export function checkedStorage(provider: ReplicaStorageProvider, checker: SimChecker, nodeId: string): ReplicaStorageProvider {
  /** shard → the highest hard-state term written since the last `sync()` began. */
  let unsynced = new Map<number, number>();
  /** shard → how many times its replica was created or dropped: a sync that ends after that covers nothing of the new one. */
  const resets = new Map<number, number>();
  const reset = (shardId: number): void => {
    checker.onReplicaReset(nodeId, shardId);
    unsynced.delete(shardId);
    resets.set(shardId, (resets.get(shardId) ?? 0) + 1);
  };
  const wrap = (shardId: number, storage: WritableStorage): WritableStorage =>
    new CheckedStorage(shardId, nodeId, storage, checker, (term) => unsynced.set(shardId, Math.max(term, unsynced.get(shardId) ?? 0)));
  return {
    recovered: (shardId) => {
      const storage = provider.recovered(shardId);
      if (storage === undefined) {
        checker.onGroupMissing(shardId, nodeId);
        return undefined;
      }
      const first = storage.firstIndex();
      const entries = storage.entries(first, storage.lastIndex() + 1, Number.POSITIVE_INFINITY);
      if (!entries.ok) throw new Error(`recovered storage of shard ${shardId} on ${nodeId} cannot read its own entries`);
      const previous = storage.term(first - 1);
      checker.onRecovered(shardId, nodeId, storage.initialState().hardState.term, entries.value, previous.ok ? previous.value : undefined);
      return wrap(shardId, storage);
    },
    recoveredShardIds: () => provider.recoveredShardIds(),
    create: (shardId, confState) => {
      reset(shardId);
      return wrap(shardId, provider.create(shardId, confState));
    },
    drop: (shardId) => {
      reset(shardId);
      provider.drop(shardId);
    },
    sync: () => {
      // Everything written before this call is what the sync makes durable.
      const covered = [...unsynced].map(([shardId, term]) => ({ shardId, term, resets: resets.get(shardId) ?? 0 }));
      unsynced = new Map();
      return provider.sync().then(() => {
        for (const { shardId, term, resets: at } of covered) {
          if ((resets.get(shardId) ?? 0) === at) checker.onDurableTerm(nodeId, shardId, term);
        }
      });
    },
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
    private readonly onHardState: (term: number) => void,
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
    this.onHardState(hardState.term);
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
