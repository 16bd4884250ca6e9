/**
 * The client's shard map keeps what nodes told it after it asked the manager: the manager hears
 * of a new leader only from the nodes' next heartbeat, so a map requested before a NOT_LEADER hint
 * (or before a node failed) must not send the client back to the old leader.
 */
import { expect } from 'chai';
import { NodeHealth, type GetClusterMapResponse } from '../../src/gen/kvstore/v1/manager.js';
import type { ManagerConnection } from '../../src/client/manager-connection.js';
import { ShardMapCache } from '../../src/client/shard-map.js';

/** A manager whose answers the test releases by hand. */
class HeldManager {
  private waiting: ((response: GetClusterMapResponse) => void)[] = [];
  getClusterMap(): Promise<GetClusterMapResponse> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  answer(response: GetClusterMapResponse): void {
    const resolve = this.waiting.shift();
    if (resolve === undefined) throw new Error('no request waiting');
    resolve(response);
  }
}

/** One shard on nodes a, b, c (addresses A, B, C) led by `leader`. */
function mapLedBy(leader: string): GetClusterMapResponse {
  const node = (nodeId: string) => ({
    nodeId, address: nodeId.toUpperCase(), health: NodeHealth.NODE_HEALTH_UP, replicaCount: 1, leaderCount: 0, keyCount: 0,
    opsPerSecond: 0, p99LatencyMs: 0, metricsPort: 0, peersUnreachable: [], draining: false,
  });
  return {
    shardCount: 1,
    replicationFactor: 3,
    nodes: [node('a'), node('b'), node('c')],
    shards: [{
      shardId: 0, epoch: 1, leaderNodeId: leader, term: 1, commitIndex: 0,
      replicas: ['a', 'b', 'c'].map((nodeId, index) => ({ replicaId: index + 1, nodeId, learner: false })),
    }],
  };
}

describe('client/shard map', () => {
  async function cacheLedBy(leader: string): Promise<{ cache: ShardMapCache; manager: HeldManager }> {
    const manager = new HeldManager();
    const cache = new ShardMapCache(manager as unknown as ManagerConnection);
    const loaded = cache.refresh();
    manager.answer(mapLedBy(leader));
    await loaded;
    return { cache, manager };
  }

  it('a map requested before a NOT_LEADER hint keeps the hinted leader', async () => {
    const { cache, manager } = await cacheLedBy('a');
    const refreshed = cache.refresh({ force: true });
    cache.noteLeader(0, 'B'); // a survivor names the new leader
    manager.answer(mapLedBy('a')); // the manager has not heard of it yet
    await refreshed;
    expect(cache.route(0)?.leaderAddress).to.equal('B');
  });

  it('a map requested before a node failed does not name it leader again', async () => {
    const { cache, manager } = await cacheLedBy('a');
    const refreshed = cache.refresh({ force: true });
    cache.forgetLeader(0, 'A');
    manager.answer(mapLedBy('a'));
    await refreshed;
    expect(cache.route(0)?.leaderAddress).to.equal(undefined);
  });

  it('a map requested after the hint wins', async () => {
    const { cache, manager } = await cacheLedBy('a');
    cache.noteLeader(0, 'B');
    const refreshed = cache.refresh({ force: true });
    manager.answer(mapLedBy('c'));
    await refreshed;
    expect(cache.route(0)?.leaderAddress).to.equal('C');
  });

  it('a hinted leader that is no longer a replica is dropped for the map\'s', async () => {
    const { cache, manager } = await cacheLedBy('a');
    const refreshed = cache.refresh({ force: true });
    cache.noteLeader(0, 'D');
    manager.answer(mapLedBy('c'));
    await refreshed;
    expect(cache.route(0)?.leaderAddress).to.equal('C');
  });
});
