import { expect } from 'chai';
import {
  type BatchRequestItem,
  type CasResponse,
  type DeleteResponse,
  ErrorCode,
  type GetResponse,
  type PutResponse,
} from '../../src/gen/kvstore/v1/kvstore.js';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WalError } from '../../src/raft/storage/index.js';
import { waitFor } from '../support/wait-for.js';
import { NodeCluster } from './support/node-cluster.js';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

describe('node/storage-node (3 nodes in process, loopback gRPC)', function () {
  this.timeout(60_000);
  let cluster: NodeCluster | undefined;

  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  it('puts, gets, deletes and compare-and-sets through KvService', async () => {
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 4, durable: true });
    await cluster.waitForLeaders();
    const c = cluster;

    const put = await c.call<object, PutResponse>('put', { key: bytes('alpha'), value: bytes('one'), epoch: 0 });
    expect(put.version).to.be.greaterThan(0);
    const got = await c.call<object, GetResponse>('get', { key: bytes('alpha'), epoch: 0 });
    expect(got).to.deep.include({ found: true, version: put.version });
    expect(got.value.toString()).to.equal('one');

    const missing = await c.call<object, GetResponse>('get', { key: bytes('nobody'), epoch: 0 });
    expect(missing.found).to.equal(false);

    const conflict = await c.call<object, CasResponse>('cas', { key: bytes('alpha'), expectedVersion: put.version + 100, value: bytes('x'), epoch: 0 });
    expect(conflict.error?.code).to.equal(ErrorCode.ERROR_CODE_CONFLICT);
    expect(conflict.currentVersion).to.equal(put.version);
    const swapped = await c.call<object, CasResponse>('cas', { key: bytes('alpha'), expectedVersion: put.version, value: bytes('two'), epoch: 0 });
    expect(swapped.error).to.equal(undefined);
    expect(swapped.version).to.be.greaterThan(put.version);

    const deleted = await c.call<object, DeleteResponse>('delete', { key: bytes('alpha'), epoch: 0 });
    expect(deleted.existed).to.equal(true);
    const again = await c.call<object, DeleteResponse>('delete', { key: bytes('alpha'), epoch: 0 });
    expect(again.existed).to.equal(false);
  });

  it('stops a node whose snapshot file could not be written, though no write of a client follows to report it', async () => {
    const fatal: unknown[] = [];
    cluster = await NodeCluster.start({
      nodeCount: 1, shardCount: 1, durable: true, overrides: { snapshotIntervalEntries: 4, onFatal: (error) => fatal.push(error) },
    });
    await cluster.waitForLeaders();
    const node = cluster.nodes[0];
    if (node === undefined) throw new Error('no node 0');
    // snap/ becomes a plain file: the next snapshot's file, written in the background, fails.
    const snapDir = join(cluster.dataDirs[0] as string, 'snap');
    rmSync(snapDir, { recursive: true });
    writeFileSync(snapDir, 'not a directory');
    const snapshots = async (): Promise<number> => (await node.metrics.registry.getSingleMetric('kvstore_node_snapshots_created_total')?.get())?.values[0]?.value ?? 0;
    for (let i = 0; (await snapshots()) === 0; i++) {
      expect(i, 'puts before the first snapshot').to.be.below(20);
      await cluster.call<object, PutResponse>('put', { key: bytes(`k${i}`), value: bytes('v'), epoch: 0 });
    }
    // No request follows: only the host's own check can find the failure.
    await waitFor('the node to stop', () => fatal.length > 0, 10_000, 20);
    expect(fatal[0]).to.be.instanceOf(WalError).with.property('code', 'IO_FAILED');
  });

  it('serves per-shard series on /metrics only with metricsPerShard (--metrics-per-shard)', async () => {
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 4, overrides: { metricsPerShard: true } });
    await cluster.waitForLeaders();
    const perShard = cluster.nodes[0];
    if (perShard === undefined) throw new Error('no node 0');
    await waitFor('node 0 to know every leader', () => [...perShard.host.replicas()].every((replica) => replica.leaderId !== 0), 10_000, 20);
    perShard.metrics.observe(perShard.host);
    const text = await perShard.metrics.registry.metrics();
    for (let shard = 0; shard < 4; shard++) {
      expect(text).to.match(new RegExp(`^kvstore_node_raft_term\\{shard="${shard}"\\} [1-9]`, 'm'));
      expect(text).to.match(new RegExp(`^kvstore_node_raft_applied_index\\{shard="${shard}"\\} [0-9]`, 'm'));
      expect(text).to.match(new RegExp(`^kvstore_node_leader_changes_seen_total\\{shard="${shard}"\\} [1-9]`, 'm'));
    }
    await cluster.close();
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 4 });
    await cluster.waitForLeaders();
    const totals = cluster.nodes[0];
    if (totals === undefined) throw new Error('no node 0');
    // A shard has a leader before every follower has heard from it: wait until node 0's do.
    await waitFor('node 0 to know every leader', () => [...totals.host.replicas()].every((replica) => replica.leaderId !== 0), 10_000, 20);
    totals.metrics.observe(totals.host);
    const small = await totals.metrics.registry.metrics();
    expect(small).to.not.contain('shard=');
    expect(small).to.match(/^kvstore_node_leader_changes_seen_total [1-9]/m);
    expect(small).to.match(/^kvstore_node_replicas_leaderless 0$/m);
  });

  it('applies a retried session write once', async () => {
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 2 });
    await cluster.waitForLeaders();
    const session = { clientId: 'client-a', seq: 7 };
    const first = await cluster.call<object, PutResponse>('put', { key: bytes('k'), value: bytes('v1'), session, epoch: 0 });
    await cluster.call<object, PutResponse>('put', { key: bytes('k'), value: bytes('v2'), session: { clientId: 'client-b', seq: 1 }, epoch: 0 });
    const retry = await cluster.call<object, PutResponse>('put', { key: bytes('k'), value: bytes('v1'), session, epoch: 0 });
    expect(retry.version).to.equal(first.version);
    const got = await cluster.call<object, GetResponse>('get', { key: bytes('k'), epoch: 0 });
    expect(got.value.toString()).to.equal('v2');
  });

  it('rejects bad input with the limit and routes with NOT_LEADER / WRONG_SHARD', async () => {
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 3 });
    await cluster.waitForLeaders();
    const c = cluster;
    const tooLong = await c.call<object, PutResponse>('put', { key: bytes('k'.repeat(21)), value: bytes('v'), epoch: 0 });
    expect(tooLong.error?.code).to.equal(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(tooLong.error?.message).to.match(/20 bytes/);
    const big = await c.call<object, PutResponse>('put', { key: bytes('k'), value: Buffer.alloc(1025), epoch: 0 });
    expect(big.error?.message).to.match(/1024/);
    const empty = await c.call<object, GetResponse>('get', { key: Buffer.alloc(0), epoch: 0 });
    expect(empty.error?.code).to.equal(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);

    const shard = c.shardOf('route-me');
    const leader = await waitFor('leader', () => c.leaderOf(shard), 10_000, 20);
    const follower = c.nodes[(leader + 1) % 3];
    const answer = await new Promise<GetResponse>((resolve, reject) => {
      c.client(follower?.address ?? '').get({ key: bytes('route-me'), epoch: 0 }, (error, response) => (error ? reject(error) : resolve(response)));
    });
    expect(answer.error?.code).to.equal(ErrorCode.ERROR_CODE_NOT_LEADER);
    expect(answer.error?.leaderNodeId).to.equal(`n${leader + 1}`);
    expect(answer.error?.leaderAddress).to.equal(c.nodes[leader]?.address);
    expect(answer.error?.epoch).to.equal(1);

    // A node without a replica of the shard says WRONG_SHARD.
    c.nodes[leader]?.host.destroyReplica(shard, shard * 3 + leader + 1);
    const wrong = await new Promise<GetResponse>((resolve, reject) => {
      c.client(c.nodes[leader]?.address ?? '').get({ key: bytes('route-me'), epoch: 0 }, (error, response) => (error ? reject(error) : resolve(response)));
    });
    expect(wrong.error?.code).to.equal(ErrorCode.ERROR_CODE_WRONG_SHARD);
  });

  it('answers many items on one Batch stream, coalescing answers', async () => {
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 1 });
    await cluster.waitForLeaders();
    const leader = cluster.nodes[await waitFor('leader', () => cluster?.leaderOf(0), 10_000, 20)];
    const items: BatchRequestItem[] = [];
    for (let i = 0; i < 64; i++) {
      items.push({ requestId: i, op: { $case: 'put', value: { key: bytes(`key-${i}`), value: bytes(`value-${i}`), session: { clientId: 'batcher', seq: i + 1 }, epoch: 0, ttlMs: 0 } } });
    }
    const responses = await cluster.batch(leader?.address ?? '', [{ items: items.slice(0, 32) }, { items: items.slice(32) }], 64);
    const answered = responses.flatMap((response) => response.items);
    expect(answered.map((item) => item.requestId).sort((a, b) => a - b)).to.deep.equal(items.map((item) => item.requestId));
    for (const item of answered) {
      expect(item.result?.$case).to.equal('put');
      expect(item.result?.value.error).to.equal(undefined);
    }
    // 64 writes in two messages: far fewer response messages than items.
    expect(responses.length).to.be.lessThan(16);

    const reads: BatchRequestItem[] = items.map((item, i) => ({ requestId: 1000 + i, op: { $case: 'get', value: { key: bytes(`key-${i}`), epoch: 0 } } }));
    const readResponses = await cluster.batch(leader?.address ?? '', [{ items: reads }], 64);
    const values = new Map(readResponses.flatMap((response) => response.items).map((item) => [item.requestId, item.result?.$case === 'get' ? item.result.value.value.toString() : '']));
    for (let i = 0; i < 64; i++) expect(values.get(1000 + i)).to.equal(`value-${i}`);
  });

  it('keeps serving after the leader node stops, and a restarted node recovers from its WAL', async () => {
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 2, durable: true });
    await cluster.waitForLeaders();
    const c = cluster;
    for (let i = 0; i < 20; i++) await c.call<object, PutResponse>('put', { key: bytes(`before-${i}`), value: bytes(`v${i}`), epoch: 0 });
    const shard = c.shardOf('before-0');
    const oldLeader = await waitFor('leader', () => c.leaderOf(shard), 10_000, 20);
    const oldPort = c.nodes[oldLeader]?.port ?? 0;
    await c.stopNode(oldLeader);

    const newLeader = await waitFor('a new leader', () => {
      const index = c.leaderOf(shard);
      return index !== undefined && index !== oldLeader ? index : undefined;
    }, 10_000, 20);
    expect(newLeader).to.not.equal(oldLeader);
    for (let i = 0; i < 20; i++) {
      const got = await c.call<object, GetResponse>('get', { key: bytes(`before-${i}`), epoch: 0 });
      expect(got.value.toString()).to.equal(`v${i}`);
    }
    await c.call<object, PutResponse>('put', { key: bytes('after'), value: bytes('yes'), epoch: 0 });

    // Restart the stopped node on its old port from its data dir: it recovers and catches up.
    const restarted = await c.startNode(oldLeader, oldPort);
    c.connectPeers();
    const afterShard = c.shardOf('after');
    await waitFor('the restarted replica to apply the write made while it was down', () => {
      const replica = restarted.host.replica(afterShard);
      const leaderIndex = c.leaderOf(afterShard);
      const leaderApplied = leaderIndex === undefined ? -1 : c.nodes[leaderIndex]?.host.replica(afterShard)?.machine.appliedIndex;
      return replica !== undefined && replica.machine.appliedIndex === leaderApplied;
    }, 10_000, 20);
    const recovered = restarted.host.replica(shard);
    expect(recovered?.machine.keyCount).to.be.greaterThan(0);
  });
});

