/**
 * Log replication and commit (Raft §5.3, §5.4.2), flow control (batching,
 * pipelining, in-flight bound, progress states) and proposal refusals.
 */
import { expect } from 'chai';
import { EntryType, MessageType, ProgressState, Role, type Message } from '../../src/raft/index.js';
import { TestNetwork } from './simulation/test-network.js';
import { utf8 } from './simulation/replica.js';

const appendsTo = (messages: Message[], to: number): Message[] =>
  messages.filter((m) => m.type === MessageType.Append && m.to === to);

describe('raft log replication', () => {
  it('§5.3: a proposal is replicated, committed by majority and applied everywhere in order', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    for (const text of ['a', 'b', 'c']) expect(net.get(1).node.propose(utf8(text)).ok).to.equal(true);
    net.stabilize();
    for (const id of [1, 2, 3]) expect(net.get(id).texts).to.deep.equal(['a', 'b', 'c']);
  });

  it('§5.4.2: a new leader appends an empty no-op entry of its term at once', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    const entry = net.get(2).storage.entries(1, 2, Infinity);
    expect(entry.ok && entry.value[0]).to.deep.include({ index: 1, term: 1, type: EntryType.Normal });
    expect(entry.ok && entry.value[0]?.data.length).to.equal(0);
    expect(net.get(1).node.status().commit).to.equal(1);
  });

  it('§5.3: commit needs a majority: a leader with a minority cannot commit', () => {
    const net = new TestNetwork([1, 2, 3], { checkQuorum: false });
    net.elect(1);
    net.isolate(1);
    const result = net.get(1).node.propose(utf8('lost'));
    expect(result.ok).to.equal(true);
    net.tickAll(5);
    expect(net.get(1).node.status().commit).to.equal(1);
    expect(net.get(1).texts).to.deep.equal([]);
  });

  it('§5.4.2 Figure 8: a leader never commits an entry of an earlier term by counting replicas', () => {
    const net = new TestNetwork([1, 2, 3, 4, 5], { preVote: false, checkQuorum: false, maxSizePerMsg: 0 });
    // (a) Replica 1 leads term 1 and gets entry 2 only onto replica 2.
    net.elect(1);
    net.drop((m) => m.from === 1 && m.to !== 2);
    net.get(1).node.propose(utf8('term-1 entry'));
    net.stabilize();
    expect(net.get(2).storage.lastIndex()).to.equal(2);
    // (b) Replica 1 crashes; replica 5 wins term 2 with 3 and 4, appends its no-op at index 2 alone, crashes.
    net.get(1).crash();
    net.heal();
    net.drop((m) => m.from === 5 && m.type === MessageType.Append);
    net.elect(5);
    expect(net.get(5).node.status()).to.deep.include({ role: Role.Leader, term: 2 });
    net.get(5).crash();
    net.heal();
    // (c) Replica 1 restarts, wins term 3 (needs two tries: term 2 is taken), and replicates
    // entry 2 (term 1) to replica 3 — a majority {1, 2, 3} holds it — but its no-op (index 3) nowhere.
    net.get(1).restart();
    net.drop(
      (m) =>
        m.from === 1 &&
        m.type === MessageType.Append &&
        m.entries.some((e) => e.index === 3) &&
        net.get(m.to).storage.lastIndex() >= 2,
    );
    net.elect(1);
    if (!net.get(1).node.isLeader()) net.elect(1);
    expect(net.get(1).node.status()).to.deep.include({ role: Role.Leader, term: 3 });
    expect(net.get(3).storage.term(2)).to.deep.equal({ ok: true, value: 1 });
    expect(net.get(1).node.status().commit, 'entry 2 of term 1 is on a majority but must not commit').to.equal(1);
    expect(net.get(1).texts).to.deep.equal([]);
    // (d) Replica 1 crashes; replica 5 (log term 2 at index 2) wins term 4 and overwrites index 2.
    net.get(1).crash();
    net.heal();
    net.get(5).restart();
    net.elect(5);
    if (!net.get(5).node.isLeader()) net.elect(5);
    expect(net.get(5).node.isLeader()).to.equal(true);
    net.get(5).node.propose(utf8('term-4 entry'));
    net.stabilize();
    for (const id of [2, 3, 4, 5]) {
      expect(net.get(id).storage.term(2)).to.deep.equal({ ok: true, value: 2 });
      expect(net.get(id).texts).to.deep.equal(['term-4 entry']);
    }
  });

  it('§5.3: a follower with a long conflicting log is repaired, using term hints to skip whole terms', () => {
    const net = new TestNetwork([1, 2, 3], { preVote: false, checkQuorum: false });
    net.elect(2);
    // Replica 2 (term 1) writes 50 entries that reach nobody.
    net.isolate(2);
    for (let i = 0; i < 50; i++) net.get(2).node.propose(utf8(`doomed-${i}`));
    net.stabilize();
    net.heal();
    net.isolate(2);
    // Meanwhile replica 1 leads term 2 and commits 5 entries with replica 3.
    net.elect(1);
    for (let i = 0; i < 5; i++) net.get(1).node.propose(utf8(`kept-${i}`));
    net.stabilize();
    net.heal();
    net.delivered.length = 0;
    net.get(1).node.tick();
    net.tickAll(3);
    const follower = net.get(2);
    expect(follower.texts).to.deep.equal(['kept-0', 'kept-1', 'kept-2', 'kept-3', 'kept-4']);
    expect(follower.storage.lastIndex()).to.equal(net.get(1).storage.lastIndex());
    const rejections = net.delivered.filter((m) => m.type === MessageType.AppendResponse && m.reject && m.from === 2);
    expect(rejections.length, 'one rejection skips the conflicting term, not 50 entries one by one').to.be.at.most(2);
  });

  it('batching: an append carries at most maxSizePerMsg bytes (but at least one entry)', () => {
    const net = new TestNetwork([1, 2], { maxSizePerMsg: 10, maxInflightMsgs: 256 });
    net.elect(1);
    for (let i = 0; i < 6; i++) net.get(1).node.propose(utf8('xxxx'));
    net.processReadies();
    const appends = appendsTo(net.pending, 2);
    expect(appends.length).to.equal(3);
    for (const append of appends) expect(append.entries.length).to.equal(2);
    net.stabilize();
    net.get(1).node.propose(utf8('y'.repeat(50)));
    net.processReadies();
    expect(appendsTo(net.pending, 2)[0]?.entries.length).to.equal(1);
  });

  it('pipelining with a bound: at most maxInflightMsgs unacknowledged appends per follower in replicate state', () => {
    const net = new TestNetwork([1, 2], { maxSizePerMsg: 0, maxInflightMsgs: 3 });
    net.elect(1);
    expect(net.get(1).node.status().progress?.get(2)?.state).to.equal(ProgressState.Replicate);
    for (let i = 0; i < 10; i++) net.get(1).node.propose(utf8(`p${i}`));
    net.processReadies();
    expect(appendsTo(net.pending, 2).length, 'three in flight, not ten, not one').to.equal(3);
    net.stabilize();
    expect(net.get(2).texts).to.have.length(10);
  });

  it('progress: probe until the follower answers, then replicate; unreachable falls back to probe', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    const leader = net.get(1).node;
    expect(leader.status().progress?.get(2)?.state).to.equal(ProgressState.Replicate);
    leader.reportUnreachable(2);
    expect(leader.status().progress?.get(2)?.state).to.equal(ProgressState.Probe);
    net.get(1).node.propose(utf8('x'));
    net.stabilize();
    expect(leader.status().progress?.get(2)).to.deep.include({ state: ProgressState.Replicate, match: 2, next: 3 });
  });

  it('a lost append in replicate state is detected through heartbeat responses and re-sent', () => {
    const net = new TestNetwork([1, 2], { maxInflightMsgs: 1 });
    net.elect(1);
    let dropped = false;
    net.drop((m) => {
      if (!dropped && m.type === MessageType.Append && m.entries.length > 0) {
        dropped = true;
        return true;
      }
      return false;
    });
    net.get(1).node.propose(utf8('once lost'));
    net.stabilize();
    expect(net.get(2).texts).to.deep.equal([]);
    net.tickAll(3);
    expect(net.get(2).texts).to.deep.equal(['once lost']);
  });

  it('refuses proposals with a reason: NOT_LEADER on a follower (with the leader id), TOO_LARGE beyond the uncommitted limit', () => {
    const net = new TestNetwork([1, 2, 3], { maxUncommittedEntriesBytes: 10, checkQuorum: false });
    net.elect(1);
    expect(net.get(2).node.propose(utf8('x'))).to.deep.equal({ ok: false, reason: 'NOT_LEADER', leaderId: 1 });
    net.isolate(1);
    expect(net.get(1).node.propose(utf8('12345678')).ok).to.equal(true);
    expect(net.get(1).node.propose(utf8('12345678'))).to.deep.include({ ok: false, reason: 'TOO_LARGE' });
    net.heal();
    net.tickAll(2);
    expect(net.get(1).node.propose(utf8('12345678')).ok, 'applied entries free the budget').to.equal(true);
  });

  it('propose returns the index and term at which the entry was appended', () => {
    const net = new TestNetwork([1]);
    net.elect(1);
    expect(net.get(1).node.propose(utf8('x'))).to.deep.equal({ ok: true, index: 2, term: 1 });
    net.stabilize();
    expect(net.get(1).texts).to.deep.equal(['x']);
  });
});

