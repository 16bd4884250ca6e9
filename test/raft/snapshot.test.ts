/**
 * Log compaction and InstallSnapshot (Raft §7), and MemoryStorage.
 */
import { expect } from 'chai';
import { EntryType, MemoryStorage, MessageType, ProgressState, RaftInvariantError, type Entry } from '../../src/raft/index.js';
import { TestNetwork } from './simulation/test-network.js';
import { utf8 } from './simulation/replica.js';

const entry = (index: number, term: number, text = ''): Entry => ({ index, term, type: EntryType.Normal, data: utf8(text) });

describe('raft snapshots', () => {
  it('§7: a follower whose next entry was compacted receives a snapshot (with the conf state) and catches up', () => {
    const net = new TestNetwork([1, 2, 3], { snapshotEvery: 5 });
    net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 20; i++) net.get(1).node.propose(utf8(`w${i}`));
    net.stabilize();
    expect(net.get(1).storage.firstIndex()).to.be.greaterThan(2);
    net.heal();
    net.delivered.length = 0;
    net.tickAll(2);
    const snapshots = net.delivered.filter((m) => m.type === MessageType.Snapshot && m.to === 3);
    expect(snapshots).to.have.length(1);
    expect(snapshots[0]?.snapshot?.metadata.confState).to.deep.equal({ voters: [1, 2, 3], learners: [] });
    net.get(1).node.reportSnapshot(3, 'finish');
    net.tickAll(2);
    expect(net.get(3).texts).to.deep.equal(net.get(1).texts);
    expect(net.get(3).texts).to.have.length(20);
    expect(net.get(1).node.status().progress?.get(3)?.state).to.equal(ProgressState.Replicate);
  });

  it('§7: a snapshot installed mid-replication replaces a partial log, and replication continues after it', () => {
    const net = new TestNetwork([1, 2, 3], { snapshotEvery: 8 });
    net.elect(1);
    for (let i = 0; i < 3; i++) net.get(1).node.propose(utf8(`early${i}`));
    net.stabilize();
    net.isolate(3);
    for (let i = 0; i < 20; i++) net.get(1).node.propose(utf8(`mid${i}`));
    net.stabilize();
    net.heal();
    // New proposals keep flowing while 3 installs the snapshot.
    net.get(1).node.propose(utf8('during'));
    net.tickAll(1);
    net.get(1).node.reportSnapshot(3, 'finish');
    net.get(1).node.propose(utf8('after'));
    net.tickAll(3);
    expect(net.get(3).texts).to.deep.equal(net.get(1).texts);
    expect(net.get(3).texts.slice(-2)).to.deep.equal(['during', 'after']);
    expect(net.get(3).storage.snapshot().ok).to.equal(true);
  });

  it('a failed snapshot send is retried after a heartbeat', () => {
    const net = new TestNetwork([1, 2, 3], { snapshotEvery: 3 });
    net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 10; i++) net.get(1).node.propose(utf8(`w${i}`));
    net.stabilize();
    net.heal();
    net.ignore(MessageType.Snapshot);
    net.tickAll(1);
    expect(net.get(1).node.status().progress?.get(3)?.state).to.equal(ProgressState.Snapshot);
    net.get(1).node.reportSnapshot(3, 'failure');
    expect(net.get(1).node.status().progress?.get(3)?.state).to.equal(ProgressState.Probe);
    net.heal();
    net.tickAll(2);
    net.get(1).node.reportSnapshot(3, 'finish');
    net.tickAll(2);
    expect(net.get(3).texts).to.have.length(10);
  });

  it('a replica restarted from persisted storage recovers its log, term and vote', () => {
    const net = new TestNetwork([1, 2, 3], { snapshotEvery: 4 });
    net.elect(1);
    for (let i = 0; i < 10; i++) net.get(1).node.propose(utf8(`w${i}`));
    net.stabilize();
    const replica = net.get(2);
    replica.crash();
    replica.restart();
    net.stabilize();
    const status = replica.node.status();
    expect(status.term).to.equal(1);
    expect(status.vote).to.equal(1);
    expect(replica.texts).to.have.length(10);
    net.get(1).node.propose(utf8('after restart'));
    net.stabilize();
    expect(replica.texts.at(-1)).to.equal('after restart');
  });
});

