/**
 * Keeps each shard at K live voters: bootstrap creation, re-replication away from
 * down nodes, clean-up of stray learners, excess voters and orphaned replicas.
 */
import { createReplica, destroyReplica, removeReplica, transferLeader } from './commands.js';
import { advanceMove, canRemoveSafely, pickTransferTarget, startMove } from './move-task.js';
import { hasMember, votersOf, type SchedulerContext } from './scheduler-context.js';
import type { ShardRecord } from './types.js';

/**
 * Re-sends bootstrap CreateReplica (with the initial members) to any placed replica
 * whose node does not report hosting it, while the shard has never had a leader.
 * Once a leader has reported, a missing replica is replaced instead: bootstrapping
 * it again could let an empty replica vote.
 */
export function createBootstrapReplicas(context: SchedulerContext): void {
  for (const shard of context.shards) {
    if (shard.term !== 0 || shard.leaderNodeId !== null) continue;
    for (const member of shard.members) {
      const node = context.nodes.get(member.nodeId);
      if (node === undefined || !context.isLive(member.nodeId)) continue;
      if (node.replicas.get(shard.shardId)?.replicaId === member.replicaId) continue;
      const campaign = member.nodeId === shard.firstLeaderNodeId;
      const keyed = createReplica(shard.shardId, member.replicaId, shard.members.map((m) => ({ ...m })), campaign);
      if (context.issue(member.nodeId, keyed.key, keyed.command)) {
        context.event('debug', 'bootstrap: create replica', shard.shardId, {
          node: member.nodeId, replicaId: member.replicaId, campaign,
        });
      }
    }
  }
}

/** Advances every running move; finished and abandoned ones are dropped. */
export function advanceMoves(context: SchedulerContext): void {
  for (const shard of context.shards) {
    const task = context.tasks.get(shard.shardId);
    if (task === undefined) continue;
    if (advanceMove(context, shard, task) !== 'running') context.tasks.delete(shard.shardId);
  }
}

/** Number of running moves that restore replication (not rebalancing). */
export function replaceMovesInFlight(context: SchedulerContext): number {
  let count = 0;
  for (const task of context.tasks.values()) if (task.reason !== 'rebalance') count += 1;
  return count;
}

/**
 * For each shard with a known leader and no move: remove a stray learner, else trim
 * voters beyond K, else start a move replacing a voter on a down node (or adding a
 * missing one) on the least loaded live node without a replica of the shard.
 */
export function repairShards(context: SchedulerContext): void {
  const factor = context.config.replicationFactor;
  let replaceMoves = replaceMovesInFlight(context);
  for (const shard of context.shards) {
    if (context.tasks.has(shard.shardId)) continue;
    const leader = context.leaderOf(shard);
    if (leader === null) continue;
    const learner = shard.members.find((member) => member.learner);
    if (learner !== undefined) {
      const keyed = removeReplica(shard.shardId, learner.replicaId);
      if (context.issue(leader.nodeId, keyed.key, keyed.command)) {
        context.event('info', 'remove stray learner', shard.shardId, { node: learner.nodeId, replicaId: learner.replicaId });
      }
      continue;
    }
    const voters = votersOf(shard);
    if (voters.length > factor) {
      trimExcessVoter(context, shard, leader.status.replicaId, leader.nodeId);
      continue;
    }
    const downVoter = voters.find((member) => context.isDown(member.nodeId));
    if (downVoter === undefined && voters.length === factor) continue;
    if (replaceMoves >= context.config.maxReplaceMoves) continue;
    const targetNodeId = leastLoadedTarget(context, shard);
    if (targetNodeId === null) continue;
    const from = downVoter === undefined ? null : { replicaId: downVoter.replicaId, nodeId: downVoter.nodeId };
    startMove(context, shard, downVoter === undefined ? 'add-missing' : 'replace-down', from, targetNodeId);
    replaceMoves += 1;
  }
}

