/**
 * The pure parts of a chaos run's ending: when the cluster counts as settled, the verdict line, and
 * the rendering of a failing sub-history.
 */
import { expect } from 'chai';
import {
  checkHistory,
  passed,
  renderViolation,
  settleProblems,
  summaryLines,
  Timeline,
  ttlLine,
  verdictLine,
  type ChaosResult,
  type Operation,
} from '../../src/chaos/index.js';
import { NodeHealth, NodeInfo, type GetClusterMapResponse, type ShardInfo } from '../../src/gen/kvstore/v1/manager.js';
import { get, put, putTtl, resetIds, result as stepResult, step, txn, txnUnknown } from './history-builders.js';

function node(nodeId: string, health: NodeHealth): NodeInfo {
  // fromPartial: every other field at its default, whatever fields the map gains later.
  return NodeInfo.fromPartial({ nodeId, health });
}

function shard(shardId: number, leaderNodeId: string, voters: string[], learners: string[] = []): ShardInfo {
  const replicas = [...voters.map((nodeId) => ({ nodeId, learner: false })), ...learners.map((nodeId) => ({ nodeId, learner: true }))];
  return { shardId, epoch: 1, replicas: replicas.map((member, i) => ({ ...member, replicaId: i + 1 })), leaderNodeId, term: 1, commitIndex: 1 };
}

function result(history: Operation[], overrides: Partial<ChaosResult> = {}): ChaosResult {
  return {
    seed: 1,
    history,
    check: checkHistory(history),
    violations: [],
    lostWrites: [],
    unreadKeys: [],
    settleProblems: [],
    faultCounts: { kill: 2 },
    faultsInjected: 2,
    probes: 0,
    notes: [],
    timeline: new Timeline(() => 0),
    ...overrides,
  };
}

describe('chaos report', () => {
  beforeEach(resetIds);

  it('counts a map as settled only with a live leader and K live voters per shard', () => {
    const nodes = [node('n1', NodeHealth.NODE_HEALTH_UP), node('n2', NodeHealth.NODE_HEALTH_UP), node('n3', NodeHealth.NODE_HEALTH_UP), node('n4', NodeHealth.NODE_HEALTH_DOWN)];
    const settled: GetClusterMapResponse = { shardCount: 2, replicationFactor: 3, nodes, shards: [shard(0, 'n1', ['n1', 'n2', 'n3']), shard(1, 'n2', ['n1', 'n2', 'n3'])] };
    expect(settleProblems(settled, 3)).to.deep.equal([]);
    const unsettled: GetClusterMapResponse = {
      ...settled,
      shards: [shard(0, '', ['n1', 'n2', 'n3']), shard(1, 'n4', ['n1', 'n2', 'n4'], ['n3'])],
    };
    const problems = settleProblems(unsettled, 3);
    expect(problems).to.include('shard 0 has no leader');
    expect(problems).to.include('shard 1 is led by n4, not a live voter');
    expect(problems).to.include('shard 1 has 2 live of 3 voters, wants 3');
    expect(settleProblems({ ...settled, shards: settled.shards.slice(0, 1) }, 3)).to.include('the map covers 1 of 2 shards');
  });

  it('prints the verdict line and passes only when every check did', () => {
    const good = result([put(0, [0, 1], 'a'), get(0, [2, 3], 'a', 4)]);
    expect(verdictLine(good)).to.equal('linearizable: yes  ops checked: 2  faults injected: 2  lost writes: 0  recovered: yes');
    expect(passed(good)).to.equal(true);
    expect(passed({ ...good, settleProblems: ['shard 0 has no leader'] })).to.equal(false);
    expect(verdictLine({ ...good, unreadKeys: ['k'] })).to.include('recovered: NO');
    const stale = result([put(0, [0, 1], 'a'), put(1, [2, 3], 'b'), get(2, [4, 5], 'a', 1)]);
    expect(verdictLine(stale)).to.match(/^linearizable: NO {2}ops checked: 3 /);
    expect(passed(stale)).to.equal(false);
  });

  it('renders a failing sub-history with one row per operation in invocation order', () => {
    const operations = [put(0, [0, 1], 'a'), put(1, [2, 3], 'b'), get(2, [4, 50], 'a', 1)];
    const check = checkHistory(operations).keys[0];
    if (check === undefined) throw new Error('no key checked');
    const text = renderViolation({ check, minimized: [...operations].reverse() });
    const rows = text.split('\n').filter((line) => line.startsWith('#'));
    expect(rows).to.have.length(3);
    expect(rows[0]).to.include('c0 put "a" ok');
    expect(rows[2]).to.include('c2 get → "a" v1').and.include('4.0–50.0 ms');
    expect(text).to.include('smallest failing sub-history found: 3 of 3 operations');
  });

  it('counts transactions by outcome in the summary, and only when the run had some', () => {
    const transfer = { compare: [{ key: '{g}a', version: 0 }, { key: '{g}b', version: 0 }], success: [step.put('{g}a', 'a1'), step.put('{g}b', 'b1')], failure: [step.get('{g}a'), step.get('{g}b')] };
    const history = [
      txn(0, [0, 1], transfer, true, [stepResult.put('{g}a', 3), stepResult.put('{g}b', 3)]),
      txn(1, [2, 3], transfer, false, [stepResult.get('{g}a', 'a1', 3), stepResult.get('{g}b', 'b1', 3)]),
      txnUnknown(2, [4, 5], transfer),
      put(0, [6, 7], 'x', 'plain'),
    ];
    const lines = summaryLines(result(history));
    expect(lines[1]).to.equal('operations: 4 recorded (0 get, 1 put, 0 cas, 3 txn); 1 indeterminate writes, 0 failed reads dropped');
    expect(lines[2]).to.equal('transactions: 3 (1 committed, 1 compares failed, 1 unknown) on 1 key group checked as one object each');
    const plain = summaryLines(result([put(0, [0, 1], 'a'), get(0, [2, 3], 'a', 4)]));
    expect(plain[1]).to.equal('operations: 2 recorded (1 get, 1 put, 0 cas); 0 indeterminate writes, 0 failed reads dropped');
    expect(plain.some((line) => line.startsWith('transactions:'))).to.equal(false);
  });

  it('counts TTL puts and the reads that found a key expired, and only when the run put some', () => {
    const history = [
      putTtl(0, [0, 10], 'v', 500, 'k'),
      get(1, [20, 30], 'v', 3, 'k'),
      get(1, [1000, 1010], null, 0, 'k'),
      get(2, [1020, 1030], null, 0, 'k'),
      txn(0, [1100, 1110], { success: [step.put('{g}a', 'a1', 300), step.put('{g}b', 'b1')] }, true, [stepResult.put('{g}a', 9), stepResult.put('{g}b', 9)]),
    ];
    const lines = summaryLines(result(history));
    expect(lines).to.include('ttl: 2 puts with a TTL (1 in transactions); 2 reads found a key expired (1 expiration)');
    expect(ttlLine(result(history.slice(0, 2)))).to.equal('ttl: 1 put with a TTL (0 in transactions); 0 reads found a key expired (0 expirations)');
    expect(summaryLines(result([put(0, [0, 1], 'a')])).some((line) => line.startsWith('ttl:'))).to.equal(false);
  });
});
