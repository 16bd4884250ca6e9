import { expect } from 'chai';
import fc from 'fast-check';
import { FakeCluster } from './fake-cluster.js';
import { testSeed, withSeed } from './seed.js';

type Action = { kind: 'kill' } | { kind: 'join' } | { kind: 'revive' };

describe('manager/scheduler (randomised)', () => {
  it('after any sequence of node deaths, returns and joins: K live voters per shard, balanced (property)', function () {
    this.timeout(120_000);
    const action: fc.Arbitrary<Action> = fc.constantFrom<Action>({ kind: 'kill' }, { kind: 'join' }, { kind: 'revive' });
    const input = fc.record({
      nodeCount: fc.integer({ min: 3, max: 5 }),
      factor: fc.constantFrom(1, 3),
      shardCount: fc.integer({ min: 1, max: 12 }),
      actions: fc.array(action, { maxLength: 4 }),
    });
    withSeed(testSeed(), (seed) => {
      fc.assert(fc.property(input, ({ nodeCount, factor, shardCount, actions }) => {
        const nodeIds = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
        const cluster = new FakeCluster({ shardCount, replicationFactor: factor, nodeIds, downAfterMs: 2000 });
        const live = new Set(nodeIds);
        const dead: string[] = [];
        let next = nodeCount + 1;
        const settle = (): void => {
          cluster.runUntil(() => {
            if (!cluster.healthy() || cluster.state.movesInFlight > 0) return false;
            const counts = [...cluster.replicaCounts().values()];
            return Math.max(...counts) - Math.min(...counts) <= 1;
          }, 600);
        };
        settle();
        for (const step of actions) {
          if (step.kind === 'kill' && live.size > factor && factor > 1) {
            const victim = [...live][0];
            if (victim === undefined) continue;
            live.delete(victim);
            dead.push(victim);
            cluster.killNode(victim);
          } else if (step.kind === 'revive' && dead.length > 0) {
            const back = dead.shift();
            if (back === undefined) continue;
            live.add(back);
            cluster.addNode(back);
          } else if (step.kind === 'join') {
            const nodeId = `n${next++}`;
            live.add(nodeId);
            cluster.addNode(nodeId);
          }
          settle();
        }
        const replicas = [...cluster.replicaCounts().values()];
        expect(Math.max(...replicas) - Math.min(...replicas)).to.be.at.most(1);
        const leaders = [...cluster.leaderCounts().values()];
        expect(Math.max(...leaders) - Math.min(...leaders)).to.be.at.most(3);
      }), { seed, numRuns: 40 });
    });
  });
});
