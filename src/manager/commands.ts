/**
 * Builders for the placement commands the manager sends, each with the key that
 * identifies it for de-duplication and re-sending. Semantics the node implements:
 * every command is idempotent, and a command whose precondition does not hold
 * (not the leader, already a member, not hosted, …) is ignored.
 */
import type { PlacementCommand, ReplicaMember } from '../gen/kvstore/v1/manager.js';

/** A command plus its de-duplication key. */
export interface KeyedCommand {
  key: string;
  command: PlacementCommand;
}

/** Host a new replica: bootstrap it with `initialMembers`, or (empty) wait for the leader. */
export function createReplica(
  shardId: number,
  replicaId: number,
  initialMembers: ReplicaMember[],
  campaign: boolean,
): KeyedCommand {
  return {
    key: `create:${shardId}:${replicaId}`,
    command: { command: { $case: 'createReplica', value: { shardId, replicaId, initialMembers, campaign } } },
  };
}

/** To the leader's node: propose adding `member` (a learner). */
export function addReplica(shardId: number, member: ReplicaMember): KeyedCommand {
  return {
    key: `add:${shardId}:${member.replicaId}`,
    command: { command: { $case: 'addReplica', value: { shardId, member } } },
  };
}

/** To the leader's node: propose making learner `replicaId` a voter. */
export function promoteLearner(shardId: number, replicaId: number): KeyedCommand {
  return {
    key: `promote:${shardId}:${replicaId}`,
    command: { command: { $case: 'promoteLearner', value: { shardId, replicaId } } },
  };
}

/** To the leader's node: propose removing member `replicaId`. */
export function removeReplica(shardId: number, replicaId: number): KeyedCommand {
  return {
    key: `remove:${shardId}:${replicaId}`,
    command: { command: { $case: 'removeReplica', value: { shardId, replicaId } } },
  };
}

/** To the leader's node: hand leadership to `toReplicaId`. */
export function transferLeader(shardId: number, toReplicaId: number): KeyedCommand {
  return {
    key: `transfer:${shardId}:${toReplicaId}`,
    command: { command: { $case: 'transferLeader', value: { shardId, toReplicaId } } },
  };
}

/** To the hosting node: drop a replica that is no longer a member, with its data. */
export function destroyReplica(shardId: number, replicaId: number): KeyedCommand {
  return {
    key: `destroy:${shardId}:${replicaId}`,
    command: { command: { $case: 'destroyReplica', value: { shardId, replicaId } } },
  };
}
