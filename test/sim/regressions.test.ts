/**
 * Scripted scenarios through the real node code on the simulator (real `RaftHost`,
 * replicas and WAL on a simulated disk): each reproduces one bug the simulator or a close
 * reading found, and fails if its fix is reverted. The checker runs after every event.
 */
import { expect } from 'chai';
import { loadHasher } from '../../src/common/index.js';
import type { RaftHost } from '../../src/node/raft-host.js';
import { Role } from '../../src/raft/index.js';
import { quietScenario } from './scenario.js';
import { SimCluster } from './sim-cluster.js';

/** A power cut that keeps nothing unsynced: every file back to its durable bytes. */
const LOSE_EVERYTHING_UNSYNCED = { directoryOperationsKept: 0, file: () => ({ kind: 'prefix' as const, length: 0 }) };

/** The replica of shard 0 on `nodeId`, which must exist. */
function replicaOn(cluster: SimCluster, nodeId: string): NonNullable<ReturnType<NonNullable<ReturnType<SimCluster['node']>['host']>['replica']>> {
  const replica = cluster.node(nodeId).host?.replica(0);
  if (replica === undefined) throw new Error(`no replica of shard 0 on ${nodeId}`);
  return replica;
}

/** Adds replica 2 on n2 as a learner of the one-voter group led by n1, and waits until it caught up. */
async function addLearnerOnN2(cluster: SimCluster): Promise<void> {
  const leader = cluster.node('n1').host;
  cluster.node('n2').host?.createReplica({ shardId: 0, replicaId: 2, initialMembers: [], campaign: false });
  await cluster.until('learner added and caught up', 5_000, () => {
    leader?.addLearner(0, 2, 'n2');
    const learner = cluster.node('n2').host?.replica(0);
    return learner !== undefined && !learner.uninitialized && learner.machine.appliedIndex >= replicaOn(cluster, 'n1').machine.appliedIndex;
  });
}

