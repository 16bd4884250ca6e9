/**
 * Partial heartbeats (issue 16): a node reports only the replicas whose status changed since
 * the manager's last answer, so an idle node's heartbeat is a few bytes whatever it hosts; and
 * the manager applies such a report only on top of a full one.
 */
import { expect } from 'chai';
import { ClusterState } from '../../src/manager/cluster-state.js';
import { FULL_REPORT_EVERY, HeartbeatReporter } from '../../src/node/heartbeat-report.js';
import type { Replica } from '../../src/node/replica.js';
import { threeVoterReplica } from './support/turn-fixtures.js';

const shardsOf = (report: { replicas: { shardId: number }[] }): number[] => report.replicas.map((status) => status.shardId);

describe('node/heartbeat-report', () => {
  let replicas: Replica[];
  beforeEach(() => {
    replicas = [0, 1, 2].map((shardId) => threeVoterReplica(1, shardId + 1, shardId));
  });

  it('sends every replica first, then only what changed since the last answered heartbeat', () => {
    const reporter = new HeartbeatReporter();
    const first = reporter.take(replicas);
    expect(first.partial).to.equal(false);
    expect(shardsOf(first)).to.deep.equal([0, 1, 2]);
    reporter.answered(false);

    const idle = reporter.take(replicas);
    expect(idle).to.deep.equal({ replicas: [], partial: true, removedShardIds: [] });
    reporter.answered(false);

    (replicas[1] as Replica).rawNode.campaign(); // role and term change
    const changed = reporter.take(replicas);
    expect(changed.partial).to.equal(true);
    expect(shardsOf(changed)).to.deep.equal([1]);
    // Not answered (lost): the next one is taken against the same acknowledged report.
    expect(shardsOf(reporter.take(replicas))).to.deep.equal([1]);
    reporter.answered(false);
    expect(shardsOf(reporter.take(replicas))).to.deep.equal([]);
  });

  it('names the shards no longer hosted, and sends every replica again when the manager asks', () => {
    const reporter = new HeartbeatReporter();
    reporter.take(replicas);
    reporter.answered(false);
    const without = reporter.take(replicas.slice(0, 2));
    expect(without).to.deep.equal({ replicas: [], partial: true, removedShardIds: [2] });
    reporter.answered(true); // the manager restarted: it wants a full report
    const full = reporter.take(replicas.slice(0, 2));
    expect(full.partial).to.equal(false);
    expect(shardsOf(full)).to.deep.equal([0, 1]);
  });

  it(`sends a full report every ${FULL_REPORT_EVERY} heartbeats even when nothing changes`, () => {
    const reporter = new HeartbeatReporter();
    const partial: boolean[] = [];
    for (let i = 0; i < FULL_REPORT_EVERY * 2 + 1; i++) {
      partial.push(reporter.take(replicas).partial);
      reporter.answered(false);
    }
    const fullAt = partial.flatMap((isPartial, i) => (isPartial ? [] : [i]));
    expect(fullAt).to.deep.equal([0, FULL_REPORT_EVERY, FULL_REPORT_EVERY * 2]);
  });
});

describe('manager: partial heartbeats', () => {
  const statusOf = (replica: Replica, keyCount: number): ReturnType<HeartbeatReporter['take']>['replicas'][number] => {
    const reporter = new HeartbeatReporter();
    const status = reporter.take([replica]).replicas[0];
    if (status === undefined) throw new Error('no status');
    return { ...status, keyCount };
  };
  const heartbeat = (partial: boolean, replicas: ReturnType<typeof statusOf>[], removedShardIds: number[] = []) => ({
    nodeId: 'n1', address: 'a:1', replicas, partial, removedShardIds, opsPerSecond: 0, p99LatencyMs: 0, metricsPort: 0, unreachablePeers: [],
  });
  const keyCount = (state: ClusterState): number => state.nodeInfos().find((node) => node.nodeId === 'n1')?.keyCount ?? -1;

  it('ignores a partial report until a full one came, then merges partial ones into it', () => {
    const replicas = [0, 1, 2].map((shardId) => threeVoterReplica(1, shardId + 1, shardId));
    const state = ClusterState.create(3, 3, 0);
    state.register('n1', 'a:1', 0, 0);
    state.heartbeat(heartbeat(true, [statusOf(replicas[0] as Replica, 5)]), 10);
    expect(state.hasFullReport('n1'), 'a partial report first').to.equal(false);
    expect(keyCount(state)).to.equal(0);

    state.heartbeat(heartbeat(false, replicas.map((replica) => statusOf(replica, 1))), 20);
    expect(state.hasFullReport('n1')).to.equal(true);
    expect(keyCount(state)).to.equal(3);
    state.heartbeat(heartbeat(true, [statusOf(replicas[1] as Replica, 10)]), 30);
    expect(keyCount(state), 'shard 1 now holds 10 keys, the others kept').to.equal(12);
    state.heartbeat(heartbeat(true, [], [0]), 40);
    expect(keyCount(state), 'shard 0 no longer hosted').to.equal(11);
  });
});
