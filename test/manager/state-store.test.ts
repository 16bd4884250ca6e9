import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagerError, StateStore, type PersistedState } from '../../src/manager/index.js';
import { FakeCluster } from './fake-cluster.js';

describe('manager/state-store', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'kvstore-state-')); });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  it('round-trips a mid-move state through state.json, leaving no temp file', () => {
    const cluster = new FakeCluster({ shardCount: 6, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3', 'n4'], downAfterMs: 2000 });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    cluster.killNode('n1');
    cluster.runUntil(() => cluster.state.movesInFlight > 0, 40);
    const store = new StateStore(join(dir, 'nested', 'manager'));
    expect(store.load()).to.equal(null);
    const state = cluster.state.toPersisted();
    expect(state.tasks.length).to.be.greaterThan(0);
    store.save(state);
    expect(store.load()).to.deep.equal(state);
    expect(existsSync(`${store.path}.tmp`)).to.equal(false);
  });

  it('rejects a corrupt or foreign file with STATE_CORRUPT', () => {
    const store = new StateStore(dir);
    for (const text of ['{not json', '{"version":99}', JSON.stringify({ version: 1, shardCount: 1, replicationFactor: 1, nextReplicaId: 1, bootstrapped: false, nodes: [], shards: [], tasks: [] })]) {
      writeFileSync(store.path, text);
      let failure: unknown = null;
      try { store.load(); } catch (error) { failure = error; }
      expect(failure, text).to.be.instanceOf(ManagerError);
      expect((failure as ManagerError).code).to.equal('STATE_CORRUPT');
    }
  });

  it('a manager restarted mid-move resumes the same move (same new replica id) and finishes it', () => {
    const cluster = new FakeCluster({ shardCount: 6, replicationFactor: 3, nodeIds: ['n1', 'n2', 'n3', 'n4'], downAfterMs: 2000 });
    cluster.runUntil(() => cluster.healthy() && cluster.state.movesInFlight === 0, 40);
    cluster.killNode('n2');
    cluster.runUntil(() => cluster.received.some((r) => r.command.command?.$case === 'addReplica'), 60);
    const before: PersistedState = cluster.state.toPersisted();
    const targets = new Map(before.tasks.map((task) => [task.shardId, task.to.replicaId]));
    cluster.restartManager();
    expect(cluster.state.toPersisted()).to.deep.equal(before);
    cluster.runUntil(() => cluster.healthy(), 200);
    for (const [shardId, replicaId] of targets) {
      expect(cluster.group(shardId)?.members.map((m) => m.replicaId), `shard ${shardId}`).to.include(replicaId);
    }
  });
});
