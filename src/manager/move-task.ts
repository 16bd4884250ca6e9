/**
 * Drives one replica move a step at a time. Each step is derived from what the
 * shard leader and the target node last reported, so a lost command is simply
 * re-sent and a restarted manager resumes where the cluster is.
 */
import {
  addReplica, createReplica, promoteLearner, removeReplica, transferLeader, type KeyedCommand,
} from './commands.js';
import {
  findMember, moveFields, quorumOf, votersOf, type LeaderView, type SchedulerContext,
} from './scheduler-context.js';
import type { MoveReason, MoveTask, ReplicaRef, ShardRecord } from './types.js';

/** What became of a move after one step. */
export type MoveOutcome = 'running' | 'done' | 'aborted';

/**
 * True when removing `replicaId` leaves a configuration whose live voters are still
 * a majority of it. The manager never removes a replica below a live quorum.
 */
export function canRemoveSafely(context: SchedulerContext, shard: ShardRecord, replicaId: number): boolean {
  const remaining = votersOf(shard).filter((member) => member.replicaId !== replicaId);
  const live = remaining.filter((member) => context.isLive(member.nodeId)).length;
  return remaining.length > 0 && live >= quorumOf(remaining.length);
}

/** The leader's match index for `replicaId`, from ReplicaStatus.match_indexes (in members order). */
export function matchIndexOf(leader: LeaderView, replicaId: number): number {
  const position = leader.status.members.findIndex((member) => member.replicaId === replicaId);
  return position < 0 ? 0 : leader.status.matchIndexes[position] ?? 0;
}

/**
 * The voter to hand leadership to when the leader must go: live, not `excluding`, on a node
 * not drained when there is one, furthest along the log (ties: lowest replica id).
 */
export function pickTransferTarget(
  context: SchedulerContext, shard: ShardRecord, leader: LeaderView, excluding: number,
): number | null {
  let best: { replicaId: number; match: number; draining: boolean } | null = null;
  for (const member of votersOf(shard)) {
    if (member.replicaId === excluding || !context.isLive(member.nodeId)) continue;
    const match = matchIndexOf(leader, member.replicaId);
    const draining = context.isDraining(member.nodeId);
    const better = best === null || (best.draining && !draining) || (best.draining === draining && match > best.match);
    if (better) best = { replicaId: member.replicaId, match, draining };
  }
  return best?.replicaId ?? null;
}

/**
 * Advances `task` by at most one step: create the replica on the target node → add it
 * as a learner → wait for it to catch up → promote → move leadership off the source →
 * remove the source. Every step after the first waits for a known leader.
 */
export function advanceMove(context: SchedulerContext, shard: ShardRecord, task: MoveTask): MoveOutcome {
  const target = findMember(shard, task.to.replicaId);
  const targetIsVoter = target !== undefined && !target.learner;
  if (!targetIsVoter && context.isDown(task.to.nodeId)) return abort(context, task, 'target node down');
  if (!targetIsVoter && context.nowMs - task.startedAtMs > context.config.moveTimeoutMs) {
    return abort(context, task, 'timed out');
  }
  const leader = context.leaderOf(shard);
  if (leader === null) return 'running';
  const { shardId } = shard;

  if (target === undefined) {
    const targetNode = context.nodes.get(task.to.nodeId);
    const hosted = targetNode?.replicas.get(shardId)?.replicaId === task.to.replicaId;
    if (!hosted) {
      context.setPhase(task, 'create');
      send(context, task.to.nodeId, createReplica(shardId, task.to.replicaId, [], false));
    } else {
      context.setPhase(task, 'add-learner');
      send(context, leader.nodeId, addReplica(shardId, { ...task.to, learner: true }));
    }
    return 'running';
  }
  if (target.learner) {
    const match = matchIndexOf(leader, task.to.replicaId);
    const caughtUp = match > 0 && match + context.config.learnerCatchUpSlackEntries >= leader.status.commitIndex;
    if (!caughtUp) {
      context.setPhase(task, 'catch-up');
      return 'running';
    }
    context.setPhase(task, 'promote');
    send(context, leader.nodeId, promoteLearner(shardId, task.to.replicaId));
    return 'running';
  }
  const source = task.from === null ? undefined : findMember(shard, task.from.replicaId);
  if (source === undefined) {
    context.event('info', 'move: done', shardId, moveFields(task));
    return 'done';
  }
  if (leader.status.replicaId === source.replicaId) {
    const successor = pickTransferTarget(context, shard, leader, source.replicaId);
    if (successor === null) return 'running';
    context.setPhase(task, 'transfer-leader');
    send(context, leader.nodeId, transferLeader(shardId, successor));
    return 'running';
  }
  if (!canRemoveSafely(context, shard, source.replicaId)) return 'running';
  context.setPhase(task, 'remove');
  send(context, leader.nodeId, removeReplica(shardId, source.replicaId));
  return 'running';
}

/**
 * Starts a move of `shard`: `from` (null: only add) to a new replica on `toNodeId`, records it and
 * takes its first step at once. Returns whether it is running (false: it ended at once).
 */
export function startMove(context: SchedulerContext, shard: ShardRecord, reason: MoveReason, from: ReplicaRef | null, toNodeId: string): boolean {
  const task: MoveTask = {
    shardId: shard.shardId,
    reason,
    from,
    to: { replicaId: context.allocateReplicaId(), nodeId: toNodeId },
    phase: 'create',
    startedAtMs: context.nowMs,
  };
  context.tasks.set(shard.shardId, task);
  context.event('info', 'move: start', shard.shardId, moveFields(task));
  if (advanceMove(context, shard, task) === 'running') return true;
  context.tasks.delete(shard.shardId);
  return false;
}

function send(context: SchedulerContext, nodeId: string, keyed: KeyedCommand): void {
  context.issue(nodeId, keyed.key, keyed.command);
}

function abort(context: SchedulerContext, task: MoveTask, why: string): MoveOutcome {
  context.event('warn', 'move: aborted', task.shardId, { ...moveFields(task), why });
  return 'aborted';
}
