/**
 * Draining a node (`kvstore node drain ID`): every replica it holds is moved to another node —
 * new replica as a learner, caught up, promoted, leadership moved off, the drained one removed,
 * the same steps as any move (`move-task.ts`) — and it gets no new replica (`canHost`) or
 * leadership (`pickTransferTarget`, leader balancing) meanwhile. The manager accepts a drain only
 * while at least K other live nodes remain (`drainRefusal`), so every shard keeps K live voters.
 */
import { startMove } from './move-task.js';
import { leastLoadedTarget } from './repair.js';
import { votersOf, type SchedulerContext } from './scheduler-context.js';

/**
 * Starts moves off drained nodes (at most `maxRebalanceMoves` of them in flight), one per shard,
 * for shards with a known leader, no move running and K live voters (a shard short of replicas
 * is repaired first). Re-replication comes first: none start while one runs.
 */
export function drainNodes(context: SchedulerContext): void {
  const tasks = [...context.tasks.values()];
  if (tasks.some((task) => task.reason === 'replace-down' || task.reason === 'add-missing')) return;
  let inFlight = tasks.filter((task) => task.reason === 'drain').length;
  for (const shard of context.shards) {
    if (inFlight >= context.config.maxRebalanceMoves) return;
    if (context.tasks.has(shard.shardId) || context.leaderOf(shard) === null) continue;
    const source = shard.members.find((member) => context.isDraining(member.nodeId));
    if (source === undefined) continue;
    const voters = votersOf(shard);
    if (voters.length !== context.config.replicationFactor || !voters.every((member) => context.isLive(member.nodeId))) continue;
    const targetNodeId = leastLoadedTarget(context, shard);
    if (targetNodeId === null) continue;
    startMove(context, shard, 'drain', { replicaId: source.replicaId, nodeId: source.nodeId }, targetNodeId);
    inFlight += 1;
  }
}

/**
 * Why draining `nodeId` must be refused, or undefined when it may start: fewer than K live
 * nodes, not drained, would remain to hold every shard's K replicas.
 */
export function drainRefusal(nodeId: string, replicationFactor: number, nodes: readonly { nodeId: string; live: boolean; draining: boolean }[]): string | undefined {
  const remaining = nodes.filter((node) => node.nodeId !== nodeId && node.live && !node.draining).map((node) => node.nodeId);
  if (remaining.length >= replicationFactor) return undefined;
  const which = remaining.length === 0 ? 'none' : remaining.join(', ');
  return `draining ${nodeId} would leave shards under ${replicationFactor} live replicas: ` +
    `${remaining.length} other live node${remaining.length === 1 ? '' : 's'} not draining (${which}), ${replicationFactor} needed; add a node first`;
}