describe('simulator regressions (issue 14)', function () {
  this.timeout(60_000);

  before(async () => {
    await loadHasher();
  });

  it('a node whose fsync stalls for 2 s keeps its leaderships when its peers are healthy (issue 15)', async () => {
    const cluster = new SimCluster(quietScenario({ nodes: 3, replicationFactor: 3, shards: 3, slowFsyncMs: 2_700 }));
    await cluster.start();
    const led = (nodeId: string): number[] =>
      [0, 1, 2].filter((shardId) => cluster.node(nodeId).host?.replica(shardId)?.role === Role.Leader);
    const before = led('n1');
    expect(before.length, 'n1 leads a shard').to.be.greaterThan(0);
    const terms = before.map((shardId) => cluster.node('n1').host?.replica(shardId)?.rawNode.term());
    // Every fsync of n1 now takes 0.7–2.7 s; a write makes it sync.
    cluster.disks.get('n1')?.slowFor(cluster.nowMs, 5_000);
    const key = cluster.keys.find((candidate) => before.includes(cluster.shardOf(candidate))) as string;
    void cluster.clients.write(0, key, 'x', 1);
    await cluster.runFor(5_000);
    expect(led('n1'), 'leaderships kept through the stall').to.deep.equal(before);
    expect(before.map((shardId) => cluster.node('n1').host?.replica(shardId)?.rawNode.term()), 'no election').to.deep.equal(terms);
    await cluster.liveness(5_000);
    expect(cluster.node('n1').host?.stats.lightTurns, 'light turns kept the heartbeats going').to.be.greaterThan(0);
  });

  it('a node whose fast disk stalls: one inline fsync holds it, then the thread pool and light turns take over (issue 16)', async () => {
    const cluster = new SimCluster(quietScenario({ nodes: 3, replicationFactor: 3, shards: 3, fsyncMs: [0.02, 0.1], slowFsyncMs: 2_700, inlineFsyncs: true }));
    await cluster.start();
    const host = (): RaftHost | undefined => cluster.node('n1').host;
    const write = async (seq: number): Promise<void> => {
      const operation = await cluster.settle(cluster.clients.write(0, cluster.keys[0] as string, `v${seq}`, seq), 10_000, `write ${seq}`);
      expect(operation?.status).to.equal('ok');
    };
    for (let seq = 1; seq <= 5; seq++) await write(seq);
    await cluster.runFor(500);
    expect(host()?.fsyncsInline(), 'a disk syncing in 20–100 µs: n1 fsyncs inline').to.equal(true);
    // Every fsync of n1 now takes 0.7–2.7 s for 8 s; writes make it sync.
    cluster.disks.get('n1')?.slowFor(cluster.nowMs, 8_000);
    const stalledAt = cluster.nowMs;
    void cluster.clients.write(0, cluster.keys[0] as string, 'slow', 6);
    await cluster.runFor(3_000);
    expect(host()?.fsyncsInline(), 'after the first slow one: the thread pool').to.equal(false);
    const stalls = (): number => cluster.node('n1').stalledMs;
    const stalledOnce = stalls();
    expect(stalledOnce, 'one inline fsync held n1').to.be.within(600, 2_700);
    // The rest of the slow spell: more writes, no probe (the pool's fsyncs are slow), n1 never held again.
    for (let seq = 7; seq <= 9; seq++) await write(seq);
    expect(cluster.nowMs, 'the writes ended inside the slow spell').to.be.below(stalledAt + 8_000);
    await cluster.runFor(stalledAt + 8_000 - cluster.nowMs);
    expect(stalls(), 'no inline fsync during the rest of the stall').to.equal(stalledOnce);
    expect(host()?.stats.lightTurns, 'light turns kept the heartbeats going').to.be.greaterThan(0);
    // The disk is fast again: after the backoff and quiet pool fsyncs, inline again.
    await cluster.liveness(5_000);
    for (let seq = 10; seq <= 40 && host()?.fsyncsInline() !== true; seq++) {
      await write(seq);
      await cluster.runFor(200);
    }
    expect(host()?.fsyncsInline(), 'fast again: inline').to.equal(true);
  });

  it('the WAL stays bounded with one hot shard beside cold ones: the host snapshots the shards that pin it (issue 15)', async () => {
    const wal = { segmentBytes: 64 * 1024, purgeBytes: 192 * 1024 };
    const cluster = new SimCluster(quietScenario({ nodes: 3, replicationFactor: 3, shards: 16, keys: 1, wal }));
    await cluster.start();
    const key = cluster.keys[0] as string;
    const value = 'v'.repeat(1_000);
    let peakBytes = 0;
    const writes = 2_000;
    for (let seq = 1; seq <= writes; seq++) {
      const operation = await cluster.settle(cluster.clients.write(0, key, `${seq}${value}`, seq), 10_000, `write ${seq}`);
      expect(operation?.status).to.equal('ok');
      for (const node of cluster.nodes.values()) peakBytes = Math.max(peakBytes, node.host?.logBytes() ?? 0);
    }
    // The threshold, the segment being written and what the turns write while the pinning
    // replicas snapshot (once a second) — against 2 MB written.
    expect(peakBytes, `peak WAL ${peakBytes} bytes`).to.be.at.most(wal.purgeBytes + wal.segmentBytes + 128 * 1024);
    expect(peakBytes).to.be.below((writes * value.length) / 4);
  });

  it('adding a learner does not compact the other replicas\' logs past their retained entries (issue 15)', async () => {
    const cluster = new SimCluster(quietScenario({ nodes: 4, replicationFactor: 3, shards: 1, retainedEntries: 50 }));
    await cluster.start();
    const key = cluster.keys[0] as string;
    for (let seq = 1; seq <= 120; seq++) await cluster.settle(cluster.clients.write(0, key, `v${seq}`, seq), 5_000, 'a write');
    const leader = cluster.manager.leaderOf(0);
    if (leader === undefined) throw new Error('no leader');
    const target = [...cluster.nodes.values()].find((node) => node.host?.replica(0) === undefined);
    target?.host?.createReplica({ shardId: 0, replicaId: 99, initialMembers: [], campaign: false });
    await cluster.until('the learner added and caught up', 5_000, () => {
      leader.node.host?.addLearner(0, 99, target?.nodeId ?? '');
      return (target?.host?.replica(0)?.machine.appliedIndex ?? 0) >= leader.replica.machine.appliedIndex;
    });
    const applied = leader.replica.machine.appliedIndex;
    // The new member got a snapshot; the log still reaches back 50 entries for everyone else.
    expect(leader.replica.storage.firstIndex(), 'first index kept').to.be.at.most(applied + 1 - 50);
  });

  it('bug 1: a one-voter leader that loses power before its fsync has told its learner nothing was committed', async () => {
    const cluster = new SimCluster(quietScenario({ nodes: 2, replicationFactor: 1, shards: 1 }));
    await cluster.start();
    await addLearnerOnN2(cluster);
    const learner = replicaOn(cluster, 'n2');
    // The leader's disk stalls: its next write stays unsynced for seconds.
    cluster.disks.get('n1')?.slowFor(cluster.nowMs, 10_000);
    const key = cluster.keys[0] as string;
    const write = cluster.clients.write(0, key, 'x', 1);
    const before = learner.storage.lastIndex();
    // The append went out before the leader's fsync (allowed) and reached the learner.
    await cluster.until('the learner to hold the new entry', 1_000, () => learner.storage.lastIndex() > before);
    await cluster.runFor(20);
    expect(learner.rawNode.commitIndex(), 'the learner was told an entry the leader has not synced is committed').to.be.below(learner.storage.lastIndex());
    // Power is cut before the leader's fsync: the entry is gone there.
    cluster.node('n1').powerLoss(LOSE_EVERYTHING_UNSYNCED);
    cluster.heal();
    await cluster.until('a leader again', 5_000, () => cluster.allShardsLed());
    // The restarted leader writes its no-op at the lost entry's index; the learner must follow it.
    await cluster.settle(write, 10_000, 'the client to give up or succeed');
    await cluster.liveness(10_000);
    await cluster.until('the learner to catch up', 5_000, () => learner.machine.appliedIndex >= replicaOn(cluster, 'n1').machine.appliedIndex);
    await cluster.finalReads(10_000);
    cluster.checkHistory();
  });

  it('a one-voter group that shrank from two voters restarts with one: the change applied only once its commit was durable', async () => {
    const cluster = new SimCluster(quietScenario({ nodes: 2, replicationFactor: 1, shards: 1 }));
    await cluster.start();
    await addLearnerOnN2(cluster);
    await cluster.until('replica 2 promoted', 5_000, () => {
      cluster.node('n1').host?.promoteLearner(0, 2);
      return replicaOn(cluster, 'n1').confState.voters.includes(2);
    });
    // Move the voter off n1: it hands leadership to replica 2, which removes it.
    await cluster.until('replica 1 removed', 5_000, () => {
      for (const node of cluster.nodes.values()) node.host?.removeMember(0, 1);
      const survivor = replicaOn(cluster, 'n2');
      return survivor.role === Role.Leader && survivor.confState.voters.join() === '2';
    });
    // The manager destroys the removed replica as soon as the leader applied its removal.
    cluster.node('n1').host?.destroyReplica(0, 1);
    // The survivor is killed before anything else makes it sync: only what is synced and in
    // the page cache survives, not what the WAL still buffered in memory.
    cluster.node('n2').kill();
    cluster.heal();
    await cluster.until('a leader again', 10_000, () => cluster.allShardsLed());
    expect(replicaOn(cluster, 'n2').confState.voters).to.deep.equal([2]);
    await cluster.liveness(10_000);
  });
  it('snapshots for a node left behind on every shard wait for the leaders\' one send slot, and all arrive (issue 15)', async () => {
    // Snapshots every 10 entries and none kept behind: a node cut off while every shard takes
    // writes needs a snapshot of each. With one send slot per node they queue at the leaders.
    const cluster = new SimCluster(quietScenario({
      nodes: 3, replicationFactor: 3, shards: 6, keys: 24, clients: 3, snapshotIntervalEntries: 10, retainedEntries: 0, snapshotSendSlots: 1,
    }));
    await cluster.start();
    const behind = cluster.node('n3');
    const others = ['n1', 'n2'];
    const snapshotIndexes = (): number[] => behind.replicas().map((replica) => {
      const snapshot = replica.storage.snapshot();
      return snapshot.ok ? snapshot.value.metadata.index : -1;
    });
    const heal = cluster.network.partition(['n3'], others);
    cluster.clients.start();
    await cluster.until('every shard led on n1 or n2 with its log compacted past n3\'s', 30_000, () => behind.replicas().every((stale) => {
      const leader = others.map((id) => cluster.node(id).host?.replica(stale.shardId)).find((replica) => replica?.rawNode.status().role === Role.Leader);
      return leader !== undefined && leader.storage.firstIndex() > stale.storage.lastIndex() + 11;
    }));
    const before = snapshotIndexes();
    heal();
    await cluster.until('n3 installed a snapshot on every shard', 30_000, () => snapshotIndexes().every((index, i) => index > (before[i] ?? 0)));
    const waited = others.reduce((sum, id) => sum + (cluster.node(id).host?.transport.stats.snapshotsWaited ?? 0), 0);
    expect(waited, 'six snapshots from two leader nodes with one slot each: some waited').to.be.greaterThan(0);
    await cluster.stopClients();
    await cluster.liveness(15_000);
    await cluster.finalReads(15_000);
    cluster.checkHistory();
  });
});
