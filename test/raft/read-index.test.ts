/**
 * ReadIndex linearizable reads (Raft thesis §6.4).
 */
import { expect } from 'chai';
import { MessageType, Role } from '../../src/raft/index.js';
import { TestNetwork } from './simulation/test-network.js';
import { utf8 } from './simulation/replica.js';

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

describe('raft ReadIndex', () => {
  it('thesis §6.4: a read is answered at the commit index once a quorum confirms leadership', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.get(1).node.propose(utf8('w'));
    net.stabilize();
    net.get(1).node.readIndex(utf8('r1'));
    net.stabilize();
    const states = net.get(1).readStates;
    expect(states.map((s) => [s.index, text(s.context)])).to.deep.equal([[2, 'r1']]);
  });

  it('thesis §6.4: many reads in one turn share one heartbeat round', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.delivered.length = 0;
    for (let i = 0; i < 100; i++) net.get(1).node.readIndex(utf8(`r${i}`));
    net.stabilize();
    const heartbeats = net.delivered.filter((m) => m.type === MessageType.Heartbeat);
    expect(heartbeats.length, 'one heartbeat per follower for 100 reads').to.equal(2);
    expect(net.get(1).readStates).to.have.length(100);
    expect(net.get(1).readStates.map((s) => text(s.context))).to.deep.equal(Array.from({ length: 100 }, (_, i) => `r${i}`));
  });

  it('thesis §6.4: a new leader serves no read until it has committed an entry of its term', () => {
    const net = new TestNetwork([1, 2, 3]);
    // Block the leader's no-op from committing.
    net.drop((m) => m.type === MessageType.AppendResponse);
    net.elect(1);
    expect(net.get(1).node.status().role).to.equal(Role.Leader);
    net.get(1).node.readIndex(utf8('early'));
    net.stabilize();
    expect(net.get(1).readStates, 'queued, not answered').to.have.length(0);
    net.heal();
    net.get(1).node.tick();
    net.stabilize();
    const states = net.get(1).readStates;
    expect(states.map((s) => [s.index, text(s.context)])).to.deep.equal([[1, 'early']]);
  });

  it('a follower forwards ReadIndex to the leader and gets the read index back', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.get(1).node.propose(utf8('w'));
    net.stabilize();
    net.get(3).node.readIndex(utf8('from-3'));
    net.stabilize();
    expect(net.get(3).readStates.map((s) => [s.index, text(s.context)])).to.deep.equal([[2, 'from-3']]);
    expect(net.get(1).readStates).to.have.length(0);
  });

  it('a stale leader, cut off from the majority, never serves a read', () => {
    const net = new TestNetwork([1, 2, 3], { checkQuorum: false });
    net.elect(1);
    net.isolate(1);
    net.elect(2);
    net.get(2).node.propose(utf8('newer write'));
    net.stabilize();
    expect(net.get(1).node.isLeader(), 'replica 1 still believes it leads').to.equal(true);
    net.get(1).node.readIndex(utf8('stale?'));
    for (let i = 0; i < 5; i++) {
      net.get(1).node.tick();
      net.stabilize();
    }
    expect(net.get(1).readStates).to.have.length(0);
    // Healing: the stale leader steps down; the read is simply never answered (the caller retries).
    net.heal();
    net.tickAll(3);
    expect(net.get(1).node.isLeader()).to.equal(false);
    expect(net.get(1).readStates).to.have.length(0);
  });

  it('a single-voter group answers reads at once', () => {
    const net = new TestNetwork([1]);
    net.elect(1);
    net.get(1).node.readIndex(utf8('solo'));
    net.stabilize();
    expect(net.get(1).readStates.map((s) => s.index)).to.deep.equal([1]);
  });

  it('a read without any known leader is dropped (the caller times out)', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.get(2).node.readIndex(utf8('nobody'));
    net.stabilize();
    expect(net.get(2).readStates).to.have.length(0);
  });
});