describe('MemoryStorage', () => {
  it('appends, truncates a conflicting suffix, and answers entries/term with COMPACTED/UNAVAILABLE', () => {
    const storage = new MemoryStorage({ confState: { voters: [1], learners: [] } });
    storage.append([entry(1, 1, 'a'), entry(2, 1, 'b'), entry(3, 1, 'c')]);
    storage.append([entry(2, 2, 'B')]);
    expect(storage.lastIndex()).to.equal(2);
    expect(storage.term(2)).to.deep.equal({ ok: true, value: 2 });
    expect(storage.term(5)).to.deep.equal({ ok: false, reason: 'UNAVAILABLE' });
    expect(storage.entries(1, 5, 100)).to.deep.equal({ ok: false, reason: 'UNAVAILABLE' });
    expect(() => storage.append([entry(5, 2)])).to.throw(RaftInvariantError);
    storage.append([entry(3, 2, 'ccc'), entry(4, 2, 'ddd')]);
    const limited = storage.entries(1, 5, 2);
    expect(limited.ok && limited.value.map((e) => e.index)).to.deep.equal([1, 2]);
    const atLeastOne = storage.entries(3, 5, 0);
    expect(atLeastOne.ok && atLeastOne.value.length).to.equal(1);
    expect(storage.entries(3, 3, 10)).to.deep.equal({ ok: true, value: [] });
  });

  it('snapshots then compacts; never compacts past the snapshot; older snapshots are refused', () => {
    const storage = new MemoryStorage({ confState: { voters: [1], learners: [] } });
    storage.append([entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)]);
    expect(() => storage.compact(3)).to.throw('beyond the latest snapshot');
    const snapshot = storage.createSnapshot(3, { voters: [1, 2], learners: [] }, utf8('image'));
    expect(snapshot.metadata).to.deep.equal({ index: 3, term: 2, confState: { voters: [1, 2], learners: [] } });
    storage.compact(3);
    expect(storage.firstIndex()).to.equal(3);
    expect(storage.term(2)).to.deep.equal({ ok: true, value: 1 });
    expect(storage.term(1)).to.deep.equal({ ok: false, reason: 'COMPACTED' });
    expect(storage.entries(2, 4, 100)).to.deep.equal({ ok: false, reason: 'COMPACTED' });
    storage.compact(2);
    expect(storage.firstIndex(), 'an old compaction point is a no-op').to.equal(3);
    expect(() => storage.createSnapshot(2, { voters: [1], learners: [] }, utf8(''))).to.throw('out of date');
    expect(() => storage.createSnapshot(9, { voters: [1], learners: [] }, utf8(''))).to.throw('not in the log');
    expect(storage.initialState().confState).to.deep.equal({ voters: [1, 2], learners: [] });
    // Appending entries already covered by compaction ignores them.
    storage.append([entry(1, 1), entry(2, 1)]);
    expect(storage.lastIndex()).to.equal(4);
  });

  it('applySnapshot replaces the log; clone shares no mutable state', () => {
    const storage = new MemoryStorage();
    storage.append([entry(1, 1)]);
    storage.applySnapshot({ metadata: { index: 10, term: 3, confState: { voters: [1, 2, 3], learners: [] } }, data: utf8('x') });
    expect(storage.firstIndex()).to.equal(11);
    expect(storage.lastIndex()).to.equal(10);
    expect(storage.term(10)).to.deep.equal({ ok: true, value: 3 });
    expect(() =>
      storage.applySnapshot({ metadata: { index: 5, term: 1, confState: { voters: [1], learners: [] } }, data: utf8('') }),
    ).to.throw('out of date');
    storage.setHardState({ term: 3, vote: 2, commit: 10 });
    const copy = storage.clone();
    storage.append([entry(11, 3)]);
    storage.setHardState({ term: 4, vote: 0, commit: 11 });
    expect(copy.lastIndex()).to.equal(10);
    expect(copy.initialState().hardState).to.deep.equal({ term: 3, vote: 2, commit: 10 });
    expect(() => storage.compact(12)).to.throw('beyond the latest snapshot');
  });
});
