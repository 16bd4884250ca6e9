/**
 * Quiescence through the real node code on the simulator (`src/node/quiescence.ts`): idle
 * groups fall asleep and send nothing but one keep-alive per peer, a request wakes them, and a
 * sleeping group whose leader's node dies or is cut off elects a new leader with no client
 * traffic to wake it. The checker (leases, one leader per term, linearizable history) runs
 * after every event.
 */
import { expect } from 'chai';
import { loadHasher } from '../../src/common/index.js';
import { CommandOp } from '../../src/node/kv-command.js';
import { Role } from '../../src/raft/index.js';
import { quietScenario } from './scenario.js';
import { SimCluster } from './sim-cluster.js';

const SHARDS = [0, 1, 2];

/** Every replica of every live node sleeps. */
function allQuiesced(cluster: SimCluster): boolean {
  for (const node of cluster.nodes.values()) {
    const host = node.host;
    if (host === undefined) continue;
    for (const replica of host.replicas()) if (!replica.quiesced) return false;
  }
  return true;
}

/** The node leading `shardId`, if one of the live nodes does. */
function leaderNodeOf(cluster: SimCluster, shardId: number, except?: string): string | undefined {
  for (const [nodeId, node] of cluster.nodes) {
    if (nodeId === except) continue;
    if (node.host?.replica(shardId)?.role === Role.Leader) return nodeId;
  }
  return undefined;
}

/** Raft messages (not keep-alives) sent so far by every live node. */
function raftMessagesSent(cluster: SimCluster): number {
  let messages = 0;
  for (const node of cluster.nodes.values()) messages += node.host?.transport.stats.messages ?? 0;
  return messages;
}

/** Runs virtual time until `operation` settles (the simulator only moves while run). */
async function settled<T>(cluster: SimCluster, operation: Promise<T>): Promise<T> {
  let result: { value: T } | undefined;
  void operation.then((value) => {
    result = { value };
  });
  await cluster.until('the operation settled', 5_000, () => result !== undefined);
  return (result as { value: T }).value;
}

/** Every node but `nodeId`. */
function othersThan(cluster: SimCluster, nodeId: string): string[] {
  return [...cluster.nodes.keys()].filter((other) => other !== nodeId);
}

/** The end of every fault case: every shard takes a write again, and the history is linearizable. */
async function recovers(cluster: SimCluster): Promise<void> {
  await cluster.liveness(10_000);
  cluster.checkHistory();
}

async function sleepingCluster(): Promise<SimCluster> {
  const cluster = new SimCluster(quietScenario({ nodes: 3, replicationFactor: 3, shards: SHARDS.length }));
  await cluster.start();
  await cluster.until('every group asleep', 5_000, () => allQuiesced(cluster));
  return cluster;
}

