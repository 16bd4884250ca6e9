/**
 * Rebalancing: move replicas until every live node holds ⌊S·K/N⌋ or ⌈S·K/N⌉ of
 * them, and transfer leadership until leader counts are even too.
 */
import { ReplicaRole } from '../gen/kvstore/v1/manager.js';
import { transferLeader } from './commands.js';
import { startMove } from './move-task.js';
import { canHost, compareIds } from './repair.js';
import { quorumOf, votersOf, type SchedulerContext } from './scheduler-context.js';
import type { ShardRecord } from './types.js';

/** A shard that may be rebalanced: known leader, no move, exactly K voters all live, no learners. */
function isSettled(context: SchedulerContext, shard: ShardRecord): boolean {
  if (context.tasks.has(shard.shardId) || context.leaderOf(shard) === null) return false;
  if (shard.members.some((member) => member.learner)) return false;
  const voters = votersOf(shard);
  return voters.length === context.config.replicationFactor && voters.every((member) => context.isLive(member.nodeId));
}

/** Live nodes in id order, but not drained ones: balancing neither fills them nor counts them. */
function liveNodeIds(context: SchedulerContext): string[] {
  return [...context.nodes.keys()].filter((nodeId) => context.isLive(nodeId) && !context.isDraining(nodeId)).sort(compareIds);
}

/**
 * Starts rebalancing moves (at most `maxRebalanceMoves` in flight) from the fullest
 * live node to the emptiest while they differ by two or more. Waits while any
 * re-replication move runs: restoring K live replicas comes first. Prefers moving a
 * replica that is not the leader, so no leadership transfer is needed.
 */
export function rebalanceReplicas(context: SchedulerContext): void {
  const tasks = [...context.tasks.values()];
  if (tasks.some((task) => task.reason !== 'rebalance')) return;
  let inFlight = tasks.length;
  const nodeIds = liveNodeIds(context);
  if (nodeIds.length < 2) return;
  const counts = context.projectedReplicaCounts();
  const countOf = (nodeId: string): number => counts.get(nodeId) ?? 0;
  while (inFlight < context.config.maxRebalanceMoves) {
    const move = chooseMove(context, nodeIds, countOf);
    if (move === null) return;
    startMove(context, move.shard, 'rebalance', { replicaId: move.fromReplicaId, nodeId: move.fromNodeId }, move.toNodeId);
    counts.set(move.fromNodeId, countOf(move.fromNodeId) - 1);
    counts.set(move.toNodeId, countOf(move.toNodeId) + 1);
    inFlight += 1;
  }
}

interface ChosenMove {
  shard: ShardRecord;
  fromNodeId: string;
  fromReplicaId: number;
  toNodeId: string;
}

function chooseMove(context: SchedulerContext, nodeIds: string[], countOf: (nodeId: string) => number): ChosenMove | null {
  const fullestFirst = [...nodeIds].sort((a, b) => countOf(b) - countOf(a) || compareIds(a, b));
  const emptiestFirst = [...fullestFirst].reverse();
  for (const fromNodeId of fullestFirst) {
    for (const toNodeId of emptiestFirst) {
      if (countOf(fromNodeId) - countOf(toNodeId) < 2) break;
      if (!context.isResponsive(toNodeId)) continue;
      let fallback: ChosenMove | null = null;
      for (const shard of context.shards) {
        const source = shard.members.find((member) => member.nodeId === fromNodeId);
        if (source === undefined || !isSettled(context, shard) || !canHost(context, shard, toNodeId)) continue;
        const move = { shard, fromNodeId, fromReplicaId: source.replicaId, toNodeId };
        if (shard.leaderNodeId !== fromNodeId) return move;
        fallback ??= move;
      }
      if (fallback !== null) return fallback;
    }
  }
  return null;
}

/**
 * True while some shard has no known leader but a live quorum of voters, so it
 * should get one soon (bootstrap, failover). Leader counts are incomplete then, and
 * balancing on them would move leadership twice.
 */
