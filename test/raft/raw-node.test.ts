/**
 * The RawNode API and the Ready contract (etcd `rawnode.go`, `node.go`).
 */
import { expect } from 'chai';
import {
  MemoryStorage,
  MessageType,
  RaftInvariantError,
  RawNode,
  Role,
  SeededRandom,
  type Message,
  type RaftLogger,
} from '../../src/raft/index.js';
import { utf8 } from './simulation/replica.js';

const newNode = (voters = [1], options: Partial<ConstructorParameters<typeof RawNode>[0]> = {}): RawNode =>
  new RawNode({
    id: 1,
    storage: new MemoryStorage({ confState: { voters, learners: [] } }),
    random: new SeededRandom(1),
    ...options,
  });

function message(type: MessageType, from: number, to: number, term = 0): Message {
  return { type, from, to, term, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0) };
}

describe('RawNode', () => {
  it('throws on ready() twice without advance(), and on advance() without ready()', () => {
    const storage = new MemoryStorage({ confState: { voters: [1], learners: [] } });
    const node = new RawNode({ id: 1, storage, random: new SeededRandom(1) });
    node.campaign();
    expect(node.hasReady()).to.equal(true);
    const ready = node.ready();
    expect(node.hasReady(), 'nothing new while a Ready is out').to.equal(false);
    expect(() => node.ready()).to.throw(RaftInvariantError).with.property('code', 'READY_NOT_ADVANCED');
    storage.append(ready.entries);
    node.advance(ready);
    expect(() => node.advance(ready)).to.throw(RaftInvariantError);
  });

  it('Ready: soft state on role change, hard state and mustSync on term/vote change, entries before commit', () => {
    const storage = new MemoryStorage({ confState: { voters: [1], learners: [] } });
    const node = new RawNode({ id: 1, storage, random: new SeededRandom(1) });
    node.campaign();
    const ready = node.ready();
    expect(ready.softState).to.deep.equal({ leaderId: 1, role: Role.Leader });
    expect(ready.hardState).to.deep.equal({ term: 1, vote: 1, commit: 0 });
    expect(ready.mustSync).to.equal(true);
    expect(ready.entries.map((e) => [e.index, e.term])).to.deep.equal([[1, 1]]);
    expect(ready.committedEntries, 'the leader counts its no-op only once it is durable').to.deep.equal([]);
    storage.append(ready.entries);
    storage.setHardState(ready.hardState as never);
    node.advance(ready);
    const committed = node.ready();
    expect(committed.hardState).to.deep.equal({ term: 1, vote: 1, commit: 1 });
    expect(committed.mustSync, 'a commit-only change needs no sync').to.equal(false);
    expect(committed.committedEntries.map((e) => e.index)).to.deep.equal([1]);
    node.advance(committed);
    expect(node.hasReady()).to.equal(false);
    node.propose(utf8('x'));
    const next = node.ready();
    expect(next.softState).to.equal(undefined);
    expect(next.hardState).to.equal(undefined);
    expect(next.mustSync).to.equal(true);
    storage.append(next.entries);
    node.advance(next);
    const applied = node.ready();
    expect(applied.hardState).to.deep.equal({ term: 1, vote: 1, commit: 2 });
    node.advance(applied);
    expect(node.status()).to.deep.include({ commit: 2, applied: 2, term: 1, leaderId: 1, role: Role.Leader });
  });

  it('thesis §10.2.1: a leader counts its own entries toward commit only once advance() reports them durable', () => {
    const storage = new MemoryStorage({ confState: { voters: [1], learners: [2] } });
    const node = new RawNode({ id: 1, storage, random: new SeededRandom(1) });
    node.campaign();
    const first = node.ready();
    storage.append(first.entries);
    storage.setHardState(first.hardState as never);
    node.advance(first);
    node.advance(node.ready());
    node.step({ ...message(MessageType.AppendResponse, 2, 1, 1), index: 1 }); // the learner holds the no-op
    node.advance(node.ready());
    node.propose(utf8('x'));
    const ready = node.ready();
    // The append to the learner may leave before the fsync, but it must not claim index 2 committed.
    const appends = ready.messages.filter((m) => m.type === MessageType.Append && m.to === 2);
    expect(appends.length).to.be.greaterThan(0);
    for (const append of appends) expect(append.commit, 'commit index sent before the leader is durable').to.be.below(2);
    expect(node.status().commit).to.equal(1);
    storage.append(ready.entries);
    node.advance(ready);
    expect(node.status().commit, 'durable on the only voter: committed').to.equal(2);
    const after = node.ready();
    expect(after.committedEntries.map((e) => e.index)).to.deep.equal([2]);
  });

  it('takeSendable: while a Ready is being persisted, only messages that acknowledge nothing unsynced leave', () => {
    // A follower (1 of 1, 2) gets an append: its answer acknowledges entries, so it waits.
    const storage = new MemoryStorage({ confState: { voters: [1, 2], learners: [] }, hardState: { term: 1, vote: 0, commit: 0 } });
    const follower = new RawNode({ id: 1, storage, random: new SeededRandom(1) });
    follower.step({ ...message(MessageType.Append, 2, 1, 1), entries: [{ index: 1, term: 1, type: 0, data: utf8('x') }] });
    const pending = follower.ready();
    expect(pending.messages.map((m) => m.type)).to.deep.equal([MessageType.AppendResponse]);
    // Still persisting: a heartbeat of the durable term is answered at once, another append is not.
    follower.step(message(MessageType.Heartbeat, 2, 1, 1));
    follower.step({ ...message(MessageType.Append, 2, 1, 1), index: 1, logTerm: 1, entries: [{ index: 2, term: 1, type: 0, data: utf8('y') }] });
    const sendable = follower.takeSendable();
    expect(sendable.messages.map((m) => m.type)).to.deep.equal([MessageType.HeartbeatResponse]);
    storage.append(pending.entries);
    follower.advance(pending);
    expect(follower.ready().messages.map((m) => m.type), 'the held answer goes with the next Ready').to.deep.equal([MessageType.AppendResponse]);

    // A term not yet durable: nothing of it leaves early.
    const other = new RawNode({ id: 1, storage: new MemoryStorage({ confState: { voters: [1, 2], learners: [] } }), random: new SeededRandom(1) });
    other.step(message(MessageType.Heartbeat, 2, 1, 5));
    expect(other.takeSendable().messages, 'term 5 is not durable yet').to.deep.equal([]);
    expect(other.ready().messages.map((m) => m.type)).to.deep.equal([MessageType.HeartbeatResponse]);
  });

  it('status() shows per-member progress only on the leader', () => {
    const node = newNode([1, 2]);
    expect(node.status().progress).to.equal(undefined);
    expect(node.status().confState).to.deep.equal({ voters: [1, 2], learners: [] });
    node.step({ ...message(MessageType.PreVoteResponse, 2, 1, 1) });
    node.campaign();
    node.step({ ...message(MessageType.PreVoteResponse, 2, 1, 1) });
    node.step({ ...message(MessageType.VoteResponse, 2, 1, 1) });
    expect(node.isLeader()).to.equal(true);
    expect(node.leaderId()).to.equal(1);
    const progress = node.status().progress;
    expect(progress?.get(2)).to.deep.include({ match: 0, next: 1, isLearner: false });
    expect(progress?.get(1)?.match, 'the no-op is not durable yet').to.equal(0);
  });

  it('step ignores local-only message types from the network and responses from non-members', () => {
    const node = newNode([1, 2]);
    node.step(message(MessageType.Propose, 2, 1, 1));
    node.step(message(MessageType.Unreachable, 2, 1, 1));
    node.step(message(MessageType.VoteResponse, 9, 1, 1));
    expect(node.status().term).to.equal(0);
  });

  it('step ignores a heartbeat whose commit lies beyond the log, which it used to assert on', () => {
    const events: string[] = [];
    const logger: RaftLogger = { debug: () => undefined, info: () => undefined, warn: (event) => events.push(event), error: () => undefined };
    const node = newNode([1, 2], { logger });
    const beyond = message(MessageType.Heartbeat, 2, 1, 1);
    beyond.commit = 5;
    expect(() => node.step(beyond)).not.to.throw();
    expect(events).to.deep.equal(['heartbeat ignored: commit beyond the log']);
    expect(node.status().term, 'not even its term taken').to.equal(0);
    const within = message(MessageType.Heartbeat, 2, 1, 1);
    node.step(within);
    expect(node.status()).to.deep.include({ term: 1, leaderId: 2 });
  });

  it('rejects an invalid config', () => {
    expect(() => newNode([1], { electionTick: 1, heartbeatTick: 1 })).to.throw('electionTick must exceed heartbeatTick');
    expect(() => newNode([1], { id: 0 })).to.throw('id must be a positive number');
    expect(() => newNode([1], { maxInflightMsgs: 0 })).to.throw('maxInflightMsgs');
    expect(() => newNode([1], { heartbeatTick: 0 })).to.throw('heartbeatTick');
    expect(() => newNode([1], { maxSizePerMsg: -1 })).to.throw('maxSizePerMsg');
  });

  it('logs through the injected logger only', () => {
    const events: string[] = [];
    const logger: RaftLogger = {
      debug: (event) => events.push(`debug ${event}`),
      info: (event) => events.push(`info ${event}`),
      warn: (event) => events.push(`warn ${event}`),
      error: (event) => events.push(`error ${event}`),
    };
    const node = newNode([1], { logger });
    node.campaign();
    expect(events).to.include('info became leader');
  });

  it('restarts from storage with `applied`, not re-delivering applied entries', () => {
    const storage = new MemoryStorage({ confState: { voters: [1], learners: [] } });
    const node = new RawNode({ id: 1, storage, random: new SeededRandom(1) });
    node.campaign();
    for (let i = 0; i < 3; i++) node.propose(utf8(`e${i}`));
    const ready = node.ready();
    storage.append(ready.entries);
    node.advance(ready);
    const committed = node.ready();
    if (committed.hardState !== undefined) storage.setHardState(committed.hardState);
    node.advance(committed);
    const restarted = new RawNode({ id: 1, storage, random: new SeededRandom(1), applied: 2 });
    const replay = restarted.ready();
    expect(replay.committedEntries.map((e) => e.index)).to.deep.equal([3, 4]);
    expect(replay.hardState).to.equal(undefined);
  });

  it('refuses a hard state whose commit lies outside the log (corrupt storage)', () => {
    const storage = new MemoryStorage({ confState: { voters: [1], learners: [] }, hardState: { term: 1, vote: 1, commit: 5 } });
    expect(() => new RawNode({ id: 1, storage, random: new SeededRandom(1) })).to.throw(RaftInvariantError);
  });
});
