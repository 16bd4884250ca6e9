/**
 * The in-memory log's byte bound (`Replica.maybeSnapshot`): a group snapshots once the entries
 * applied since its last snapshot hold `snapshotLogBytes` (or that snapshot's size, if more),
 * and keeps about `retainedBytes` of entries behind it.
 */
import { expect } from 'chai';
import { createSilentLogger } from '../../src/common/index.js';
import { CommandOp } from '../../src/node/kv-command.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import { Replica } from '../../src/node/replica.js';
import { SnapshotBudget, snapshotSpread } from '../../src/node/snapshot-budget.js';
import { confChangeFor } from '../../src/node/conf-change-context.js';
import { ConfChangeType, MemoryStorage, SeededRandom } from '../../src/raft/index.js';
import { systemRuntime } from '../../src/node/runtime.js';
import { TurnLoop } from '../../src/node/turn-loop.js';
import { settle } from './support/turn-fixtures.js';

interface Bounds {
  snapshotLogBytes?: number;
  snapshotSpread?: number;
  retainedBytes?: number;
  snapshotBudget?: SnapshotBudget;
}

const snapshotIndex = (storage: MemoryStorage): number => {
  const snapshot = storage.snapshot();
  return snapshot.ok ? snapshot.value.metadata.index : -1;
};

/** A one-voter group that elected itself, with its storage. */
function leader(bounds: Bounds): { replica: Replica; storage: MemoryStorage } {
  const storage = new MemoryStorage({ confState: { voters: [1], learners: [] } });
  const replica = new Replica({
    shardId: 0,
    replicaId: 1,
    storage,
    machine: KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]),
    logger: createSilentLogger(),
    snapshotIntervalEntries: 10_000,
    retainedEntries: 1_000,
    ...bounds,
    raft: { electionTick: 10, heartbeatTick: 2, preVote: true, checkQuorum: true, random: new SeededRandom(1) },
  });
  replica.control({ kind: 'campaign' });
  while (turn(replica)) {
    // elected; its empty entry durable and applied
  }
  return { replica, storage };
}

/** One turn as the host runs it, the sync done at once; false when there was nothing to do. */
function turn(replica: Replica): boolean {
  replica.step();
  const ready = replica.collectReady();
  if (ready === undefined) return false;
  replica.applyDurable(ready);
  replica.handleReady(ready, { route: () => undefined });
  return true;
}

/**
 * A turn loop as the node runs it (its syncs done at once, every replica hosted, nothing sent),
 * sharing `budget` with the groups it turns; `fatal()` is what it stopped on, if anything.
 */
function turnLoop(budget: SnapshotBudget): { loop: TurnLoop; fatal: () => unknown } {
  let fatal: unknown;
  const loop = new TurnLoop({
    runtime: systemRuntime,
    sync: () => Promise.resolve(),
    flush: () => undefined,
    router: { route: () => undefined, isHosted: () => true },
    events: undefined,
    onFatal: (error) => {
      fatal = error;
    },
    snapshotBudget: budget,
  });
  return { loop, fatal: () => fatal };
}

/** Puts `count` values of `valueBytes` under distinct keys, each applied before the next. */
function put(replica: Replica, count: number, valueBytes: number, firstKey = 0): void {
  for (let i = 0; i < count; i++) {
    let applied = false;
    replica.write({ op: CommandOp.Put, key: Buffer.from(`key-${firstKey + i}`), value: Buffer.alloc(valueBytes, 1) }, () => {
      applied = true;
    });
    while (turn(replica)) {
      // proposed, durable, committed, applied
    }
    expect(applied, `put ${i} applied`).to.equal(true);
  }
}