describe('raft piggyback (commit index and liveness ride on appends)', () => {
  const countTypes = (messages: Message[]): Record<string, number> => {
    const counts: Record<string, number> = {};
    for (const m of messages) counts[`${MessageType[m.type]}->${m.to}`] = (counts[`${MessageType[m.type]}->${m.to}`] ?? 0) + 1;
    return counts;
  };

  for (const piggyback of [false, true]) {
    it(`a write costs ${piggyback ? 'one append and one answer' : 'two appends and two answers (etcd)'} per follower${piggyback ? '' : ' without piggyback'}`, () => {
      const net = new TestNetwork([1, 2, 3], { piggyback });
      net.elect(1);
      net.tickAll(2);
      const before = net.delivered.length;
      net.get(1).node.propose(utf8('a'));
      net.stabilize();
      const perFollower = piggyback ? 1 : 2;
      expect(countTypes(net.delivered.slice(before))).to.deep.equal({
        'Append->2': perFollower, 'Append->3': perFollower, 'AppendResponse->1': 2 * perFollower,
      });
      expect(net.get(1).texts).to.deep.equal(['a']);
      expect(net.get(2).texts).to.deep.equal(piggyback ? [] : ['a']);
    });
  }

  it('followers learn the commit index within two heartbeat ticks once appends stop', () => {
    const net = new TestNetwork([1, 2, 3], { piggyback: true });
    net.elect(1);
    net.get(1).node.propose(utf8('a'));
    net.stabilize();
    const before = net.delivered.length;
    net.get(1).node.tick(); // an append went out since the last tick: no heartbeat
    net.stabilize();
    expect(net.delivered.slice(before).filter((m) => m.type === MessageType.Heartbeat)).to.have.length(0);
    expect(net.get(2).texts).to.deep.equal([]);
    net.get(1).node.tick(); // a quiet period: heartbeats carry the commit index
    net.stabilize();
    for (const id of [2, 3]) expect(net.get(id).texts).to.deep.equal(['a']);
  });

  it('a busy group sends no heartbeats; the leader keeps its quorum (CheckQuorum) on append answers alone', () => {
    const net = new TestNetwork([1, 2, 3], { piggyback: true, electionTick: 4 });
    net.elect(1);
    const before = net.delivered.length;
    for (let i = 0; i < 20; i++) {
      net.get(1).node.propose(utf8(`w${i}`));
      net.tickAll(1);
    }
    expect(net.delivered.slice(before).filter((m) => m.type === MessageType.Heartbeat)).to.have.length(0);
    expect(net.leaders()).to.deep.equal([1]);
    expect(net.get(1).node.status().term).to.equal(1);
    net.tickAll(2);
    for (const id of [2, 3]) expect(net.get(id).texts).to.have.length(20);
  });

  it('a lost append is re-sent after the heartbeat that follows it', () => {
    const net = new TestNetwork([1, 2, 3], { piggyback: true });
    net.elect(1);
    let dropped = 0;
    net.drop((m) => m.type === MessageType.Append && m.to === 3 && m.entries.length > 0 && dropped++ === 0);
    net.get(1).node.propose(utf8('a'));
    net.stabilize();
    expect(dropped).to.be.greaterThan(0);
    expect(net.get(3).storage.lastIndex()).to.equal(1);
    net.tickAll(2);
    expect(net.get(3).texts).to.deep.equal(['a']);
  });
});