describe('quiescence on the simulator (issue 16)', function () {
  this.timeout(60_000);

  before(async () => {
    await loadHasher();
  });

  it('idle groups sleep and send no Raft message; a write wakes its group, commits, and the group sleeps again', async () => {
    const cluster = await sleepingCluster();
    const before = raftMessagesSent(cluster);
    const keepAlives = [...cluster.nodes.values()].reduce((sum, node) => sum + (node.host?.transport.stats.keepAlives ?? 0), 0);
    await cluster.runFor(5_000);
    expect(raftMessagesSent(cluster) - before, 'Raft messages in 5 s of sleep').to.equal(0);
    const keepAlivesAfter = [...cluster.nodes.values()].reduce((sum, node) => sum + (node.host?.transport.stats.keepAlives ?? 0), 0);
    // 3 nodes × 2 peers × one every 100 ms: ~300 in 5 s, whatever the number of shards.
    expect(keepAlivesAfter - keepAlives, 'keep-alives in 5 s').to.be.within(200, 400);
    expect(allQuiesced(cluster), 'still asleep').to.equal(true);

    const key = cluster.keys[0] as string;
    const written = await settled(cluster, cluster.clients.write(0, key, 'woken', 1));
    expect(written?.status, 'the write on a sleeping group').to.equal('ok');
    await cluster.until('asleep after the write', 5_000, () => allQuiesced(cluster));
    await cluster.runFor(2_000); // past the lease: the read needs a ReadIndex round, which wakes the group
    const read = await settled(cluster, cluster.clients.read(0, key));
    expect(read?.type === 'get' ? read.value : undefined, 'read back').to.equal('woken');
    await cluster.until('asleep again', 5_000, () => allQuiesced(cluster));
    cluster.checkHistory();
  });

  it('a sleeping group whose leader node is killed elects a new leader on its own', async () => {
    const cluster = await sleepingCluster();
    const victim = leaderNodeOf(cluster, 0) as string;
    const term = cluster.node(victim).host?.replica(0)?.rawNode.term() ?? 0;
    cluster.node(victim).kill();
    await cluster.until('a new leader of shard 0', 3_000, () => leaderNodeOf(cluster, 0, victim) !== undefined);
    const successor = cluster.node(leaderNodeOf(cluster, 0, victim) as string).host?.replica(0);
    expect(successor?.rawNode.term(), 'a later term').to.be.greaterThan(term);
    cluster.node(victim).start();
    await recovers(cluster);
  });

  it('a sleeping group whose leader is cut off elects a new leader; once healed, the old one follows', async () => {
    const cluster = await sleepingCluster();
    const isolated = leaderNodeOf(cluster, 0) as string;
    const others = othersThan(cluster, isolated);
    const heal = cluster.network.partition([isolated], others);
    await cluster.until('a new leader of shard 0 among the others', 5_000, () => leaderNodeOf(cluster, 0, isolated) !== undefined);
    heal();
    await cluster.until('the cut-off node follows again', 5_000, () => cluster.node(isolated).host?.replica(0)?.role === Role.Follower);
    await recovers(cluster);
  });

  it('a sleeping group whose leader node falls silent (paused: no stream breaks) elects a new leader: the peers\' keep-alives stop', async () => {
    const cluster = await sleepingCluster();
    const paused = leaderNodeOf(cluster, 0) as string;
    cluster.node(paused).pause(4_000);
    // Nothing else tells the followers: the paused node's streams stay open, and no client writes.
    await cluster.until('a new leader of shard 0 during the pause', 3_000, () => leaderNodeOf(cluster, 0, paused) !== undefined);
    await cluster.until('the paused node follows once resumed', 5_000, () => cluster.node(paused).host?.replica(0)?.role === Role.Follower);
    await recovers(cluster);
  });

  it('a cut between a sleeping leader and one follower elects nobody: the other follower wakes the leader', async () => {
    const cluster = await sleepingCluster();
    const leader = leaderNodeOf(cluster, 0) as string;
    const term = cluster.node(leader).host?.replica(0)?.rawNode.term();
    const [cutOff] = othersThan(cluster, leader);
    // The cut-off follower campaigns (its stream broke, its election timer runs), and its
    // pre-votes reach the other follower only. Awake, the leader's heartbeats keep that one from
    // granting them; asleep, it sends none unless that follower wakes it.
    const heal = cluster.network.partition([leader], [cutOff as string]);
    await cluster.runFor(8_000);
    expect(leaderNodeOf(cluster, 0), 'the leader of shard 0').to.equal(leader);
    expect(cluster.node(leader).host?.replica(0)?.rawNode.term(), 'no election').to.equal(term);
    heal();
    await recovers(cluster);
  });

  it('a deposed leader\'s stranded writes are answered before its replica sleeps as a follower', async () => {
    const cluster = await sleepingCluster();
    const deposed = leaderNodeOf(cluster, 0) as string;
    const others = othersThan(cluster, deposed);
    const heal = cluster.network.partition([deposed], others);
    // Three writes the cut-off leader appends and can never commit: the new leader's log will
    // hold fewer entries, so nothing ever applies at the last indexes to answer them.
    const host = cluster.node(deposed).host;
    const replica = host?.replica(0);
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) {
      replica?.write({ op: CommandOp.Put, key: Buffer.from(`stranded${i}`), value: Buffer.from('v') }, (outcome) => {
        answers.push(outcome.ok ? 'ok' : outcome.reason);
      });
    }
    if (replica !== undefined) host?.mark(replica);
    await cluster.until('a new leader of shard 0 among the others', 5_000, () => leaderNodeOf(cluster, 0, deposed) !== undefined);
    heal();
    // No client writes: the new leader's group falls asleep; the deposed replica must stay awake
    // until its writes are answered (their deadline is checked on ticks).
    await cluster.until('every stranded write answered', 8_000, () => answers.length === 3);
    expect(answers.every((answer) => answer !== 'ok'), `answers ${answers.join(', ')}`).to.equal(true);
    await cluster.until('everything asleep again', 5_000, () => allQuiesced(cluster));
  });
});
