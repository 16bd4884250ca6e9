import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import winston from 'winston';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  NodeHealth, ReplicaRole, type CreateReplicaCommand, type HeartbeatResponse, type ReplicaStatus,
} from '../../src/gen/kvstore/v1/manager.js';
import { Manager, ManagerError } from '../../src/manager/index.js';
import { waitFor } from '../support/wait-for.js';
import { TestManagerClient } from './grpc-helpers.js';

const creates = (response: HeartbeatResponse): CreateReplicaCommand[] =>
  response.commands.flatMap((c) => (c.command?.$case === 'createReplica' ? [c.command.value] : []));

/** The status a bootstrapped replica reports; the campaigner reports itself leader at term 1. */
function statusFor(create: CreateReplicaCommand): ReplicaStatus {
  const leading = create.campaign;
  return {
    shardId: create.shardId, replicaId: create.replicaId,
    role: leading ? ReplicaRole.REPLICA_ROLE_LEADER : ReplicaRole.REPLICA_ROLE_FOLLOWER,
    term: 1, commitIndex: 1, appliedIndex: 1, leaderReplicaId: 0, members: create.initialMembers, epoch: 1, keyCount: 2,
    matchIndexes: leading ? create.initialMembers.map(() => 1) : [], uninitialized: false,
  };
}

