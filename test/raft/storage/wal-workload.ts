/**
 * A random, Raft-shaped WAL workload for the simulated-disk tests: a few groups
 * appending, truncating uncommitted suffixes, setting hard states, taking and
 * receiving snapshots, compacting, being dropped and re-created, with syncs
 * that may still be pending when the next operations arrive.
 *
 * Snapshot data is a function of group, term and index, as a deterministic
 * state machine's is (every incarnation of a group that snapshots at one
 * (term, index) writes the same bytes; snapshot files are named by them).
 *
 * Each storage call writes exactly one WAL record, and recovery applies whole
 * batches, so whatever a crash leaves, the recovered WAL must equal the state
 * the workload had after some call. The workload keeps that history: the
 * state after every call and the models to resume from.
 *
 * "Equal" is logical for a group's own snapshots (`createSnapshot`): the WAL
 * writes their marker only once their file is durable, later than the call, so
 * a recovered group may hold any snapshot it had since its last one from a
 * leader, with the entries after it. Its hard state, its log and that leader's
 * snapshot must be the state's exactly.
 */
import { SeededRandom, type RandomSource } from '../../../src/raft/index.js';
import { crc32c, MemoryStorage, type DurableStorage, type Wal } from '../../../src/raft/storage/index.js';
import { raiseToSnapshot } from '../../../src/raft/storage/wal-recovery.js';
import { EntryType, type ConfState, type Entry, type HardState, type Snapshot, type WritableStorage } from '../../../src/raft/types.js';

/** The group ids of a workload. */
export const GROUPS = [1, 2, 3] as const;

/** The members a group is created with. */
export function confOf(group: number): ConfState {
  return { voters: [group, group + 10], learners: [] };
}

function snapshotOf(storage: WritableStorage): Snapshot {
  const snapshot = storage.snapshot();
  if (!snapshot.ok) throw new Error('snapshot unavailable');
  return snapshot.value;
}

/** The entries after the storage's snapshot. */
export function entriesAfterSnapshot(storage: WritableStorage): Entry[] {
  const result = storage.entries(snapshotOf(storage).metadata.index + 1, storage.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
  if (!result.ok) throw new Error(`entries unavailable: ${result.reason}`);
  return result.value;
}

function describeSnapshot({ metadata, data }: Snapshot): string {
  return `${metadata.index}/${metadata.term} ${JSON.stringify(metadata.confState)} ${data.length}:${crc32c(data)}`;
}

function describeEntries(entries: readonly Entry[]): string {
  return entries.map((entry) => `${entry.index}:${entry.term}:${entry.type}:${entry.data.length}:${crc32c(entry.data)}`).join(' ');
}

/**
 * What a group's WAL records say, independent of where its own snapshots fall: its raw hard
 * state, its snapshots since the last one from a leader (that one, or its creation's, first),
 * and every entry after that one, none compacted.
 */
class LogicalGroup {
  constructor(
    public hardState: HardState,
    private snapshots: Snapshot[],
    private entries: Entry[],
  ) {}

  static created(group: number): LogicalGroup {
    return new LogicalGroup({ term: 0, vote: 0, commit: 0 }, [{ metadata: { index: 0, term: 0, confState: confOf(group) }, data: new Uint8Array(0) }], []);
  }

  clone(): LogicalGroup {
    return new LogicalGroup({ ...this.hardState }, [...this.snapshots], [...this.entries]);
  }

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    this.entries = [...this.entries.filter((entry) => entry.index < first.index), ...entries];
  }

  createSnapshot(snapshot: Snapshot): void {
    this.snapshots.push(snapshot);
  }

  applySnapshot(snapshot: Snapshot): void {
    this.snapshots = [snapshot];
    this.entries = [];
  }

  /** Why `storage`, as recovered, is not this group's state, or undefined when it is. */
  mismatch(storage: WritableStorage): string | undefined {
    const snapshot = snapshotOf(storage);
    const recovered = describeSnapshot(snapshot);
    if (!this.snapshots.some((had) => describeSnapshot(had) === recovered)) return `snapshot ${recovered} is none of ${this.snapshots.map(describeSnapshot).join(', ')}`;
    const { index, term } = snapshot.metadata;
    const entries = describeEntries(entriesAfterSnapshot(storage));
    const expected = describeEntries(this.entries.filter((entry) => entry.index > index));
    if (entries !== expected) return `entries after ${index}: ${entries} instead of ${expected}`;
    const hard = storage.initialState().hardState;
    const raised = raiseToSnapshot(this.hardState, index, term);
    if (hard.term !== raised.term || hard.vote !== raised.vote || hard.commit !== raised.commit) return `hard state ${JSON.stringify(hard)} instead of ${JSON.stringify(raised)}`;
    return undefined;
  }
}