describe('node/storage-node membership changes', function () {
  this.timeout(60_000);
  let cluster: NodeCluster | undefined;

  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  it('adds a learner that catches up from a snapshot, promotes it, removes and destroys an old replica', async () => {
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 1, durable: true });
    await cluster.waitForLeaders();
    const c = cluster;
    for (let i = 0; i < 30; i++) await c.call<object, PutResponse>('put', { key: bytes(`k${i}`), value: bytes(`v${i}`), epoch: 0 });

    // A fourth node joins with an uninitialized replica 10 of shard 0.
    c.dataDirs.push(c.dataDirs[0] + '-n4');
    const joiner = await c.startNode(3, 0);
    c.connectPeers();
    joiner.createReplica({ shardId: 0, replicaId: 10, initialMembers: [], campaign: false });
    expect(joiner.host.replica(0)?.uninitialized).to.equal(true);

    const leaderNode = () => c.nodes[c.leaderOf(0) ?? -1];
    const place = (command: Parameters<NonNullable<ReturnType<typeof leaderNode>>['execute']>[0]) => leaderNode()?.execute(command);
    place({ command: { $case: 'addReplica', value: { shardId: 0, member: { replicaId: 10, nodeId: 'n4', learner: true } } } });
    await waitFor('the learner to catch up', () => {
      const replica = joiner.host.replica(0);
      return replica !== undefined && !replica.uninitialized && replica.machine.keyCount === 30;
    }, 10_000, 20);
    expect(joiner.host.replica(0)?.confState.learners).to.deep.equal([10]);
    expect(joiner.host.replica(0)?.machine.epoch).to.equal(2);

    place({ command: { $case: 'promoteLearner', value: { shardId: 0, replicaId: 10 } } });
    await waitFor('promotion', () => joiner.host.replica(0)?.confState.voters.includes(10), 10_000, 20);

    // Remove the leader's own replica: it hands leadership over first; the command is repeated like the manager does.
    const oldLeaderIndex = c.leaderOf(0) ?? -1;
    const oldReplicaId = c.nodes[oldLeaderIndex]?.host.replica(0)?.replicaId ?? -1;
    await waitFor('removal of the old leader replica', () => {
      place({ command: { $case: 'removeReplica', value: { shardId: 0, replicaId: oldReplicaId } } });
      return c.nodes[oldLeaderIndex]?.host.replica(0)?.removed;
    }, 10_000, 20);
    c.nodes[oldLeaderIndex]?.execute({ command: { $case: 'destroyReplica', value: { shardId: 0, replicaId: oldReplicaId } } });
    expect(c.nodes[oldLeaderIndex]?.host.replica(0)).to.equal(undefined);
    await waitFor('a leader among the remaining members', () => c.leaderOf(0) !== undefined && c.leaderOf(0) !== oldLeaderIndex, 10_000, 20);
    expect(leaderNode()?.host.replica(0)?.machine.epoch).to.equal(4);

    const afterMove = await c.call<object, PutResponse>('put', { key: bytes('after-move'), value: bytes('ok'), epoch: 0 });
    expect(afterMove.error).to.equal(undefined);
    await waitFor('the new member to apply the latest write', () => joiner.host.replica(0)?.machine.keyCount === 31, 10_000, 20);
  });
});
