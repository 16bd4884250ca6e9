import { expect } from 'chai';
import fc from 'fast-check';
import { placeInitialReplicas, type ShardPlacement } from '../../src/manager/index.js';
import { testSeed, withSeed } from './seed.js';

/** Naive reference: counts by brute force and lists every broken rule. */
function violations(nodeIds: string[], shardCount: number, factor: number, placements: ShardPlacement[]): string[] {
  const problems: string[] = [];
  if (placements.length !== shardCount) problems.push(`${placements.length} placements for ${shardCount} shards`);
  const replicas = new Map(nodeIds.map((id) => [id, 0]));
  const leaders = new Map(nodeIds.map((id) => [id, 0]));
  placements.forEach((placement, shardId) => {
    if (placement.nodeIds.length !== factor) problems.push(`shard ${shardId} has ${placement.nodeIds.length} replicas`);
    for (let i = 0; i < placement.nodeIds.length; i += 1) {
      for (let j = i + 1; j < placement.nodeIds.length; j += 1) {
        if (placement.nodeIds[i] === placement.nodeIds[j]) problems.push(`shard ${shardId} has two replicas on one node`);
      }
    }
    for (const nodeId of placement.nodeIds) {
      const count = replicas.get(nodeId);
      if (count === undefined) problems.push(`shard ${shardId} on unknown node ${nodeId}`);
      else replicas.set(nodeId, count + 1);
    }
    if (!placement.nodeIds.includes(placement.leaderNodeId)) problems.push(`shard ${shardId} leader is not a replica`);
    leaders.set(placement.leaderNodeId, (leaders.get(placement.leaderNodeId) ?? 0) + 1);
  });
  const n = nodeIds.length;
  for (const [nodeId, count] of replicas) {
    if (Math.abs(count - (shardCount * factor) / n) > 1) problems.push(`${nodeId} holds ${count} replicas`);
  }
  for (const [nodeId, count] of leaders) {
    if (Math.abs(count - shardCount / n) > 1) problems.push(`${nodeId} leads ${count} shards`);
  }
  return problems;
}

describe('manager/placement', () => {
  it('K distinct nodes per shard; replicas within ±1 of S·K/N; first leaders within ±1 of S/N (property)', () => {
    const input = fc.integer({ min: 1, max: 24 }).chain((nodeCount) => fc.record({
      nodeCount: fc.constant(nodeCount),
      factor: fc.integer({ min: 1, max: nodeCount }),
      shardCount: fc.integer({ min: 1, max: 600 }),
    }));
    withSeed(testSeed(), (seed) => {
      fc.assert(fc.property(input, ({ nodeCount, factor, shardCount }) => {
        const nodeIds = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
        const problems = violations(nodeIds, shardCount, factor, placeInitialReplicas(nodeIds, shardCount, factor));
        expect(problems.slice(0, 3), `N=${nodeCount} K=${factor} S=${shardCount}`).to.deep.equal([]);
      }), { seed, numRuns: 300 });
    });
  });

  it('covers the awkward gcd cases exactly', () => {
    for (const [nodeCount, factor, shardCount] of [[6, 3, 64], [4, 2, 7], [9, 3, 4096], [7, 7, 5], [2, 2, 1]] as const) {
      const nodeIds = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
      expect(violations(nodeIds, shardCount, factor, placeInitialReplicas(nodeIds, shardCount, factor))).to.deep.equal([]);
    }
  });

  it('refuses fewer nodes than replicas', () => {
    expect(() => placeInitialReplicas(['n1', 'n2'], 4, 3)).to.throw(RangeError, /2 nodes cannot hold 3 replicas/);
  });
});