function awaitingElections(context: SchedulerContext): boolean {
  return context.shards.some((shard) => {
    if (shard.members.length === 0 || context.leaderOf(shard) !== null) return false;
    const voters = votersOf(shard);
    return voters.filter((member) => context.isLive(member.nodeId)).length >= quorumOf(voters.length);
  });
}

/**
 * Transfers leadership (at most `maxLeaderTransfers` in flight) from a node leading
 * more shards to a voter's node leading at least two fewer, largest gap first, so
 * each live node leads about S/N shards. Counts include transfers already sent.
 * Waits while elections are pending (see `awaitingElections`), and leaves a leader elected
 * or moved in the last few seconds where it is (`leaderIsNew`).
 */
export function balanceLeaders(context: SchedulerContext): void {
  if (awaitingElections(context)) return;
  const leaders = new Map<string, number>();
  for (const nodeId of liveNodeIds(context)) leaders.set(nodeId, 0);
  const leaderNodeOf = new Map<number, string>();
  for (const shard of context.shards) {
    const leader = context.leaderOf(shard);
    if (leader === null) continue;
    leaderNodeOf.set(shard.shardId, leader.nodeId);
    leaders.set(leader.nodeId, (leaders.get(leader.nodeId) ?? 0) + 1);
  }
  const shardsById = new Map(context.shards.map((shard) => [shard.shardId, shard]));
  const pending = new Set<number>();
  for (const issued of context.recent.values()) {
    const command = issued.command.command;
    if (command?.$case !== 'transferLeader') continue;
    const shard = shardsById.get(command.value.shardId);
    const target = shard?.members.find((member) => member.replicaId === command.value.toReplicaId);
    const current = leaderNodeOf.get(command.value.shardId);
    if (shard === undefined || target === undefined || current === undefined || current === target.nodeId) continue;
    pending.add(shard.shardId);
    leaders.set(current, (leaders.get(current) ?? 0) - 1);
    leaders.set(target.nodeId, (leaders.get(target.nodeId) ?? 0) + 1);
  }
  const countOf = (nodeId: string): number => leaders.get(nodeId) ?? 0;
  let inFlight = pending.size;
  while (inFlight < context.config.maxLeaderTransfers) {
    let best: { shard: ShardRecord; from: string; to: string; toReplicaId: number; gap: number } | null = null;
    for (const shard of context.shards) {
      const from = leaderNodeOf.get(shard.shardId);
      if (from === undefined || pending.has(shard.shardId) || !isSettled(context, shard) || context.leaderIsNew(shard.shardId)) continue;
      for (const member of votersOf(shard)) {
        if (member.nodeId === from || !isReadyFollower(context, shard, member.nodeId, member.replicaId)) continue;
        const gap = countOf(from) - countOf(member.nodeId);
        if (gap >= 2 && (best === null || gap > best.gap)) {
          best = { shard, from, to: member.nodeId, toReplicaId: member.replicaId, gap };
        }
      }
    }
    if (best === null) return;
    const keyed = transferLeader(best.shard.shardId, best.toReplicaId);
    context.issue(best.from, keyed.key, keyed.command);
    context.event('info', 'balance leaders: transfer leader', best.shard.shardId, { fromNode: best.from, toNode: best.to });
    pending.add(best.shard.shardId);
    leaders.set(best.from, countOf(best.from) - 1);
    leaders.set(best.to, countOf(best.to) + 1);
    inFlight += 1;
  }
}

/** The node reports this replica as an initialized follower: a sensible transfer target. */
function isReadyFollower(context: SchedulerContext, shard: ShardRecord, nodeId: string, replicaId: number): boolean {
  if (!context.isResponsive(nodeId) || context.isDraining(nodeId)) return false;
  const status = context.nodes.get(nodeId)?.replicas.get(shard.shardId);
  return status !== undefined && status.replicaId === replicaId && !status.uninitialized
    && status.role === ReplicaRole.REPLICA_ROLE_FOLLOWER && status.term === shard.term;
}
