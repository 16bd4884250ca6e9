/**
 * Initial placement: which nodes host each shard's replicas, and which of them
 * campaigns first. Pure, so it is property-tested against a naive checker.
 */

/** The placement of one shard. */
export interface ShardPlacement {
  /** K distinct node ids; the first leader is one of them. */
  nodeIds: string[];
  /** The node told to campaign at once (CreateReplica campaign=true). */
  leaderNodeId: string;
}

/** Greatest common divisor of two positive integers. */
function gcd(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

/**
 * Places `shardCount` shards with `replicationFactor` replicas each on `nodeIds`.
 *
 * Replicas: lay the S·K replica slots around a ring of the N nodes in order, so
 * shard s takes ring positions s·K … s·K+K-1. Consecutive positions are distinct
 * nodes because K ≤ N, and every node gets ⌊S·K/N⌋ or ⌈S·K/N⌉ slots.
 *
 * First leaders: shard s's first slot s·K mod N only visits multiples of
 * g = gcd(K, N), one per shard over N/g shards. Shifting it by
 * o = ⌊s/(N/g)⌋ mod g (< g ≤ K, so still inside the shard's window) makes every N
 * consecutive shards lead on every node exactly once, so each node leads
 * ⌊S/N⌋ or ⌈S/N⌉ shards.
 *
 * @throws RangeError when there are fewer nodes than replicas, or counts are not positive integers.
 */
export function placeInitialReplicas(
  nodeIds: readonly string[],
  shardCount: number,
  replicationFactor: number,
): ShardPlacement[] {
  const nodeCount = nodeIds.length;
  if (!Number.isInteger(shardCount) || shardCount < 1) throw new RangeError(`shard count ${shardCount} must be ≥ 1`);
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new RangeError(`replication factor ${replicationFactor} must be ≥ 1`);
  }
  if (new Set(nodeIds).size !== nodeCount) throw new RangeError('node ids must be distinct');
  if (nodeCount < replicationFactor) {
    throw new RangeError(`${nodeCount} nodes cannot hold ${replicationFactor} replicas of a shard`);
  }
  const divisor = gcd(replicationFactor, nodeCount);
  const period = nodeCount / divisor;
  const nodeAt = (position: number): string => {
    const nodeId = nodeIds[position % nodeCount];
    if (nodeId === undefined) throw new RangeError(`no node at ring position ${position}`);
    return nodeId;
  };
  const placements: ShardPlacement[] = [];
  for (let shardId = 0; shardId < shardCount; shardId += 1) {
    const first = shardId * replicationFactor;
    const shardNodeIds: string[] = [];
    for (let slot = 0; slot < replicationFactor; slot += 1) shardNodeIds.push(nodeAt(first + slot));
    const leaderOffset = Math.floor(shardId / period) % divisor;
    placements.push({ nodeIds: shardNodeIds, leaderNodeId: nodeAt(first + leaderOffset) });
  }
  return placements;
}
