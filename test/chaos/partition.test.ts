/**
 * The partition fault's plans (issue 7), without a network: for many seeds, both sides are non-empty
 * and together are every node exactly once, every link across the cut is cut in both directions and
 * no link within a side is, and only the minority loses the manager, and only when it sits with the
 * majority. The same seed gives the same plans.
 */
import { expect } from 'chai';
import {
  describePartition,
  linksToCut,
  MANAGER_ENDPOINT,
  planHalves,
  planIsolation,
  type PartitionPlan,
} from '../../src/chaos/index.js';
import { SeededRandom } from '../../src/common/index.js';

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];
const SEEDS = 300;

/** Checks the sides and the links of one plan over `nodes`. */
function expectValidPlan(plan: PartitionPlan, nodes: readonly string[]): void {
  expect(plan.minority, 'minority').to.not.be.empty;
  expect(plan.majority, 'majority').to.not.be.empty;
  expect(plan.minority.length).to.be.at.most(plan.majority.length);
  expect([...plan.minority, ...plan.majority].sort()).to.deep.equal([...nodes].sort());

  const cut = new Set(linksToCut(plan).map((link) => `${link.from}>${link.to}`));
  const side = (nodeId: string): 'minority' | 'majority' => (plan.minority.includes(nodeId) ? 'minority' : 'majority');
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      expect(cut.has(`${a}>${b}`), `${a}>${b} cut`).to.equal(side(a) !== side(b));
    }
    expect(cut.has(`${a}>${MANAGER_ENDPOINT}`), `${a}>manager cut`).to.equal(plan.managerWithMajority && side(a) === 'minority');
  }
  expect(cut.size, 'no link listed twice').to.equal(linksToCut(plan).length);
}

describe('chaos: partition plans', () => {
  it('halves split 5 nodes 2 | 3 and cut every cross link both ways', () => {
    const managerPlaces = new Set<boolean>();
    for (let seed = 0; seed < SEEDS; seed++) {
      const plan = planHalves(NODES, new SeededRandom(seed));
      expect(plan.kind).to.equal('halves');
      expect(plan.minority, `seed ${seed}`).to.have.length(2);
      expectValidPlan(plan, NODES);
      managerPlaces.add(plan.managerWithMajority);
    }
    expect([...managerPlaces].sort(), 'both manager placements occur').to.deep.equal([false, true]);
  });

  it('halves of 2 or 3 nodes isolate one', () => {
    for (const nodes of [['n1', 'n2'], ['n1', 'n2', 'n3']]) {
      for (let seed = 0; seed < 50; seed++) {
        const plan = planHalves(nodes, new SeededRandom(seed));
        expect(plan.minority).to.have.length(1);
        expectValidPlan(plan, nodes);
      }
    }
  });

  it('isolation cuts one node from every other, both ways', () => {
    for (let seed = 0; seed < SEEDS; seed++) {
      const target = NODES[seed % NODES.length] ?? 'n1';
      const plan = planIsolation(NODES, target, new SeededRandom(seed));
      expect(plan.minority).to.deep.equal([target]);
      expectValidPlan(plan, NODES);
    }
  });

  it('replays from the seed and names both sides', () => {
    const first = planHalves(NODES, new SeededRandom(42));
    expect(planHalves(NODES, new SeededRandom(42))).to.deep.equal(first);
    const text = describePartition(first);
    expect(text).to.include(`{${first.minority.join(',')}} | {${first.majority.join(',')}}`);
  });

  it('refuses a target that is not a node, and a cluster of one', () => {
    expect(() => planIsolation(NODES, 'n9', new SeededRandom(1))).to.throw(/cannot isolate n9/);
    expect(() => planHalves(['n1'], new SeededRandom(1))).to.throw(/at least 2 nodes/);
  });
});