describe('node/replica: the log in memory is bounded by bytes too', () => {
  it('snapshots once the entries applied since the last hold snapshotLogBytes, and keeps about retainedBytes behind it', () => {
    const { replica, storage } = leader({ snapshotLogBytes: 64 * 1024, retainedBytes: 8 * 1024 });
    put(replica, 40, 1024); // ~40 KiB of entries: under the bound
    const none = storage.snapshot();
    expect(none.ok ? none.value.metadata.index : -1, 'no snapshot yet').to.equal(0);
    expect(storage.firstIndex()).to.equal(1);
    put(replica, 40, 1024, 40); // past 64 KiB
    const snapshot = storage.snapshot();
    expect(snapshot.ok).to.equal(true);
    const index = snapshot.ok ? snapshot.value.metadata.index : 0;
    expect(index, 'a snapshot was taken').to.be.greaterThan(60);
    const kept = index + 1 - storage.firstIndex();
    // Entries are ~1.06 KiB each: 8 KiB keeps 7 of them, not the 1,000 the entry count allows.
    expect(kept).to.be.within(6, 8);
  });

  it('counts the bytes of the entries it keeps, not an average: large entries after many small ones keep only what fits', () => {
    const retainedBytes = 8 * 1024;
    const { replica, storage } = leader({ snapshotLogBytes: 64 * 1024, retainedBytes });
    put(replica, 300, 8); // ~15 KiB of small entries
    put(replica, 60, 1024, 300); // then large ones, past 64 KiB in all
    const snapshot = storage.snapshot();
    const index = snapshot.ok ? snapshot.value.metadata.index : 0;
    expect(index, 'a snapshot was taken').to.be.greaterThan(300);
    const kept = storage.entries(storage.firstIndex(), index + 1, Number.POSITIVE_INFINITY);
    const keptBytes = kept.ok ? kept.value.reduce((sum, entry) => sum + entry.data.length, 0) : -1;
    expect(keptBytes).to.be.within(retainedBytes - 1100, retainedBytes);
  });

  it('does not snapshot a state larger than the bound for less log than its own size', () => {
    const bound = 16 * 1024;
    const { replica, storage } = leader({ snapshotLogBytes: bound });
    const taken: { index: number; bytes: number }[] = [];
    for (let i = 0; i < 120; i++) {
      put(replica, 1, 1024, i); // distinct keys: the state grows by ~1 KiB a put
      const snapshot = storage.snapshot();
      if (snapshot.ok && snapshot.value.metadata.index > (taken.at(-1)?.index ?? 0)) {
        taken.push({ index: snapshot.value.metadata.index, bytes: snapshot.value.data.length });
      }
    }
    expect(taken.length, 'snapshots taken').to.be.at.least(3);
    let previous = { index: 2, bytes: 0 }; // the election's empty entry is index 2
    for (const next of taken) {
      // Each put's entry holds its 1 KiB value plus ~40 bytes of key, session and header.
      const logBytes = (next.index - previous.index) * 1024;
      const needed = Math.max(bound, previous.bytes);
      expect(logBytes, `snapshot at ${next.index} after one of ${previous.bytes} bytes`).to.be.within(needed - 1100, needed + 1100);
      previous = next;
    }
    expect(taken.at(-1)?.bytes ?? 0, 'the state outgrew the bound').to.be.greaterThan(2 * bound);
  });

  it('without byte bounds only the entry count snapshots (as the simulator\'s scenarios without them do)', () => {
    const { replica, storage } = leader({});
    put(replica, 100, 4096);
    const snapshot = storage.snapshot();
    expect(snapshot.ok ? snapshot.value.metadata.index : -1).to.equal(0);
    expect(storage.firstIndex()).to.equal(1);
  });

  it('takes no more snapshots in a turn than the node\'s budget, except the one a new member needs', () => {
    const budget = new SnapshotBudget(1);
    const { replica, storage } = leader({ snapshotLogBytes: 16 * 1024, snapshotBudget: budget });
    // The test's turns never refill the budget, as a turn past it would not.
    put(replica, 20, 1024);
    const first = snapshotIndex(storage);
    expect(first, 'the budget\'s one snapshot').to.be.within(14, 18);
    put(replica, 40, 1024, 20);
    expect(snapshotIndex(storage), 'due again, but the budget is spent').to.equal(first);
    budget.refill();
    put(replica, 1, 1024, 60);
    const second = snapshotIndex(storage);
    expect(second, 'taken at the next Ready once refilled').to.be.greaterThan(first + 30);
    // A learner joins with the budget spent: the snapshot it needs is taken anyway, in the
    // Ready that applies the change (it must hold the whole membership).
    replica.control({ kind: 'conf-change', change: confChangeFor(ConfChangeType.AddLearner, 2, 'n2') });
    while (turn(replica)) {
      // proposed, durable, committed, applied
    }
    expect(replica.confState.learners).to.deep.equal([2]);
    expect(snapshotIndex(storage), 'the new member\'s snapshot').to.be.greaterThan(second);
  });

  it('gives an idle replica whose wanted snapshot the budget put off the next turn (it has no Ready to bring it back)', async () => {
    const budget = new SnapshotBudget(1);
    const groups = [leader({ snapshotBudget: budget }), leader({ snapshotBudget: budget }), leader({ snapshotBudget: budget })];
    for (const { replica } of groups) put(replica, 3, 100);
    const { loop, fatal } = turnLoop(budget);
    // As the WAL purge does: every idle replica asked at once, and marked.
    for (const { replica } of groups) {
      replica.requestSnapshot();
      loop.mark(replica);
    }
    await settle(20);
    expect(fatal()).to.equal(undefined);
    expect(loop.stats.turns, 'one turn per snapshot').to.be.at.least(3);
    for (const [i, { replica, storage }] of groups.entries()) {
      expect(snapshotIndex(storage), `group ${i} snapshotted`).to.be.greaterThan(0);
      expect(replica.snapshotDue).to.equal(false);
    }
  });

  it('takes a due snapshot the budget put off at the next turn, even once the group is idle, and then stops', async () => {
    const budget = new SnapshotBudget(1);
    const a = leader({ snapshotLogBytes: 4096, snapshotBudget: budget });
    const b = leader({ snapshotLogBytes: 4096, snapshotBudget: budget });
    put(a.replica, 5, 1024); // due: takes the budget's one snapshot
    expect(snapshotIndex(a.storage)).to.be.greaterThan(0);
    put(b.replica, 5, 1024); // due too, with the budget spent: put off, and b goes idle
    expect(snapshotIndex(b.storage)).to.equal(0);
    expect(b.replica.snapshotDue).to.equal(true);
    const { loop } = turnLoop(budget);
    loop.mark(b.replica); // a tick
    await settle(20);
    expect(snapshotIndex(b.storage), 'taken at the next turn').to.be.greaterThan(0);
    expect(b.replica.snapshotDue).to.equal(false);
    expect(loop.stats.turns, 'and no turn after it: an idle replica is not marked again and again').to.be.at.most(2);
  });

  it('scales its bounds by the replica\'s spread: a group at 1.25× snapshots a quarter later than one at 1×', () => {
    const bound = 32 * 1024;
    const plain = leader({ snapshotLogBytes: bound });
    const spread = leader({ snapshotLogBytes: bound, snapshotSpread: 1.25 });
    const firstSnapshotAfter = (group: { replica: Replica; storage: MemoryStorage }): number => {
      for (let i = 0; i < 100; i++) {
        put(group.replica, 1, 1024, i);
        if (snapshotIndex(group.storage) > 0) return i + 1;
      }
      return -1;
    };
    const plainPuts = firstSnapshotAfter(plain);
    const spreadPuts = firstSnapshotAfter(spread);
    // Each put's entry is its 1 KiB value plus ~40 bytes of key, session and header.
    expect(plainPuts).to.be.within(29, 32);
    expect(spreadPuts).to.be.within(37, 40);
  });

  it('spreads the shards of a node over [0.75, 1.25) of the bounds, the mean unchanged', () => {
    const spreads = Array.from({ length: 64 }, (_, shard) => snapshotSpread(shard));
    for (const spread of spreads) expect(spread).to.be.at.least(0.75).and.below(1.25);
    const mean = spreads.reduce((sum, spread) => sum + spread, 0) / spreads.length;
    expect(mean).to.be.closeTo(1, 0.01);
    // Evenly: no two of 64 shards closer than 1/200 of the range, no gap wider than 1/20 of it.
    const sorted = [...spreads].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) {
      const gap = (sorted[i] ?? 0) - (sorted[i - 1] ?? 0);
      expect(gap, `gap ${i}`).to.be.within(0.5 / 200, 0.5 / 20);
    }
    expect(snapshotSpread(7), 'the same for every replica of a shard').to.equal(snapshotSpread(7));
  });

  it('refuses a budget of no snapshot bytes per turn, which would give put-off replicas turn after turn', () => {
    expect(() => new SnapshotBudget(0)).to.throw(RangeError, /at least 1, got 0/);
    expect(() => new SnapshotBudget(1.5)).to.throw(RangeError);
  });
});