/** Why the recovered `storages` are not the state `groups` describes, or undefined when they are. */
function mismatch(groups: ReadonlyMap<number, LogicalGroup>, storages: ReadonlyMap<number, WritableStorage>): string | undefined {
  const ids = (map: ReadonlyMap<number, unknown>): string => [...map.keys()].sort((a, b) => a - b).join(',');
  if (ids(groups) !== ids(storages)) return `groups ${ids(storages)} instead of ${ids(groups)}`;
  for (const [id, group] of groups) {
    const why = group.mismatch(storages.get(id) as WritableStorage);
    if (why !== undefined) return `group ${id}: ${why}`;
  }
  return undefined;
}

/** The snapshot data of `group` at (`term`, `index`): up to 200 bytes, the same every time. */
function snapshotData(group: number, term: number, index: number): Uint8Array {
  const random = new SeededRandom(group * 1_000_003 + term * 10_007 + index);
  const data = new Uint8Array(random.nextInt(200));
  for (let i = 0; i < data.length; i++) data[i] = random.nextInt(256);
  return data;
}

/** The state after one call, and the models to resume from. */
interface HistoryEntry {
  groups: Map<number, LogicalGroup>;
  models: Map<number, MemoryStorage>;
}

/** Drives one WAL with random operations and remembers every state it passed through. */
export class WalWorkload {
  /** States after each call since the last recovery, oldest first; the first is the recovered one. */
  readonly history: HistoryEntry[] = [];
  /** Index in {@link history} of the newest state known durable (a resolved sync, or a completed recovery). */
  durable = 0;
  /**
   * Errors of syncs that rejected (never expected), but for those of a killed process: a flush
   * whose fsync ran inline may go on in a microtask after the test killed its disk, which a
   * real killed process never does; what it then tries fails with `ESIMKILLED`.
   */
  readonly failures: unknown[] = [];
  private models = new Map<number, MemoryStorage>();
  private groups = new Map<number, LogicalGroup>();
  private storages = new Map<number, DurableStorage>();
  private readonly terms = new Map<number, number>();
  private wal: Wal | undefined;

  constructor(private readonly random: RandomSource) {
    this.record();
  }

  /**
   * Checks the recovered `wal` against the history: its state must be one the
   * workload passed through at or after the newest durable one. Resumes from
   * that state (dropping the states after it, which are lost) and opens every
   * group, creating missing ones. Call it once `Wal.open` resolved: from then on
   * the recovered state counts as durable (the WAL synced it before resolving).
   * Returns the recovered groups' storages.
   */
  recover(wal: Wal): Map<number, DurableStorage> {
    this.wal = wal;
    this.storages = new Map(wal.groupIds().map((id) => [id, wal.openGroup(id)]));
    const recovered = new Map(this.storages);
    let match = -1;
    for (let at = this.history.length - 1; at >= this.durable; at--) {
      if (mismatch((this.history[at] as HistoryEntry).groups, this.storages) === undefined) {
        match = at;
        break;
      }
    }
    if (match < 0) {
      const why = mismatch((this.history[this.durable] as HistoryEntry).groups, this.storages);
      throw new Error(`recovered a state the workload never had at or after its durable one; against the durable one: ${why}`);
    }
    this.history.splice(match + 1);
    const resumed = this.history[match] as HistoryEntry;
    this.models = new Map([...resumed.models].map(([id, model]) => [id, model.clone()]));
    this.groups = new Map([...resumed.groups].map(([id, group]) => [id, group.clone()]));
    // The hard state the WAL restarted with (raised to the snapshot it recovered, which may be older
    // than the model's): what the next hard state record builds on.
    for (const [id, storage] of this.storages) {
      const hardState = storage.initialState().hardState;
      (this.models.get(id) as MemoryStorage).setHardState(hardState);
      (this.groups.get(id) as LogicalGroup).hardState = { ...hardState };
    }
    this.history.splice(0, match);
    this.durable = 0;
    for (const id of GROUPS) {
      if (this.storages.has(id)) continue;
      this.storages.set(id, wal.openGroup(id, { confState: confOf(id) }));
      this.models.set(id, new MemoryStorage({ confState: confOf(id) }));
      this.groups.set(id, LogicalGroup.created(id));
      this.record();
    }
    return recovered;
  }

  /** Does one random storage call or a sync. */
  step(): void {
    const wal = this.wal;
    if (wal === undefined) throw new Error('no wal: call recover first');
    const group = GROUPS[this.random.nextInt(GROUPS.length)] as number;
    const storage = this.storages.get(group) as DurableStorage;
    const model = this.models.get(group) as MemoryStorage;
    const roll = this.random.nextInt(100);
    if (roll < 40) this.append(group, storage, model);
    else if (roll < 58) this.setHardState(group, storage, model, 0);
    else if (roll < 68) this.createSnapshot(storage, model);
    else if (roll < 71) this.applySnapshot(group, storage, model);
    else if (roll < 73) this.dropAndCreate(wal, group);
    else this.sync(wal);
  }

