/**
 * Leadership transfer (Raft thesis §3.10): TimeoutNow, refusal of proposals
 * during the transfer, abort after an election timeout.
 */
import { expect } from 'chai';
import { MessageType, NONE } from '../../src/raft/index.js';
import { TestNetwork } from './simulation/test-network.js';
import { utf8 } from './simulation/replica.js';

describe('raft leadership transfer', () => {
  it('thesis §3.10: an up-to-date transferee gets TimeoutNow and wins at once, despite the leader lease', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.get(1).node.transferLeader(2);
    net.stabilize();
    expect(net.leaders()).to.deep.equal([2]);
    expect(net.get(2).node.status().term).to.equal(2);
    expect(net.delivered.some((m) => m.type === MessageType.TimeoutNow && m.to === 2)).to.equal(true);
  });

  it('thesis §3.10: a lagging transferee is caught up first', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.isolate(3);
    for (let i = 0; i < 5; i++) net.get(1).node.propose(utf8(`w${i}`));
    net.stabilize();
    net.heal();
    net.get(1).node.transferLeader(3);
    net.stabilize();
    expect(net.leaders()).to.deep.equal([3]);
    expect(net.get(3).texts).to.have.length(5);
  });

  it('a follower forwards a transfer request to the leader', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.get(3).node.transferLeader(3);
    net.stabilize();
    expect(net.leaders()).to.deep.equal([3]);
  });

  it('proposals are refused while a transfer is under way; it is aborted after an election timeout', () => {
    const net = new TestNetwork([1, 2, 3]);
    net.elect(1);
    net.isolate(2);
    net.get(1).node.transferLeader(2);
    net.stabilize();
    expect(net.get(1).node.status().leadTransferee).to.equal(2);
    expect(net.get(1).node.propose(utf8('x'))).to.deep.equal({ ok: false, reason: 'TRANSFERRING', leaderId: 1 });
    for (let i = 0; i < 10; i++) {
      net.get(1).node.tick();
      net.get(3).node.tick();
      net.stabilize();
    }
    expect(net.get(1).node.isLeader()).to.equal(true);
    expect(net.get(1).node.status().leadTransferee).to.equal(NONE);
    expect(net.get(1).node.propose(utf8('x')).ok).to.equal(true);
  });

  it('transfer to itself or to a learner is ignored', () => {
    const net = new TestNetwork([1, 2], {}, 1, [3]);
    net.elect(1);
    net.get(1).node.transferLeader(1);
    net.get(1).node.transferLeader(3);
    net.stabilize();
    expect(net.leaders()).to.deep.equal([1]);
    expect(net.get(1).node.status().leadTransferee).to.equal(NONE);
  });
});
