/**
 * Exactly-once across leaders with wrong wall clocks (issue 15), through the real node code
 * on the simulator: `KvRequestExecutor`, replicas stamping proposals, the KV state machine.
 * The checker runs after every event; its reference model fails the run if a retry is
 * applied a second time.
 */
import { expect } from 'chai';
import { loadHasher } from '../../src/common/index.js';
import { ErrorCode, type PutResponse } from '../../src/gen/kvstore/v1/kvstore.js';
import { keyString } from '../../src/node/kv-state-machine.js';
import type { Replica } from '../../src/node/replica.js';
import { RESULT_RETENTION_MS } from '../../src/node/session-table.js';
import { Role } from '../../src/raft/index.js';
import { quietScenario } from './scenario.js';
import { SimCluster } from './sim-cluster.js';

/** The replica of shard 0 on `nodeId`, which must exist. */
function replicaOn(cluster: SimCluster, nodeId: string): Replica {
  const replica = cluster.node(nodeId).host?.replica(0);
  if (replica === undefined) throw new Error(`no replica of shard 0 on ${nodeId}`);
  return replica;
}

/** Hands shard 0's leadership to `nodeId`. */
async function leadFrom(cluster: SimCluster, nodeId: string): Promise<void> {
  await cluster.until(`${nodeId} leading shard 0`, 10_000, () => {
    const target = replicaOn(cluster, nodeId);
    if (target.role === Role.Leader) return true;
    for (const node of cluster.nodes.values()) {
      const replica = node.host?.replica(0);
      if (replica?.role === Role.Leader) node.host?.transferLeader(0, target.replicaId);
    }
    return false;
  });
}

/** One put straight to `nodeId`'s executor, from inside its process, with the session given. */
function putOn(cluster: SimCluster, nodeId: string, key: string, value: string, session: { clientId: string; seq: number }): Promise<PutResponse> {
  const node = cluster.node(nodeId);
  const { executor, process } = node;
  if (executor === undefined || process === undefined) throw new Error(`${nodeId} is not running`);
  return new Promise((resolve) => {
    cluster.scheduler.after(0, process, () => executor.put({ key: Buffer.from(key), value: Buffer.from(value), session, epoch: 0, ttlMs: 0 }, resolve));
  });
}

/** The version of `key` on `nodeId`'s replica of shard 0. */
/** A 3-node, 1-shard cluster led from n1, and client-0's first write (seq 1) of "x" to its key. */
async function firstWriteOnN1(): Promise<{ cluster: SimCluster; key: string; session: { clientId: string; seq: number }; first: PutResponse }> {
  const cluster = new SimCluster(quietScenario({ nodes: 3, replicationFactor: 3, shards: 1 }));
  await cluster.start();
  await leadFrom(cluster, 'n1');
  const key = cluster.keys[0] as string;
  const session = { clientId: 'client-0', seq: 1 };
  const first = await cluster.settle(putOn(cluster, 'n1', key, 'x', session), 5_000, 'the first write');
  expect(first.error).to.equal(undefined);
  return { cluster, key, session, first };
}

function versionOn(cluster: SimCluster, nodeId: string, key: string): number | undefined {
  return replicaOn(cluster, nodeId).machine.get(keyString(Buffer.from(key)))?.version;
}

describe('sessions across leaders with wrong wall clocks (issue 15)', function () {
  this.timeout(60_000);

  before(async () => {
    await loadHasher();
  });

  for (const { aheadMs, before } of [
    { aheadMs: 61_000, before: 'answered "session expired, not applied" although it had applied' },
    { aheadMs: 10 * 60_000 + 1_000, before: 'forgot the session and applied the retry a second time' },
  ]) {
    it(`a retry through a new leader ${aheadMs / 1000} s ahead gets its first result (it ${before})`, async () => {
      const cluster = new SimCluster(quietScenario({ nodes: 3, replicationFactor: 3, shards: 1, wallOffsetsMs: [0, aheadMs, 0] }));
      await cluster.start();
      await leadFrom(cluster, 'n1');
      const key = cluster.keys[0] as string;
      const first = await cluster.settle(cluster.clients.write(0, key, 'x', 1), 5_000, 'the first write');
      expect(first?.status).to.equal('ok');
      const version = versionOn(cluster, 'n1', key);
      // Its answer was lost; meanwhile the leader with the fast clock takes over.
      await leadFrom(cluster, 'n2');
      const retry = await cluster.settle(putOn(cluster, 'n2', key, 'x', { clientId: 'client-0', seq: 1 }), 5_000, 'the retry');
      expect(retry.error, retry.error?.message).to.equal(undefined);
      expect(retry.version).to.equal(version);
      // The client's next write applies as usual.
      const next = await cluster.settle(cluster.clients.write(0, key, 'y', 2), 5_000, 'the next write');
      expect(next?.status).to.equal('ok');
      await cluster.runFor(200);
      for (const nodeId of ['n1', 'n2', 'n3']) expect(versionOn(cluster, nodeId, key), nodeId).to.be.above(version ?? 0);
      cluster.checkHistory();
    });
  }

  it('refuses a retry that is another write with INVALID_ARGUMENT naming what differs, applying nothing', async () => {
    const { cluster, key, session, first } = await firstWriteOnN1();
    const changed = await cluster.settle(putOn(cluster, 'n1', key, 'not x', session), 5_000, 'the changed retry');
    expect(changed.error?.code).to.equal(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(changed.error?.message).to.match(/seq 1 .*another value.*not applied/);
    expect(versionOn(cluster, 'n1', key)).to.equal(first.version);
    const same = await cluster.settle(putOn(cluster, 'n1', key, 'x', session), 5_000, 'the true retry');
    expect(same).to.deep.include({ version: first.version });
    expect(same.error).to.equal(undefined);
  });

  it('answers a retry whose result was forgotten with TIMEOUT, outcome unknown — never "not applied"', async () => {
    const { cluster, key, session, first } = await firstWriteOnN1();
    await cluster.runFor(RESULT_RETENTION_MS + 5_000);
    const late = await cluster.settle(putOn(cluster, 'n1', key, 'x', session), 5_000, 'the late retry');
    expect(late.error?.code).to.equal(ErrorCode.ERROR_CODE_TIMEOUT);
    expect(late.error?.message).to.match(/session expired.*outcome is unknown/);
    expect(versionOn(cluster, 'n1', key)).to.equal(first.version);
  });
});
