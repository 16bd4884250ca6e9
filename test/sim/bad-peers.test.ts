/**
 * Scripted bad peers (issue 15, "A node that stays up"): messages and snapshots that used to
 * stop a node — or stop it at every restart — sent to a follower of a running simulated
 * cluster through its real receiving path. Each must be refused with one warn line naming
 * the peer and why, counted, and the cluster must go on serving; the checker runs after
 * every event. The first two failed before the inbound gate: the follower's turn threw in
 * the WAL encoder, and a snapshot that did not decode was written, then thrown on install,
 * and again at every restart.
 */
import { expect } from 'chai';
import { loadHasher } from '../../src/common/index.js';
import type { RaftMessage } from '../../src/gen/kvstore/v1/raft.js';
import type { RejectReason } from '../../src/node/message-check.js';
import { snapshotChecksum } from '../../src/node/snapshot-check.js';
import { appendAfterLast, groupOf, hostOf, sendTo, termAt, wireMessage, type Group } from './bad-peer.js';
import { RecordingLog } from '../support/recording-log.js';
import { quietScenario } from './scenario.js';
import { SimCluster } from './sim-cluster.js';
import { QUIET_NETWORK } from './sim-network.js';

/** A started 3-node cluster of one shard whose nodes log into `log`; bad messages are the tests' to check. */
async function startCluster(log: RecordingLog): Promise<SimCluster> {
  const cluster = new SimCluster(quietScenario({ nodes: 3, replicationFactor: 3, shards: 1, keys: 4 }), undefined, log.logger);
  cluster.checker.badPeersExpected = true;
  await cluster.start();
  return cluster;
}

/** Expects exactly one warn line since line `from` (or in `warns`), from the follower's node, naming `peer` and `reason`. */
function expectOneWarn(log: RecordingLog, from: number, group: Group, peer: string, reason: RejectReason, warns = log.at('warn', from)): void {
  expect(warns, JSON.stringify(warns)).to.have.length(1);
  expect(warns[0]?.fields).to.include({ node: group.followerNode.nodeId, peer, reason });
}

/** The follower's host refused exactly `count` messages for `reason` so far. */
function rejected(group: Group, reason: RejectReason): number {
  return hostOf(group.followerNode).inbound.stats.rejected[reason] ?? 0;
}

/** A snapshot header from the leader to the follower, at `index` of `term`, with the follower's configuration. */
function snapshotHeader(group: Group, index: number, term: number): RaftMessage {
  const { leader, follower } = group;
  return wireMessage({
    shardId: follower.shardId, type: 9, to: follower.replicaId, from: leader.replicaId, term: follower.rawNode.term(),
    snapshot: { metadata: { index, term, confState: { voters: [...follower.confState.voters], learners: [] } }, data: Buffer.alloc(0) },
  });
}

/** The group keeps serving: a write commits everywhere, the follower restarts from its disk, the history is linearizable. */
async function expectServingAndRecovering(cluster: SimCluster, group: Group): Promise<void> {
  await cluster.liveness(10_000);
  const follower = group.followerNode;
  follower.kill();
  follower.start();
  await cluster.until('the follower back up', 5_000, () => follower.up);
  await cluster.liveness(10_000);
  await cluster.until('the follower caught up', 5_000, () =>
    (follower.host?.replica(0)?.machine.appliedIndex ?? -1) >= (cluster.manager.leaderOf(0)?.replica.machine.appliedIndex ?? 0));
  await cluster.finalReads(10_000);
  cluster.checkHistory();
}