  private term(group: number): number {
    if (this.random.nextInt(20) === 0) this.terms.set(group, (this.terms.get(group) ?? 1) + 1);
    return this.terms.get(group) ?? 1;
  }

  /** Raft-shaped: never rewrites committed or snapshotted entries; terms never go down. */
  private append(group: number, storage: DurableStorage, model: MemoryStorage): void {
    const committed = Math.max(model.initialState().hardState.commit, snapshotOf(model).metadata.index);
    const start = committed + 1 + this.random.nextInt(model.lastIndex() - committed + 1);
    const term = Math.max(this.term(group), ...entriesAfterSnapshot(model).map((entry) => entry.term), snapshotOf(model).metadata.term);
    const entries: Entry[] = [];
    for (let i = 0; i < 1 + this.random.nextInt(4); i++) {
      const size = this.random.nextInt(8) === 0 ? this.random.nextInt(3000) : this.random.nextInt(60);
      entries.push({ index: start + i, term, type: i === 3 ? EntryType.ConfChange : EntryType.Normal, data: this.bytes(size) });
    }
    this.terms.set(group, term);
    model.append(entries);
    storage.append(entries);
    this.logical(group).append(entries);
    this.record();
  }

  private setHardState(group: number, storage: DurableStorage, model: MemoryStorage, atLeast: number): void {
    const { hardState } = model.initialState();
    const low = Math.max(hardState.commit, snapshotOf(model).metadata.index, atLeast);
    const commit = low + this.random.nextInt(Math.max(0, model.lastIndex() - low) + 1);
    const term = Math.max(this.term(group), hardState.term);
    const next = { term, vote: term === hardState.term ? hardState.vote : this.random.nextInt(4), commit };
    model.setHardState(next);
    storage.setHardState(next);
    this.logical(group).hardState = next;
    this.record();
  }

  /** The application's snapshot at a committed index, and sometimes a compaction up to it. */
  private createSnapshot(storage: DurableStorage, model: MemoryStorage): void {
    const snapshotIndex = snapshotOf(model).metadata.index;
    const commit = model.initialState().hardState.commit;
    if (commit <= snapshotIndex) return;
    const index = snapshotIndex + 1 + this.random.nextInt(commit - snapshotIndex);
    const confState = confOf(1 + this.random.nextInt(3));
    const term = model.term(index);
    if (!term.ok) throw new Error(`no term at snapshot index ${index}`);
    const data = snapshotData(storage.groupId, term.value, index);
    this.logical(storage.groupId).createSnapshot(model.createSnapshot(index, confState, data));
    storage.createSnapshot(index, confState, data);
    this.record();
    if (this.random.nextInt(2) === 0) {
      model.compact(index + 1);
      storage.compact(index + 1);
    }
  }

  /** A snapshot from the leader, past the log, then the hard state that commits it (two records). */
  private applySnapshot(group: number, storage: DurableStorage, model: MemoryStorage): void {
    const index = model.lastIndex() + 1 + this.random.nextInt(5);
    const term = Math.max(this.term(group), model.initialState().hardState.term);
    const snapshot: Snapshot = { metadata: { index, term, confState: confOf(group) }, data: snapshotData(group, term, index) };
    model.applySnapshot(snapshot);
    storage.applySnapshot(snapshot);
    this.logical(group).applySnapshot(snapshot);
    this.record();
    this.setHardState(group, storage, model, index);
  }

  /** The replica is removed and later added back: a tombstone, then a new group (two records). */
  private dropAndCreate(wal: Wal, group: number): void {
    wal.dropGroup(group);
    this.storages.delete(group);
    this.models.delete(group);
    this.groups.delete(group);
    this.record();
    this.storages.set(group, wal.openGroup(group, { confState: confOf(group) }));
    this.models.set(group, new MemoryStorage({ confState: confOf(group) }));
    this.groups.set(group, LogicalGroup.created(group));
    this.record();
  }

  private sync(wal: Wal): void {
    const at = this.history.length - 1;
    void wal.sync().then(
      () => {
        if (this.wal === wal) this.durable = Math.max(this.durable, at);
      },
      (error: unknown) => {
        if (!byKilledProcess(error)) this.failures.push(error);
      },
    );
  }

  private bytes(size: number): Uint8Array {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = this.random.nextInt(256);
    return data;
  }

  private logical(group: number): LogicalGroup {
    return this.groups.get(group) as LogicalGroup;
  }

  private record(): void {
    this.history.push({
      groups: new Map([...this.groups].map(([id, group]) => [id, group.clone()])),
      models: new Map([...this.models].map(([id, model]) => [id, model.clone()])),
    });
  }
}

/** True when `error`, or an error in its chain of causes, is a killed process's call on the simulated disk. */
function byKilledProcess(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if ((cause as Error & { code?: unknown }).code === 'ESIMKILLED') return true;
  }
  return false;
}
