/**
 * A replica's snapshot schedule (`replica-snapshots.ts`) alone: the bounds, what is asked of
 * it and in which order those requests give way to each other, the budget, and the log kept.
 * The same rules through a whole replica are in log-bytes.test.ts.
 */
import { expect } from 'chai';
import { ReplicaSnapshots, SnapshotWant, type SnapshotBounds } from '../../src/node/replica-snapshots.js';
import { SnapshotBudget } from '../../src/node/snapshot-budget.js';
import { EntryType, MemoryStorage } from '../../src/raft/index.js';

const CONF = { voters: [1], learners: [] };
const STATE = (): Uint8Array => new Uint8Array(10);

/** A storage holding entries 1..`count` of `entryBytes` each, all "applied", and a schedule over it. */
function schedule(bounds: Partial<SnapshotBounds>, count = 100, entryBytes = 100): { snapshots: ReplicaSnapshots; storage: MemoryStorage } {
  const storage = new MemoryStorage({ confState: CONF });
  storage.append(Array.from({ length: count }, (_, i) => ({ term: 1, index: i + 1, type: EntryType.Normal, data: new Uint8Array(entryBytes) })));
  const snapshots = new ReplicaSnapshots(storage, {
    intervalEntries: 1_000, logBytes: Number.POSITIVE_INFINITY, spread: 1, retainedEntries: 10,
    retainedBytes: Number.POSITIVE_INFINITY, budget: undefined, ...bounds,
  });
  return { snapshots, storage };
}

describe('node/replica-snapshots: when a replica snapshots', () => {
  it('takes one at the entry bound, times the spread, and keeps retainedEntries behind it', () => {
    const { snapshots, storage } = schedule({ intervalEntries: 40, spread: 1.25 });
    expect(snapshots.maybeTake(49, CONF, STATE), 'under 40 × 1.25').to.equal(undefined);
    const taken = snapshots.maybeTake(50, CONF, STATE);
    expect(taken).to.deep.equal({ index: 50, bytes: 10, retained: 10, wanted: false });
    expect(storage.firstIndex()).to.equal(41);
    expect(snapshots.maybeTake(60, CONF, STATE), 'counted from the new snapshot').to.equal(undefined);
  });

  it('takes one at the byte bound, or at the last snapshot\'s size if that is more, and keeps at most retainedBytes', () => {
    const { snapshots, storage } = schedule({ logBytes: 1_000, retainedBytes: 350 });
    for (let i = 0; i < 9; i++) snapshots.applied(100);
    expect(snapshots.maybeTake(9, CONF, STATE)).to.equal(undefined);
    snapshots.applied(100);
    expect(snapshots.maybeTake(10, CONF, () => new Uint8Array(2_000))).to.include({ index: 10, retained: 3 });
    expect(storage.firstIndex()).to.equal(8);
    for (let i = 0; i < 19; i++) snapshots.applied(100);
    expect(snapshots.maybeTake(29, CONF, STATE), 'the state is 2,000 bytes: not for less log than that').to.equal(undefined);
    snapshots.applied(100);
    expect(snapshots.maybeTake(30, CONF, STATE)).to.include({ index: 30 });
  });

  it('takes a wanted one at once, below every bound, and only once', () => {
    const { snapshots } = schedule({});
    snapshots.request();
    expect(snapshots.state).to.equal(SnapshotWant.Wanted);
    expect(snapshots.maybeTake(5, CONF, STATE)).to.include({ index: 5, wanted: true });
    expect(snapshots.state).to.equal(SnapshotWant.None);
    expect(snapshots.maybeTake(6, CONF, STATE)).to.equal(undefined);
  });

  it('puts off past the budget, wanted from then on; the next try with room takes it', () => {
    const budget = new SnapshotBudget(1);
    const { snapshots } = schedule({ intervalEntries: 10, budget });
    budget.spend(1); // another replica spent this turn's
    expect(snapshots.maybeTake(20, CONF, STATE)).to.equal(undefined);
    expect(snapshots.putOff).to.equal(true);
    expect(snapshots.wanted).to.equal(true);
    expect(snapshots.maybeTake(21, CONF, STATE), 'still no room').to.equal(undefined);
    budget.refill();
    expect(snapshots.maybeTake(22, CONF, STATE)).to.include({ index: 22, wanted: true });
    expect(snapshots.putOff).to.equal(false);
  });

  it('takes a new member\'s whatever the budget, and neither a purge request nor an installed snapshot cancels it', () => {
    const budget = new SnapshotBudget(1);
    const { snapshots } = schedule({ budget });
    budget.spend(1);
    snapshots.memberJoined();
    snapshots.request();
    expect(snapshots.state, 'a request does not downgrade it').to.equal(SnapshotWant.ForMember);
    snapshots.installed(30, 10);
    expect(snapshots.state, 'an installed snapshot does not end it').to.equal(SnapshotWant.ForMember);
    expect(snapshots.maybeTake(30, CONF, STATE), 'nothing applied past the installed one yet').to.equal(undefined);
    expect(snapshots.maybeTake(31, CONF, STATE)).to.include({ index: 31, wanted: true });
    expect(snapshots.state).to.equal(SnapshotWant.None);
  });

  it('counts the budget in bytes: small snapshots share a turn, and one past the budget is the last', () => {
    const budget = new SnapshotBudget(25);
    const groups = [0, 1, 2, 3].map(() => schedule({ intervalEntries: 10, budget }).snapshots);
    const taken = groups.map((group) => group.maybeTake(20, CONF, STATE) !== undefined);
    // 10 bytes each: the first three fit under 25 bytes (the third ends past it), the fourth waits.
    expect(taken).to.deep.equal([true, true, true, false]);
    expect(groups[3]?.putOff).to.equal(true);
    budget.refill();
    const large = schedule({ intervalEntries: 10, budget }).snapshots;
    expect(large.maybeTake(20, CONF, () => new Uint8Array(1_000)), 'one at least, however large').to.not.equal(undefined);
    expect(groups[3]?.maybeTake(20, CONF, STATE), 'and nothing after it this turn').to.equal(undefined);
  });

  it('ends a wanted or put-off one when a snapshot is installed', () => {
    const budget = new SnapshotBudget(1);
    const { snapshots } = schedule({ budget, intervalEntries: 10 });
    budget.spend(1);
    snapshots.maybeTake(20, CONF, STATE);
    expect(snapshots.putOff).to.equal(true);
    snapshots.installed(40, 10);
    expect(snapshots.state).to.equal(SnapshotWant.None);
    snapshots.request();
    snapshots.installed(50, 10);
    expect(snapshots.state).to.equal(SnapshotWant.None);
    budget.refill();
    expect(snapshots.maybeTake(55, CONF, STATE), 'and counts from the installed one').to.equal(undefined);
  });
});
