/**
 * A node tells the manager about a new shard leader at once (a nudged heartbeat), not at its
 * next periodic heartbeat: with the periodic interval set to 20 s, the manager's map must still
 * show every shard's leader within seconds, and a new leader after the old one's node stops.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSilentLogger } from '../../src/common/index.js';
import { Manager } from '../../src/manager/manager.js';
import { StorageNode } from '../../src/node/storage-node.js';
import { Role } from '../../src/raft/index.js';
import { TestManagerClient } from '../manager/grpc-helpers.js';
import { freePort } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';

const SHARDS = 4;
/** Far longer than the test waits for news, so only a nudged heartbeat can bring it in time. */
const HEARTBEAT_INTERVAL_MS = 20_000;

describe('node: heartbeats on a leader change', function () {
  this.timeout(60_000);
  let dataDir = '';
  let manager: Manager | undefined;
  let client: TestManagerClient | undefined;
  const nodes: StorageNode[] = [];

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'kvstore-nudge-'));
  });

  afterEach(async () => {
    client?.close();
    await Promise.allSettled(nodes.splice(0).map((node) => node.close()));
    await manager?.close();
    manager = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** The node each shard's leader runs on, by the nodes' own Raft state. */
  const actualLeaders = (): (string | undefined)[] => Array.from({ length: SHARDS }, (_, shard) =>
    nodes.find((node) => node.host.replica(shard)?.role === Role.Leader)?.host.nodeId);

  it('reports new leaders to the manager without waiting for the heartbeat interval', async () => {
    manager = await Manager.start({
      host: '127.0.0.1', port: 0, shardCount: SHARDS, replicationFactor: 3, dataDir, metricsPort: null,
      heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS, suspectAfterMs: 120_000, downAfterMs: 240_000, logger: createSilentLogger(),
    });
    const managerAddress = manager.address;
    const managerClient = new TestManagerClient(managerAddress);
    client = managerClient;
    // Placement waits for three nodes that have heartbeated, and a node learns its replicas from a
    // heartbeat's answer. So n1 and n2 are announced by hand first (no answer carries commands yet),
    // then n3 starts and its first heartbeat places the shards, then n1 and n2 start and get theirs.
    const ports = [await freePort(), await freePort()];
    for (const [i, port] of ports.entries()) {
      const nodeId = `n${i + 1}`;
      await managerClient.register({ nodeId, address: `127.0.0.1:${port}`, metricsPort: 0 });
      expect((await managerClient.heartbeat({ nodeId, address: `127.0.0.1:${port}` })).commands).to.deep.equal([]);
    }
    const start = (nodeId: string, port: number): Promise<StorageNode> =>
      StorageNode.start({ nodeId, port, managerAddress, logger: createSilentLogger() });
    nodes.push(await start('n3', 0));
    await waitFor('the initial placement', async () => (await managerClient.clusterMap()).shards.every((shard) => shard.replicas.length === 3), 10_000, 20);
    for (const [i, port] of ports.entries()) nodes.push(await start(`n${i + 1}`, port));
    const mapLeaders = async (): Promise<string[]> => (await managerClient.clusterMap()).shards.map((shard) => shard.leaderNodeId);
    const agree = async (): Promise<boolean> => {
      const actual = actualLeaders();
      if (actual.some((leader) => leader === undefined)) return false;
      return JSON.stringify(await mapLeaders()) === JSON.stringify(actual);
    };
    await waitFor('the manager to show every shard leader', agree, 10_000, 20);

    // Stop the node leading shard 0; another node's replica takes over and reports it at once.
    const oldLeader = actualLeaders()[0];
    const stopped = nodes.findIndex((node) => node.host.nodeId === oldLeader);
    const [node] = nodes.splice(stopped, 1);
    await node?.close();
    await waitFor('a new leader of shard 0', () => {
      const leader = actualLeaders()[0];
      return leader !== undefined && leader !== oldLeader;
    }, 10_000, 20);
    await waitFor('the manager to show the new leader of shard 0', agree, 5_000, 20);
    expect((await mapLeaders())[0]).to.not.equal(oldLeader);
  });
});