describe('manager/service (in-process, real gRPC)', () => {
  let dataDir: string;
  let manager: Manager | null = null;
  let client: TestManagerClient | null = null;

  beforeEach(() => { dataDir = mkdtempSync(join(tmpdir(), 'kvstore-manager-')); });
  afterEach(async () => {
    client?.close();
    client = null;
    await manager?.close();
    manager = null;
    rmSync(dataDir, { recursive: true, force: true });
  });

  const start = async (): Promise<TestManagerClient> => {
    manager = await Manager.start({
      host: '127.0.0.1', port: 0, shardCount: 6, replicationFactor: 3, dataDir, metricsPort: null, bootstrapNodes: 3,
    });
    client = new TestManagerClient(manager.address);
    return client;
  };

  it('registers nodes, places once three have heartbeated, and learns leaders from heartbeats', async () => {
    const kv = await start();
    const nodeIds = ['n1', 'n2', 'n3'];
    for (const nodeId of nodeIds) {
      const registered = await kv.register({ nodeId, address: `127.0.0.1:${7100 + Number(nodeId.slice(1))}`, metricsPort: 0 });
      expect(registered).to.deep.equal({ shardCount: 6, replicationFactor: 3, heartbeatIntervalMs: 1000 });
    }
    const received = new Map<string, CreateReplicaCommand[]>();
    for (const nodeId of nodeIds) {
      const response = await kv.heartbeat({ nodeId });
      expect(response.reregister).to.equal(false);
      received.set(nodeId, creates(response));
    }
    // The third heartbeat completes the bootstrap set; the first two get their commands next time.
    for (const nodeId of nodeIds) {
      const again = creates(await kv.heartbeat({ nodeId }));
      received.set(nodeId, [...(received.get(nodeId) ?? []), ...again]);
    }
    for (const nodeId of nodeIds) {
      const list = received.get(nodeId) ?? [];
      expect(list.map((c) => c.shardId).sort()).to.deep.equal([0, 1, 2, 3, 4, 5]);
      for (const create of list) expect(create.initialMembers.map((m) => m.nodeId).sort()).to.deep.equal(nodeIds);
    }
    const campaigners = [...received.values()].flat().filter((c) => c.campaign);
    expect(campaigners).to.have.length(6);
    const leaderCounts = nodeIds.map((nodeId) => (received.get(nodeId) ?? []).filter((c) => c.campaign).length);
    expect(leaderCounts).to.deep.equal([2, 2, 2]);

    for (const nodeId of nodeIds) {
      const response = await kv.heartbeat({ nodeId, replicas: (received.get(nodeId) ?? []).map(statusFor), opsPerSecond: 5 });
      expect(response.commands.filter((c) => c.command?.$case === 'createReplica')).to.deep.equal([]);
      expect(response.nodes.map((n) => [n.nodeId, n.health])).to.deep.equal(nodeIds.map((id) => [id, NodeHealth.NODE_HEALTH_UP]));
    }
    const map = await kv.clusterMap();
    expect(map.shardCount).to.equal(6);
    expect(map.replicationFactor).to.equal(3);
    expect(map.nodes.map((n) => [n.nodeId, n.address, n.replicaCount, n.leaderCount, n.keyCount, n.opsPerSecond])).to.deep.equal([
      ['n1', '127.0.0.1:7101', 6, 2, 12, 5], ['n2', '127.0.0.1:7102', 6, 2, 12, 5], ['n3', '127.0.0.1:7103', 6, 2, 12, 5],
    ]);
    for (const shard of map.shards) {
      expect(shard.epoch).to.equal(1);
      expect(shard.term).to.equal(1);
      expect(shard.replicas).to.have.length(3);
      expect(nodeIds).to.include(shard.leaderNodeId);
    }
    const replicaIds = map.shards.flatMap((s) => s.replicas.map((r) => r.replicaId));
    expect(new Set(replicaIds).size, 'replica ids are unique').to.equal(18);
  });

  it('marks a silent node suspect after 3 s and down after --down-after, logging each transition', async () => {
    let clock = 5_000_000;
    const lines: Record<string, unknown>[] = [];
    const logger = winston.createLogger({
      level: 'info',
      format: winston.format.json(),
      transports: [new winston.transports.Stream({ stream: new Writable({
        write(chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); },
      }) })],
    });
    manager = await Manager.start({
      host: '127.0.0.1', port: 0, shardCount: 2, replicationFactor: 1, dataDir, metricsPort: null,
      downAfterMs: 6000, tickIntervalMs: 10, now: () => clock, logger,
    });
    const kv = new TestManagerClient(manager.address);
    client = kv;
    await kv.register({ nodeId: 'n1', address: '127.0.0.1:7101', metricsPort: 0 });
    const healthOf = async (): Promise<NodeHealth | undefined> => (await kv.clusterMap()).nodes[0]?.health;
    const waitForHealth = (health: NodeHealth): Promise<boolean> => waitFor(`n1 to become ${health}`, async () => (await healthOf()) === health, 5000, 10);
    expect(await healthOf()).to.equal(NodeHealth.NODE_HEALTH_UP);
    clock += 3500;
    await waitForHealth(NodeHealth.NODE_HEALTH_SUSPECT);
    clock += 3000;
    await waitForHealth(NodeHealth.NODE_HEALTH_DOWN);
    await kv.heartbeat({ nodeId: 'n1' });
    expect(await healthOf()).to.equal(NodeHealth.NODE_HEALTH_UP);
    const transitions = lines.filter((line) => typeof line['message'] === 'string' && line['message'].startsWith('node '))
      .map((line) => [line['message'], line['node'], line['component']]);
    expect(transitions).to.deep.equal([
      ['node registered', 'n1', 'manager'], ['node suspect', 'n1', 'manager'], ['node down', 'n1', 'manager'], ['node up', 'n1', 'manager'],
    ]);
  });

  it('answers an unknown node with reregister=true and rejects a register without an id', async () => {
    const kv = await start();
    const response = await kv.heartbeat({ nodeId: 'stranger' });
    expect(response.reregister).to.equal(true);
    expect(response.commands).to.deep.equal([]);
    let failure: unknown = null;
    await kv.register({ nodeId: '', address: '127.0.0.1:1', metricsPort: 0 }).catch((error: unknown) => { failure = error; });
    expect(String(failure)).to.match(/INVALID_ARGUMENT|node_id/);
  });

  it('asks a node for a full report until it sent one, then takes partial heartbeats (issue 16)', async () => {
    const kv = await start();
    await kv.register({ nodeId: 'n1', address: '127.0.0.1:9101', metricsPort: 0 });
    expect((await kv.heartbeat({ nodeId: 'n1', partial: true })).fullReport, 'a partial report first').to.equal(true);
    expect((await kv.heartbeat({ nodeId: 'n1', partial: false })).fullReport, 'after a full one').to.equal(false);
    expect((await kv.heartbeat({ nodeId: 'n1', partial: true })).fullReport, 'partial ones apply now').to.equal(false);
  });

  it('persists placement: a restarted manager loads it, knows the nodes and keeps the replica ids', async () => {
    const kv = await start();
    for (const [i, nodeId] of ['n1', 'n2', 'n3'].entries()) await kv.register({ nodeId, address: `127.0.0.1:${9101 + i}`, metricsPort: 0 });
    for (const nodeId of ['n1', 'n2', 'n3']) await kv.heartbeat({ nodeId });
    const before = await kv.clusterMap();
    expect(before.shards.every((s) => s.replicas.length === 3)).to.equal(true);
    const saved: unknown = JSON.parse(readFileSync(join(dataDir, 'state.json'), 'utf8'));
    expect(saved).to.include({ bootstrapped: true, nextReplicaId: 19, shardCount: 6 });

    kv.close();
    client = null;
    await manager?.close();
    const again = await start();
    const after = await again.clusterMap();
    expect(after.shards).to.deep.equal(before.shards);
    expect(after.nodes.map((n) => n.nodeId)).to.deep.equal(['n1', 'n2', 'n3']);
    expect((await again.heartbeat({ nodeId: 'n2' })).reregister).to.equal(false);
    expect((await again.heartbeat({ nodeId: 'n9' })).reregister).to.equal(true);
  });

  it('refuses a data dir holding a cluster of another shape', async () => {
    await start();
    await manager?.close();
    manager = null;
    client?.close();
    client = null;
    let failure: unknown = null;
    await Manager.start({ host: '127.0.0.1', port: 0, shardCount: 8, replicationFactor: 3, dataDir, metricsPort: null })
      .then((m) => { manager = m; }, (error: unknown) => { failure = error; });
    expect(failure).to.be.instanceOf(ManagerError);
    expect((failure as ManagerError).code).to.equal('STATE_MISMATCH');
  });
});