describe('bad peers: messages that used to stop a node (issue 15)', function () {
  this.timeout(60_000);

  before(async () => {
    await loadHasher();
  });

  it('refuses an append whose entries skip an index (it threw in the WAL encoder, inside a turn)', async () => {
    const log = new RecordingLog();
    const cluster = await startCluster(log);
    const group = groupOf(cluster, 0);
    const append = appendAfterLast(group);
    const term = append.term;
    append.entries = [
      { term, index: append.index + 1, type: 0, data: Buffer.alloc(0) },
      { term, index: append.index + 3, type: 0, data: Buffer.alloc(0) },
    ];
    const lastIndex = group.follower.rawNode.lastIndex();
    const lines = log.lines.length;
    sendTo(group.followerNode, group.leaderNode.nodeId, append);
    const warns = log.at('warn', lines);
    await cluster.runFor(1_000); // before issue 15: "n2 stopped on a fatal error: WalError: entries must be consecutive"
    expect(group.followerNode.up, 'the follower is up').to.equal(true);
    expectOneWarn(log, lines, group, group.leaderNode.nodeId, 'bad_entries', warns);
    expect(rejected(group, 'bad_entries')).to.equal(1);
    expect(group.follower.storage.lastIndex(), 'nothing of it appended').to.be.at.least(lastIndex);
    expect(cluster.checker.rejections.get('bad_entries')).to.equal(1);
    await expectServingAndRecovering(cluster, group);
  });

  it('refuses a snapshot whose data does not decode BEFORE writing it (it was written, then thrown on every restart)', async () => {
    const log = new RecordingLog();
    const cluster = await startCluster(log);
    const group = groupOf(cluster, 0);
    const { follower, followerNode, leaderNode } = group;
    const snapshotIndex = follower.storage.snapshot();
    const header = snapshotHeader(group, follower.rawNode.commitIndex() + 50, follower.rawNode.term());
    const garbage = Buffer.from('not a snapshot at all');
    const lines = log.lines.length;
    // The sender's checksum matches what arrives: the data itself is bad.
    const accepted = hostOf(followerNode).deliverSnapshot(leaderNode.nodeId, header, garbage, snapshotChecksum(garbage));
    const warns = log.at('warn', lines);
    await cluster.runFor(1_000); // before issue 15: "n2 stopped on a fatal error: CodecError: unknown KV snapshot format 110"
    expect(followerNode.up).to.equal(true);
    expect(accepted).to.equal(false);
    expectOneWarn(log, lines, group, leaderNode.nodeId, 'snapshot_data', warns);
    expect(follower.storage.snapshot(), 'no snapshot written').to.deep.equal(snapshotIndex);
    await expectServingAndRecovering(cluster, group);
  });

  it('refuses a snapshot applied through another index than its metadata says, and one the checksum finds changed', async () => {
    const log = new RecordingLog();
    const cluster = await startCluster(log);
    await cluster.liveness(5_000); // some state to snapshot
    const group = groupOf(cluster, 0);
    const { leader, followerNode, leaderNode } = group;
    const data = leader.machine.encodeSnapshot();
    const applied = leader.machine.appliedIndex;
    const host = hostOf(followerNode);

    let lines = log.lines.length;
    const misplaced = snapshotHeader(group, applied + 10, leader.rawNode.term());
    expect(host.deliverSnapshot(leaderNode.nodeId, misplaced, data, snapshotChecksum(data))).to.equal(false);
    expectOneWarn(log, lines, group, leaderNode.nodeId, 'snapshot_data');

    lines = log.lines.length;
    const changed = Buffer.from(data);
    changed[changed.length - 1] = (changed[changed.length - 1] as number) ^ 0x40;
    const header = snapshotHeader(group, applied, termAt(leader, applied));
    expect(host.deliverSnapshot(leaderNode.nodeId, header, changed, snapshotChecksum(data))).to.equal(false);
    expectOneWarn(log, lines, group, leaderNode.nodeId, 'snapshot_checksum');
    expect(rejected(group, 'snapshot_data') + rejected(group, 'snapshot_checksum')).to.equal(2);
    await expectServingAndRecovering(cluster, group);
  });

  it('refuses a snapshot changed on the way BEFORE writing anything, and the leader sends it again', async () => {
    const log = new RecordingLog();
    // Snapshots every 10 entries, no entries kept behind them: a follower left behind needs one.
    const scenario = quietScenario({ nodes: 3, replicationFactor: 3, shards: 1, keys: 4, snapshotIntervalEntries: 10, retainedEntries: 0, network: { ...QUIET_NETWORK } });
    const cluster = new SimCluster(scenario, undefined, log.logger);
    // badPeersExpected stays false: the checker fails the run on any refusal but the one corruption below explains.
    await cluster.start();
    const group = groupOf(cluster, 0);
    const { leader, follower, followerNode, leaderNode } = group;
    const snapshotIndex = (): number => {
      const snapshot = follower.storage.snapshot();
      return snapshot.ok ? snapshot.value.metadata.index : -1;
    };
    const heal = cluster.network.partition([followerNode.nodeId], [...cluster.nodes.keys()].filter((id) => id !== followerNode.nodeId));
    cluster.clients.start();
    await cluster.until('the leader compacted past the follower\'s log', 20_000, () => leader.storage.firstIndex() > follower.storage.lastIndex() + 1);
    const indexBefore = snapshotIndex();
    // What the follower holds at the moment it refuses the snapshot.
    let indexAtRefusal: number | undefined;
    const onRejected = cluster.checker.onRejected.bind(cluster.checker);
    cluster.checker.onRejected = (nodeId, reason, detail) => {
      if (nodeId === followerNode.nodeId && reason === 'snapshot_checksum') indexAtRefusal ??= snapshotIndex();
      onRejected(nodeId, reason, detail);
    };
    const lines = log.lines.length;
    cluster.network.faults.snapshotCorruptionRate = 1;
    heal();
    await cluster.until('a snapshot changed on the way', 5_000, () => cluster.network.stats.snapshotsCorrupted > 0);
    cluster.network.faults.snapshotCorruptionRate = 0;
    await cluster.until('the follower to refuse it', 5_000, () => rejected(group, 'snapshot_checksum') === 1);
    expect(indexAtRefusal, 'no snapshot written before the refusal').to.equal(indexBefore);
    expectOneWarn(log, lines, group, leaderNode.nodeId, 'snapshot_checksum');
    await cluster.until('the snapshot sent again and installed', 10_000, () => snapshotIndex() > indexBefore);
    expect(cluster.network.stats.snapshotsCorrupted).to.equal(1);
    expect(hostOf(leaderNode).transport.stats.snapshotsFailed, 'the refusal reached the leader').to.be.at.least(1);
    expect(hostOf(leaderNode).transport.stats.snapshotsSent).to.be.at.least(1);
    expect(rejected(group, 'snapshot_checksum')).to.equal(1);
    await cluster.stopClients();
    await expectServingAndRecovering(cluster, group);
  });

  it('accepts a snapshot without a checksum from an older node when it decodes, and says so at info', async () => {
    const log = new RecordingLog();
    const cluster = await startCluster(log);
    await cluster.liveness(5_000);
    const group = groupOf(cluster, 0);
    const { leader, follower, followerNode, leaderNode } = group;
    // Leave the follower behind, then hand it the leader's state as an older leader would.
    const cut = cluster.network.partition([followerNode.nodeId], [...cluster.nodes.keys()].filter((id) => id !== followerNode.nodeId));
    await cluster.liveness(5_000);
    const applied = leader.machine.appliedIndex;
    expect(applied).to.be.above(follower.rawNode.commitIndex());
    const header = snapshotHeader(group, applied, termAt(leader, applied));
    header.term = leader.rawNode.term();
    const lines = log.lines.length;
    expect(hostOf(followerNode).deliverSnapshot(leaderNode.nodeId, header, leader.machine.encodeSnapshot(), undefined)).to.equal(true);
    expect(log.at('warn', lines)).to.deep.equal([]);
    expect(log.at('info', lines).map((line) => line.message)).to.include('snapshot without checksum accepted: the peer runs an older version');
    await cluster.until('the snapshot installed', 2_000, () => follower.machine.appliedIndex >= applied);
    cut();
    await expectServingAndRecovering(cluster, group);
  });

  it('refuses a heartbeat whose commit lies beyond the follower\'s log (the core asserted on it)', async () => {
    const log = new RecordingLog();
    const cluster = await startCluster(log);
    const group = groupOf(cluster, 0);
    const { follower, leader } = group;
    const heartbeat = wireMessage({
      shardId: 0, type: 7, to: follower.replicaId, from: leader.replicaId, term: follower.rawNode.term(), commit: follower.rawNode.lastIndex() + 5,
    });
    const lines = log.lines.length;
    sendTo(group.followerNode, group.leaderNode.nodeId, heartbeat);
    expectOneWarn(log, lines, group, group.leaderNode.nodeId, 'commit_beyond_log');
    await expectServingAndRecovering(cluster, group);
  });

  it('writes a bounded number of lines for a flood, and counts every message', async () => {
    const log = new RecordingLog();
    const cluster = await startCluster(log);
    const group = groupOf(cluster, 0);
    const lines = log.lines.length;
    const flood = 10_000;
    for (let i = 0; i < flood; i++) {
      const message = appendAfterLast(group);
      message.term = 0; // bad_field
      sendTo(group.followerNode, i % 50 === 0 ? `peer-${i}` : group.leaderNode.nodeId, message);
    }
    const warns = log.at('warn', lines);
    expect(warns.length).to.be.within(1, 20);
    expect(rejected(group, 'bad_field')).to.equal(flood);
    const gate = hostOf(group.followerNode).inbound;
    expect(gate.log.stats.written + gate.log.stats.suppressed).to.equal(flood);
    // A later window logs again; the lines tell how many they held back, all of them.
    await cluster.runFor(10_000);
    const next = log.lines.length;
    sendTo(group.followerNode, group.leaderNode.nodeId, { ...appendAfterLast(group), term: 0 });
    const told = [...warns, ...log.at('warn', next)].reduce((sum, line) => sum + Number(line.fields['suppressed'] ?? 0), 0);
    expect(told).to.equal(flood - warns.length);
    await expectServingAndRecovering(cluster, group);
  });
});
