/**
 * Elections (Raft §5.2, §5.4.1), PreVote (thesis §9.6), CheckQuorum and the
 * leader lease (thesis §6.2, §4.2.3).
 */
import { expect } from 'chai';
import { MemoryStorage, MessageType, NONE, RawNode, Role, SeededRandom, type Message } from '../../src/raft/index.js';
import { TestNetwork } from './simulation/test-network.js';
import { utf8 } from './simulation/replica.js';

describe('raft elections', () => {
  it('§5.2: a candidate with a majority of votes becomes leader of a new term and persists its vote', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    expect(net.leaders()).to.deep.equal([1]);
    for (const id of [1, 2, 3]) {
      const status = net.get(id).node.status();
      expect(status.term).to.equal(1);
      expect(status.leaderId).to.equal(1);
      expect(net.get(id).storage.initialState().hardState.term).to.equal(1);
    }
    expect(net.get(1).storage.initialState().hardState.vote).to.equal(1);
    expect(net.get(2).storage.initialState().hardState.vote).to.equal(1);
  });

  it('§5.2: election timeouts are drawn from [electionTick, 2 * electionTick) by the injected RandomSource', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 200; seed++) {
      const storage = new MemoryStorage({ confState: { voters: [1, 2, 3], learners: [] } });
      const node = new RawNode({ id: 1, storage, electionTick: 10, random: new SeededRandom(seed), preVote: false });
      let ticks = 0;
      while (node.status().role === Role.Follower) {
        node.tick();
        ticks++;
        expect(ticks).to.be.lessThan(20);
      }
      expect(ticks).to.be.at.least(10);
      seen.add(ticks);
    }
    expect(seen.size, 'timeouts are spread over the range').to.be.greaterThan(5);
  });

  it('§5.2: the same seed replays the same election timing', () => {
    const timing = (seed: number): number => {
      const storage = new MemoryStorage({ confState: { voters: [1, 2, 3], learners: [] } });
      const node = new RawNode({ id: 1, storage, random: new SeededRandom(seed), preVote: false });
      let ticks = 0;
      while (node.status().role === Role.Follower) {
        node.tick();
        ticks++;
      }
      return ticks;
    };
    expect(timing(42)).to.equal(timing(42));
  });

  it('§5.2: a replica grants at most one vote per term', () => {
    const net = new TestNetwork([1, 2, 3], { preVote: false, checkQuorum: false });
    net.isolate(3);
    net.elect(1);
    const follower = net.get(2);
    expect(follower.node.status().vote).to.equal(1);
    // Replica 3 campaigns in the same term 1: replica 2 refuses.
    follower.node.step(voteRequest(3, 2, 1, 5, 1));
    const responses = follower.processReady();
    const response = responses.find((m) => m.type === MessageType.VoteResponse);
    expect(response?.reject).to.equal(true);
  });

  it('§5.4.1: a candidate whose log is behind cannot win', () => {
    const net = new TestNetwork([1, 2, 3], { preVote: false, checkQuorum: false });
    net.elect(1);
    net.isolate(3);
    net.get(1).node.propose(utf8('a'));
    net.stabilize();
    net.heal();
    net.isolate(1);
    net.get(3).node.campaign();
    net.stabilize();
    expect(net.get(3).node.status().role).to.not.equal(Role.Leader);
    net.get(2).node.campaign();
    net.stabilize();
    expect(net.get(2).node.status().role).to.equal(Role.Leader);
  });

  it('§5.2: a split vote resolves through randomized timeouts', () => {
    const net = new TestNetwork([1, 2, 3, 4, 5], { preVote: false });
    for (let tick = 0; tick < 100 && net.leaders().length !== 1; tick++) net.tickAll(1);
    expect(net.leaders()).to.have.length(1);
  });

  it('learners and uninitialized replicas never campaign', () => {
    const net = new TestNetwork([1, 2], {}, 1, [3]);
    net.add(4, new MemoryStorage());
    for (let tick = 0; tick < 50; tick++) {
      net.get(3).node.tick();
      net.get(4).node.tick();
    }
    net.get(3).node.campaign();
    net.get(4).node.campaign();
    net.stabilize();
    expect(net.get(3).node.status().role).to.equal(Role.Follower);
    expect(net.get(4).node.status().role).to.equal(Role.Follower);
    expect(net.get(3).node.status().term).to.equal(0);
    expect(net.get(4).node.status().term).to.equal(0);
  });

  it('thesis §9.6 PreVote: a partitioned replica does not raise its term, and rejoining does not depose the leader', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    for (let tick = 0; tick < 100; tick++) net.tickAll(1);
    const isolated = net.get(3).node.status();
    expect(isolated.term, 'PreVote keeps the term').to.equal(1);
    expect(isolated.role).to.equal(Role.PreCandidate);
    net.heal();
    net.tickAll(5);
    expect(net.leaders()).to.deep.equal([1]);
    expect(net.get(1).node.status().term).to.equal(1);
    expect(net.get(3).node.status().leaderId).to.equal(1);
  });

  it('without PreVote a rejoining replica with a higher term forces an election (what PreVote prevents)', () => {
    const net = new TestNetwork([1, 2, 3], { preVote: false, checkQuorum: false });
    net.elect(1);
    net.isolate(3);
    for (let tick = 0; tick < 60; tick++) net.tickAll(1);
    expect(net.get(3).node.status().term).to.be.greaterThan(1);
    net.heal();
    net.tickAll(30);
    expect(net.get(1).node.status().term).to.be.greaterThan(1);
  });

  it('thesis §6.2 CheckQuorum: a leader that hears from no quorum within an election timeout steps down', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.isolate(1);
    const leader = net.get(1);
    for (let tick = 0; tick < 10 * 2 && leader.node.isLeader(); tick++) {
      leader.node.tick();
      net.stabilize();
    }
    expect(leader.node.status().role).to.equal(Role.Follower);
    expect(leader.node.status().leaderId).to.equal(NONE);
  });

  it('thesis §6.2 leader lease: followers with a live leader ignore vote requests', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    const follower = net.get(2);
    follower.node.step(voteRequest(3, 2, 5, 100, 4));
    follower.processReady();
    expect(follower.node.status().term).to.equal(1);
    expect(follower.node.status().vote).to.equal(1);
  });

  it('forgetLeader: the survivors of a dead leader grant a successor\'s pre-vote at once, without campaigning themselves', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.isolate(1); // the leader is gone
    // Under the lease, the successor's pre-election fails: 3 ignores it.
    net.get(2).node.campaign();
    net.stabilize();
    expect(net.get(2).node.status().role, 'ignored under the lease').to.not.equal(Role.Leader);
    expect(net.get(3).node.status().leaderId).to.equal(1);
    for (const id of [2, 3]) net.get(id).node.forgetLeader();
    net.stabilize();
    expect(net.get(3).node.status().leaderId, 'forgotten').to.equal(NONE);
    expect(net.get(3).node.status().role, 'no campaign of its own').to.equal(Role.Follower);
    expect(net.get(3).node.status().term, 'no term change').to.equal(1);
    net.get(2).node.campaign();
    net.stabilize();
    expect(net.get(2).node.status().role, 'elected').to.equal(Role.Leader);
    expect(net.get(3).node.status().leaderId).to.equal(2);
  });

  it('forgetLeader: a follower follows its leader again on its next message; leaders and candidates ignore it', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.get(1).node.forgetLeader();
    expect(net.get(1).node.status().role).to.equal(Role.Leader);
    net.get(2).node.forgetLeader();
    net.get(2).processReady();
    expect(net.get(2).node.status().leaderId).to.equal(NONE);
    net.get(1).node.propose(utf8('a'));
    net.stabilize();
    expect(net.get(2).node.status().leaderId).to.equal(1);
    expect(net.get(2).node.status().term).to.equal(1);
    // A live leader's follower ignores vote requests again.
    net.get(2).node.step(voteRequest(3, 2, 5, 100, 4));
    net.get(2).processReady();
    expect(net.get(2).node.status().term).to.equal(1);
  });

  it('§5.1: a stale leader learns the new term from its followers and steps down', () => {
    const net = new TestNetwork([1, 2, 3], { checkQuorum: false });
    net.elect(1);
    net.isolate(1);
    net.tickAll(40);
    const newLeader = net.leaders().find((id) => id !== 1);
    expect(newLeader).to.not.equal(undefined);
    expect(net.get(1).node.isLeader()).to.equal(true);
    net.heal();
    net.get(1).node.tick();
    net.stabilize();
    expect(net.get(1).node.isLeader()).to.equal(false);
    expect(net.get(1).node.status().term).to.equal(net.get(newLeader as number).node.status().term);
  });

  it('§5.2: a candidate that loses its election returns to follower', () => {
    const net = new TestNetwork([1, 2, 3], { preVote: false, checkQuorum: false });
    net.elect(1);
    net.get(1).node.propose(utf8('a'));
    net.stabilize();
    // Replica 3 loses its log lead: craft a campaign from an empty-ish replica.
    const storage = new MemoryStorage({ confState: { voters: [1, 2, 3], learners: [] } });
    net.replicas.delete(3);
    net.add(3, storage);
    net.get(3).node.campaign();
    net.stabilize();
    expect(net.get(3).node.status().role).to.equal(Role.Follower);
  });
});

/** A Vote request from `from` to `to` in `term` with the given last log position. */
function voteRequest(from: number, to: number, term: number, lastIndex: number, lastTerm: number): Message {
  return {
    type: MessageType.Vote,
    from,
    to,
    term,
    index: lastIndex,
    logTerm: lastTerm,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
}
