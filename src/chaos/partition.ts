/**
 * Plans for the nemesis's `partition` fault: which nodes end up on which side, and which directed
 * links to cut so that no packet crosses. Pure (the choices come from the run's seeded random), so
 * a seed's plans can be checked without a network.
 *
 * - `halves`: the nodes split as evenly as possible into a minority and a majority (2 | 3 of 5);
 *   every minority↔majority link is cut. With K=3 replicas a shard's own majority can sit on either
 *   side, so some groups keep a quorum among the minority of nodes.
 * - `isolate`: one node loses every other node.
 *
 * The manager takes one of two places, drawn per partition:
 * - outside the partition (like the clients): every node keeps heartbeating to it, so an isolated
 *   leader still reports itself to the manager as leader until CheckQuorum makes it step down, and
 *   clients routed there must be turned away (NOT_LEADER or a ReadIndex that never confirms);
 * - with the majority: the minority loses the manager as well, so it turns suspect and, held past
 *   `--down-after`, down, and its replicas are rebuilt on the majority while the partition lasts.
 * Clients are never cut off: they live outside the partition and reach every node.
 */
import type { SeededRandom } from '../common/index.js';

/** The name the manager's end of a link has (nodes are `n1`…). */
export const MANAGER_ENDPOINT = 'manager';

/** The shape of a partition; see the file comment. */
export type PartitionKind = 'halves' | 'isolate';

/** One partition to inject. */
export interface PartitionPlan {
  kind: PartitionKind;
  /** The smaller side; one node for `isolate`. Never empty. */
  minority: string[];
  /** The other nodes. Never empty. */
  majority: string[];
  /** True: the manager sits with the majority, so the minority cannot reach it. False: every node reaches it. */
  managerWithMajority: boolean;
}

/** One direction of a link to cut: every packet `from` sends to `to` is dropped. */
export interface DirectedLink {
  /** A node id. */
  from: string;
  /** A node id, or {@link MANAGER_ENDPOINT}. */
  to: string;
}

/** A `halves` plan: a random minority of ⌊N/2⌋ nodes (at least one) against the rest. */
export function planHalves(nodeIds: readonly string[], random: SeededRandom): PartitionPlan {
  checkNodes(nodeIds);
  const shuffled = random.shuffle(nodeIds);
  const minoritySize = Math.max(1, Math.floor(nodeIds.length / 2));
  return {
    kind: 'halves',
    minority: sortedLike(nodeIds, shuffled.slice(0, minoritySize)),
    majority: sortedLike(nodeIds, shuffled.slice(minoritySize)),
    managerWithMajority: random.nextFloat() < 0.5,
  };
}

/** An `isolate` plan: `target` against every other node. */
export function planIsolation(nodeIds: readonly string[], target: string, random: SeededRandom): PartitionPlan {
  checkNodes(nodeIds);
  if (!nodeIds.includes(target)) throw new Error(`cannot isolate ${target}: not one of ${nodeIds.join(', ')}`);
  return {
    kind: 'isolate',
    minority: [target],
    majority: nodeIds.filter((nodeId) => nodeId !== target),
    managerWithMajority: random.nextFloat() < 0.5,
  };
}

/**
 * The links to cut for `plan`: every minority↔majority pair in both directions (each side drops
 * what it would send to the other, so the cut is symmetric), and, when the manager sits with the
 * majority, minority → manager. The manager's side of that link is not cut: it lives in the same
 * namespace as the clients, which must keep reaching every node, and the manager only answers the
 * connections nodes open — with the node's packets dropped, none gets through either way.
 */
export function linksToCut(plan: PartitionPlan): DirectedLink[] {
  const links: DirectedLink[] = [];
  for (const a of plan.minority) {
    for (const b of plan.majority) links.push({ from: a, to: b }, { from: b, to: a });
    if (plan.managerWithMajority) links.push({ from: a, to: MANAGER_ENDPOINT });
  }
  return links;
}

/** `{n2,n5} | {n1,n3,n4}, manager with the majority` — for the timeline. */
export function describePartition(plan: PartitionPlan): string {
  const sides = `{${plan.minority.join(',')}} | {${plan.majority.join(',')}}`;
  return `${sides}, ${plan.managerWithMajority ? 'manager with the majority' : 'manager reachable from both sides'}`;
}

function checkNodes(nodeIds: readonly string[]): void {
  if (nodeIds.length < 2) throw new Error(`a partition needs at least 2 nodes, got ${nodeIds.length}`);
}

/** `subset` in the order the ids have in `all`, so sides read n1, n2, … */
function sortedLike(all: readonly string[], subset: readonly string[]): string[] {
  return all.filter((nodeId) => subset.includes(nodeId));
}
