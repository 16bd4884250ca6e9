/**
 * Small helpers shared by the integration tests.
 */
import { loadHasher, shardForKey } from '../../src/common/hash.js';
import type { ClusterStatusJson } from '../../src/cli/status-util.js';

/** One key per shard (`prefix-<n>`), found by hashing. */
export async function keysPerShard(prefix: string, shardCount: number): Promise<string[]> {
  await loadHasher();
  const keys: (string | undefined)[] = new Array<string | undefined>(shardCount).fill(undefined);
  let found = 0;
  for (let i = 0; found < shardCount; i++) {
    const key = `${prefix}-${i}`;
    const shard = shardForKey(new TextEncoder().encode(key), shardCount);
    if (keys[shard] === undefined) {
      keys[shard] = key;
      found++;
    }
  }
  return keys.map((key) => key ?? '');
}

/** Replicas and leaders per node id (voters only). */
export function loadPerNode(status: ClusterStatusJson): { replicas: Map<string, number>; leaders: Map<string, number> } {
  const replicas = new Map<string, number>();
  const leaders = new Map<string, number>();
  for (const node of status.nodes) {
    if (node.health === 'down') continue;
    replicas.set(node.id, 0);
    leaders.set(node.id, 0);
  }
  for (const shard of status.shards) {
    for (const id of shard.replicas) replicas.set(id, (replicas.get(id) ?? 0) + 1);
    if (shard.leader !== null) leaders.set(shard.leader, (leaders.get(shard.leader) ?? 0) + 1);
  }
  return { replicas, leaders };
}

/** True when every shard has K voters on distinct `up` nodes (none on `excluded`), no learners, and a leader. */
export function fullyReplicated(status: ClusterStatusJson, excluded: string[] = []): boolean {
  const up = new Set(status.nodes.filter((node) => node.health === 'up').map((node) => node.id));
  return status.shards.every(
    (shard) =>
      shard.leader !== null &&
      shard.learners.length === 0 &&
      shard.replicas.length === status.replicationFactor &&
      new Set(shard.replicas).size === shard.replicas.length &&
      shard.replicas.every((id) => up.has(id) && !excluded.includes(id)),
  );
}

/** True when replicas per node are within ±1 of S·K/N and leaders within ±`leaderSlack` of S/N over live nodes. */
export function balanced(status: ClusterStatusJson, leaderSlack: number): boolean {
  const { replicas, leaders } = loadPerNode(status);
  const nodes = replicas.size;
  const replicaTarget = (status.shardCount * status.replicationFactor) / nodes;
  const leaderTarget = status.shardCount / nodes;
  return (
    [...replicas.values()].every((count) => Math.abs(count - replicaTarget) <= 1) &&
    [...leaders.values()].every((count) => Math.abs(count - leaderTarget) <= leaderSlack)
  );
}

/** Runs `worker(i)` for i in [0, count) with at most `concurrency` at once. */
export async function pool(count: number, concurrency: number, worker: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await worker(next++);
    }),
  );
}