/**
 * The live node with the fewest replicas (counting running moves) that neither holds
 * nor reports a replica of `shard`; ties go to the lowest node id.
 */
export function leastLoadedTarget(context: SchedulerContext, shard: ShardRecord): string | null {
  const counts = context.projectedReplicaCounts();
  let best: { nodeId: string; count: number } | null = null;
  for (const node of [...context.nodes.values()].sort((a, b) => compareIds(a.nodeId, b.nodeId))) {
    if (!context.isResponsive(node.nodeId) || !canHost(context, shard, node.nodeId)) continue;
    const count = counts.get(node.nodeId) ?? 0;
    if (best === null || count < best.count) best = { nodeId: node.nodeId, count };
  }
  return best?.nodeId ?? null;
}

/** True when `nodeId` may receive a new replica of `shard`: not drained, no member there, nothing reported there. */
export function canHost(context: SchedulerContext, shard: ShardRecord, nodeId: string): boolean {
  if (context.isDraining(nodeId)) return false;
  if (shard.members.some((member) => member.nodeId === nodeId)) return false;
  return !context.nodes.get(nodeId)?.replicas.has(shard.shardId);
}

function trimExcessVoter(context: SchedulerContext, shard: ShardRecord, leaderReplicaId: number, leaderNodeId: string): void {
  const counts = context.projectedReplicaCounts();
  const rank = (nodeId: string): number => {
    if (context.isDown(nodeId)) return 2;
    if (!context.isLive(nodeId)) return 1;
    return 0;
  };
  const victim = [...votersOf(shard)].sort((a, b) =>
    rank(b.nodeId) - rank(a.nodeId)
    || (counts.get(b.nodeId) ?? 0) - (counts.get(a.nodeId) ?? 0)
    || compareIds(a.nodeId, b.nodeId))[0];
  if (victim === undefined) return;
  const leader = context.leaderOf(shard);
  if (leader === null) return;
  if (victim.replicaId === leaderReplicaId) {
    const successor = pickTransferTarget(context, shard, leader, victim.replicaId);
    if (successor === null) return;
    const keyed = transferLeader(shard.shardId, successor);
    context.issue(leaderNodeId, keyed.key, keyed.command);
    return;
  }
  if (!canRemoveSafely(context, shard, victim.replicaId)) return;
  const keyed = removeReplica(shard.shardId, victim.replicaId);
  if (context.issue(leaderNodeId, keyed.key, keyed.command)) {
    context.event('info', 'remove excess voter', shard.shardId, { node: victim.nodeId, replicaId: victim.replicaId });
  }
}

/**
 * DestroyReplica for every replica a live node reports that the map says is not a
 * member (a node back after its replicas were replaced, a removed move source, an
 * abandoned move target). Only when the shard's leader is known, the replica id was
 * allocated by this manager, it is no move's target, and its epoch is not newer
 * than the map's (a newer one would mean the map is behind, not the replica).
 */
export function destroyOrphans(context: SchedulerContext): void {
  const shardsById = new Map(context.shards.map((shard) => [shard.shardId, shard]));
  for (const node of context.nodes.values()) {
    if (!context.isLive(node.nodeId)) continue;
    for (const status of node.replicas.values()) {
      const shard = shardsById.get(status.shardId);
      if (shard === undefined || hasMember(shard, status.replicaId)) continue;
      if (context.tasks.get(shard.shardId)?.to.replicaId === status.replicaId) continue;
      if (status.replicaId >= context.nextReplicaId || status.epoch > shard.epoch) continue;
      if (context.leaderOf(shard) === null) continue;
      const keyed = destroyReplica(shard.shardId, status.replicaId);
      if (context.issue(node.nodeId, keyed.key, keyed.command)) {
        context.event('info', 'destroy replica', shard.shardId, { node: node.nodeId, replicaId: status.replicaId });
      }
    }
  }
}

/** Orders node ids naturally (n2 before n10). */
export function compareIds(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

