import { expect } from 'chai';
import type { PlacementCommand } from '../../src/gen/kvstore/v1/manager.js';
import { LEADER_SETTLE_MS } from '../../src/manager/scheduler-context.js';
import { FakeCluster, type ReceivedCommand } from './fake-cluster.js';

const kindOf = (command: PlacementCommand): string => command.command?.$case ?? 'none';
const shardOf = (command: PlacementCommand): number => command.command?.value.shardId ?? -1;

/** Every count within ±1 of `mean`. */
function expectWithinOne(counts: Map<string, number>, mean: number, what: string): void {
  for (const [nodeId, count] of counts) {
    expect(Math.abs(count - mean), `${what} on ${nodeId}: ${count}, mean ${mean.toFixed(2)}`).to.be.at.most(1);
  }
}

describe('manager/scheduler', () => {
  it('bootstraps: CreateReplica with initial members on K nodes, one campaigner per shard', () => {
    const cluster = new FakeCluster({ shardCount: 8, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3'] });
    cluster.runUntil(() => cluster.healthy(), 10);
    const creates = cluster.received.filter((r) => kindOf(r.command) === 'createReplica');
    expect(creates).to.have.length(24);
    for (let shardId = 0; shardId < 8; shardId += 1) {
      const forShard = creates.filter((r) => shardOf(r.command) === shardId);
      expect(new Set(forShard.map((r) => r.nodeId)).size).to.equal(3);
      const campaigners = forShard.filter((r) => r.command.command?.$case === 'createReplica' && r.command.command.value.campaign);
      expect(campaigners).to.have.length(1);
      for (const r of forShard) {
        if (r.command.command?.$case !== 'createReplica') continue;
        expect(r.command.command.value.initialMembers.map((m) => m.nodeId).sort()).to.deep.equal(['n1', 'n2', 'n3']);
      }
    }
  });

  it('shows only leaders their own node reported since it and the manager (re)started (issue 19: "ready" after a restart)', () => {
    const cluster = new FakeCluster({ shardCount: 6, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3'] });
    cluster.runUntil(() => cluster.healthy(), 20);
    const led = (): number => cluster.state.shardInfos().filter((shard) => shard.leaderNodeId !== '').length;
    cluster.step(); // the leaders' first heartbeats since they were elected
    expect(led()).to.equal(6);
    expect(cluster.state.shardsWithLeader()).to.equal(6);

    // A restarted manager loads the map with the old leaders: none shows until its node reports it.
    cluster.restartManager();
    expect(led(), 'leaders from state.json before any heartbeat').to.equal(0);
    cluster.step();
    expect(led()).to.equal(6);

    // A node that re-registers (it restarted) vouches for nothing until its next full report.
    const leaderNode = cluster.state.shardInfos()[0]?.leaderNodeId ?? '';
    const itsShards = cluster.state.shardInfos().filter((shard) => shard.leaderNodeId === leaderNode).length;
    cluster.state.register(leaderNode, `127.0.0.1:${7001}`, 0, cluster.nowMs);
    expect(led()).to.equal(6 - itsShards);
    cluster.step();
    expect(led()).to.equal(6);
  });

  it('waits for --bootstrap-nodes before placing', () => {
    const cluster = new FakeCluster({ shardCount: 4, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3'], bootstrapNodes: 4 });
    cluster.run(5);
    expect(cluster.received).to.have.length(0);
    cluster.addNode('n4');
    cluster.runUntil(() => cluster.healthy(), 10);
    expect(new Set(cluster.received.map((r) => r.nodeId))).to.deep.equal(new Set(['n1', 'n2', 'n3', 'n4']));
  });

  it('node down → create, add learner, promote, remove, for every shard it held; destroy when it returns', () => {
    const cluster = new FakeCluster({
      shardCount: 8, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3', 'n4'], bootstrapNodes: 4, downAfterMs: 4000,
    });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    const held = cluster.hostedShards('n2').sort((a, b) => a - b);
    expect(held.length).to.be.greaterThan(0);
    const before = cluster.received.length;
    cluster.killNode('n2');
    cluster.runUntil(() => cluster.healthy(), 200);
    const after = cluster.received.slice(before);
    for (const shardId of held) {
      const sequence = after.filter((r) => shardOf(r.command) === shardId && kindOf(r.command) !== 'transferLeader');
      const kinds = sequence.map((r) => kindOf(r.command));
      expect(kinds, `shard ${shardId}`).to.deep.equal(['createReplica', 'addReplica', 'promoteLearner', 'removeReplica']);
      const [create, add, promote, remove] = sequence as [ReceivedCommand, ReceivedCommand, ReceivedCommand, ReceivedCommand];
      if (create.command.command?.$case !== 'createReplica') throw new Error('not a create');
      expect(create.command.command.value.initialMembers).to.deep.equal([]);
      expect(create.command.command.value.campaign).to.equal(false);
      expect(create.nodeId).to.not.equal('n2');
      if (add.command.command?.$case !== 'addReplica') throw new Error('not an add');
      expect(add.command.command.value.member).to.deep.include({ nodeId: create.nodeId, learner: true });
      for (const step of [add, promote, remove]) expect(step.nodeId, 'sent to the leader').to.not.equal('n2');
      if (remove.command.command?.$case !== 'removeReplica') throw new Error('not a remove');
      expect(cluster.nodeOf(shardId, remove.command.command.value.replicaId)).to.equal(undefined);
    }
    expect(cluster.events.some((e) => e.message === 'move: promote' && held.includes(e.shardId))).to.equal(true);

    const returned = cluster.received.length;
    cluster.addNode('n2');
    cluster.runUntil(() => cluster.hostedShards('n2').every((shardId) =>
      cluster.group(shardId)?.members.some((m) => m.nodeId === 'n2') === true), 20);
    const destroys = cluster.received.slice(returned).filter((r) => kindOf(r.command) === 'destroyReplica');
    expect(destroys.map((r) => r.nodeId)).to.include('n2');
  });

  it('never removes below a live quorum and never acts on a shard without a leader', () => {
    const cluster = new FakeCluster({ shardCount: 4, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3', 'n4'], bootstrapNodes: 4, downAfterMs: 2000 });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    const both = [0, 1, 2, 3].find((shardId) => {
      const nodes = cluster.group(shardId)?.members.map((m) => m.nodeId) ?? [];
      return nodes.includes('n1') && nodes.includes('n2');
    });
    expect(both).to.not.equal(undefined);
    const before = cluster.received.length;
    cluster.killNode('n1');
    cluster.killNode('n2');
    cluster.run(40);
    const touched = cluster.received.slice(before).filter((r) => shardOf(r.command) === both);
    expect(touched, 'no quorum, no leader: nothing is sent for the shard').to.deep.equal([]);
  });

  it('re-issues a command that did not take effect', () => {
    const cluster = new FakeCluster({
      shardCount: 4, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3', 'n4'], bootstrapNodes: 4, downAfterMs: 2000,
      scheduler: { reissueAfterMs: 2000 },
    });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    let dropped: { round: number; shardId: number } | null = null;
    cluster.dropNext = (command) => {
      if (kindOf(command) !== 'addReplica') return false;
      dropped = { round: cluster.round, shardId: shardOf(command) };
      return true;
    };
    const before = cluster.received.length;
    cluster.killNode('n4');
    cluster.runUntil(() => cluster.healthy(), 200);
    const lost = dropped as { round: number; shardId: number } | null;
    if (lost === null) throw new Error('no AddReplica was sent');
    const resent = cluster.received.slice(before).filter((r) => kindOf(r.command) === 'addReplica' && shardOf(r.command) === lost.shardId);
    expect(resent).to.have.length(1);
    expect(resent[0]?.round, 'sent again after reissueAfterMs (4 rounds)').to.be.at.least(lost.round + 4);
    expect(cluster.received.slice(before).some((r) => kindOf(r.command) === 'promoteLearner' && shardOf(r.command) === lost.shardId)).to.equal(true);
  });

  it('never hands leadership to a node that stopped heartbeating, even before it is suspect', () => {
    const cluster = new FakeCluster({ shardCount: 24, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3'] });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    cluster.run(10);
    const before = cluster.received.length;
    cluster.killNode('n2');
    // Rounds of 500 ms: its leaders fail over after ~1.5 s while the manager still has it `up`
    // (suspect after 3 s), and n2 then leads nothing: the imbalance that invites a transfer to it.
    cluster.run(5);
    const toDeadNode = cluster.received.slice(before).filter((r) => {
      const command = r.command.command;
      return command?.$case === 'transferLeader' && cluster.nodeOf(command.value.shardId, command.value.toReplicaId) === 'n2';
    });
    expect(toDeadNode, 'leadership sent to a silent node stalls writes for an election timeout').to.deep.equal([]);
  });

  it('leaves a leader a failover just elected where it is for a few seconds (clients have just found it)', () => {
    const cluster = new FakeCluster({ shardCount: 24, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3', 'n4'] });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    cluster.run(10);
    const ledByVictim = [...Array(24).keys()].filter((shardId) => {
      const group = cluster.group(shardId);
      return group !== undefined && cluster.nodeOf(shardId, group.leaderReplicaId) === 'n1';
    });
    expect(ledByVictim.length).to.be.greaterThan(0);
    const before = cluster.received.length;
    cluster.killNode('n1');
    // 500 ms rounds: the survivors elect after 1.5 s, while n1 is still `up` (suspect at 3 s):
    // the new leaders pile up on the survivors, an imbalance that invites transfers.
    cluster.run(LEADER_SETTLE_MS / 500);
    const moved = cluster.received.slice(before).filter((r) => {
      const command = r.command.command;
      return command?.$case === 'transferLeader' && ledByVictim.includes(command.value.shardId);
    });
    expect(moved.map((r) => r.round), 'a leader moved within LEADER_SETTLE_MS of its election').to.deep.equal([]);
  });

  it('node join → replicas rebalance to ±1 of S·K/N and leaders to ±1 of S/N', () => {
    const shardCount = 32;
    const cluster = new FakeCluster({ shardCount, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3'] });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 20);
    cluster.addNode('n4');
    cluster.addNode('n5');
    const balanced = (): boolean => {
      if (!cluster.healthy() || cluster.state.movesInFlight > 0) return false;
      const replicas = [...cluster.replicaCounts().values()];
      const leaders = [...cluster.leaderCounts().values()];
      return Math.max(...replicas) - Math.min(...replicas) <= 1 && Math.max(...leaders) - Math.min(...leaders) <= 2;
    };
    cluster.runUntil(balanced, 400);
    cluster.run(10);
    expectWithinOne(cluster.replicaCounts(), (shardCount * 3) / 5, 'replicas');
    expectWithinOne(cluster.leaderCounts(), shardCount / 5, 'leaders');
    expect(cluster.received.some((r) => r.nodeId === 'n5' && kindOf(r.command) === 'createReplica')).to.equal(true);
    expect(cluster.received.some((r) => kindOf(r.command) === 'destroyReplica'), 'moved-away replicas are destroyed').to.equal(true);
  });

  it('drain: every replica and leadership moves off the node, nothing new goes there, the rest stays balanced (issue 19)', () => {
    const shardCount = 16;
    const cluster = new FakeCluster({ shardCount, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3', 'n4'], bootstrapNodes: 4 });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    expect(cluster.replicaCounts().get('n4') ?? 0, 'n4 holds replicas before').to.be.greaterThan(0);
    expect(cluster.state.setDraining('n4', true)).to.equal(undefined);
    const drained = (): boolean => cluster.healthy() && cluster.state.movesInFlight === 0
      && (cluster.replicaCounts().get('n4') ?? 0) === 0 && (cluster.leaderCounts().get('n4') ?? 0) === 0;
    cluster.runUntil(drained, 400);
    cluster.run(20);
    expect(cluster.replicaCounts().get('n4') ?? 0, 'stays empty: rebalancing does not refill it').to.equal(0);
    expect(cluster.state.nodeInfos().find((node) => node.nodeId === 'n4')?.draining).to.equal(true);
    for (const nodeId of ['n1', 'n2', 'n3']) expect(cluster.replicaCounts().get(nodeId)).to.equal(shardCount);
    const moves = cluster.events.filter((event) => event.message === 'move: start' && event.fields['reason'] === 'drain');
    expect(moves.length).to.equal(12);
    // Cancelled, the node fills again.
    expect(cluster.state.setDraining('n4', false)).to.equal(undefined);
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0 && (cluster.replicaCounts().get('n4') ?? 0) >= 11, 400);
  });

  it('drain is refused when fewer than K other live nodes would remain, and for an unknown node', () => {
    const cluster = new FakeCluster({ shardCount: 4, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3'] });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    expect(cluster.state.setDraining('n3', true)).to.deep.equal({
      refused: 'precondition',
      message: 'draining n3 would leave shards under 3 live replicas: 2 other live nodes not draining (n1, n2), 3 needed; add a node first',
    });
    expect(cluster.state.setDraining('n9', true)?.refused).to.equal('unknown');
    expect(cluster.state.nodeInfos().every((node) => !node.draining)).to.equal(true);
  });
});
