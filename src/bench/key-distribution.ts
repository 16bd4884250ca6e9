/**
 * Keys per node, from the shard map: each key hashes to its shard (`xxh64 mod S`, the protocol's
 * function), and counts once on every node that holds a voting replica of that shard. So with K
 * replicas the counts add up to K × keys, and a node's count is the number of keys whose data it
 * stores. Learners (replicas still catching up) are not counted.
 */
import { loadHasher, shardForKey } from '../common/index.js';
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';

/** Keys per node, plus how far the spread is from even. */
export interface KeyDistribution {
  /** node id → number of keys it stores a replica of (every node of the map appears, 0 if none). */
  keysPerNode: Record<string, number>;
  /** Mean of the per-node counts. */
  meanKeysPerNode: number;
  /** Largest |count − mean| / mean over the nodes, in percent: the ±10% target is about this. */
  maxDeviationPercent: number;
}

/** Counts every key of `keys` on the nodes holding its shard, as described above. */
export async function keyDistribution(keys: readonly string[], map: GetClusterMapResponse): Promise<KeyDistribution> {
  await loadHasher();
  const encoder = new TextEncoder();
  const shardKeys = new Map<number, number>();
  for (const key of keys) {
    const shard = shardForKey(encoder.encode(key), map.shardCount);
    shardKeys.set(shard, (shardKeys.get(shard) ?? 0) + 1);
  }
  const keysPerNode: Record<string, number> = {};
  for (const node of [...map.nodes].sort((a, b) => compareNodeIds(a.nodeId, b.nodeId))) keysPerNode[node.nodeId] = 0;
  for (const shard of map.shards) {
    const count = shardKeys.get(shard.shardId) ?? 0;
    for (const replica of shard.replicas) {
      if (replica.learner) continue;
      keysPerNode[replica.nodeId] = (keysPerNode[replica.nodeId] ?? 0) + count;
    }
  }
  return { keysPerNode, ...spread(Object.values(keysPerNode)) };
}

/** Mean and the largest deviation from it in percent (0 for no nodes). */
export function spread(counts: readonly number[]): { meanKeysPerNode: number; maxDeviationPercent: number } {
  if (counts.length === 0) return { meanKeysPerNode: 0, maxDeviationPercent: 0 };
  const mean = counts.reduce((sum, count) => sum + count, 0) / counts.length;
  const worst = mean === 0 ? 0 : Math.max(...counts.map((count) => Math.abs(count - mean) / mean));
  return { meanKeysPerNode: Math.round(mean * 10) / 10, maxDeviationPercent: Math.round(worst * 1000) / 10 };
}

/** n2 before n10: compares the numeric suffix when both ids are a prefix plus a number. */
export function compareNodeIds(a: string, b: string): number {
  const matchA = /^(.*?)(\d+)$/.exec(a);
  const matchB = /^(.*?)(\d+)$/.exec(b);
  if (matchA !== null && matchB !== null && matchA[1] === matchB[1]) return Number(matchA[2]) - Number(matchB[2]);
  return a < b ? -1 : a > b ? 1 : 0;
}
