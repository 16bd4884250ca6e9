/**
 * What a node's heartbeat tells the manager about its replicas. A full report of thousands of
 * replicas every second cost an idle node several percent of a core to build and encode, and
 * the manager as much again to decode; so a heartbeat carries only the replicas whose status
 * changed since the last heartbeat the manager answered, and the shards no longer hosted
 * (`partial`). The manager keeps the rest from before. A full report goes out first, every
 * {@link FULL_REPORT_EVERY} heartbeats, and whenever the manager asks (it restarted, or holds
 * no full report of this node).
 *
 * A heartbeat that got no answer changes nothing here: the next one is taken against the same
 * last answered report, so it carries every change since (a superset, if the lost one arrived
 * after all: reports are idempotent).
 * @internal
 */
import { type HeartbeatRequest, ReplicaRole, type ReplicaStatus } from '../gen/kvstore/v1/manager.js';
import { Role } from '../raft/index.js';
import type { Replica } from './replica.js';

/** A full report at least this often (heartbeats): the manager's copy cannot drift for long, whatever happens. */
export const FULL_REPORT_EVERY = 30;

const ROLES: Record<Role, ReplicaRole> = {
  [Role.Follower]: ReplicaRole.REPLICA_ROLE_FOLLOWER,
  [Role.PreCandidate]: ReplicaRole.REPLICA_ROLE_PRE_CANDIDATE,
  [Role.Candidate]: ReplicaRole.REPLICA_ROLE_CANDIDATE,
  [Role.Leader]: ReplicaRole.REPLICA_ROLE_LEADER,
};

/** The replica part of a heartbeat. */
export type ReplicaReport = Pick<HeartbeatRequest, 'replicas' | 'partial' | 'removedShardIds'>;

/** A replica's reported status, with the `Replica.members()` array it was built from (the same array: the same members). */
interface Reported {
  status: ReplicaStatus;
  members: readonly unknown[];
}

/** Builds heartbeat reports against what the manager last acknowledged. */
export class HeartbeatReporter {
  /** Every replica's status as of the last answered heartbeat, by shard. */
  private acknowledged = new Map<number, Reported>();
  /** Every replica's status as of the last heartbeat taken (it becomes acknowledged once answered). */
  private taken: Map<number, Reported> | undefined;
  /** The next report is full. */
  private fullWanted = true;
  private sinceFull = 0;

  /** The report for the next heartbeat. */
  take(replicas: Iterable<Replica>): ReplicaReport {
    const full = this.fullWanted || this.sinceFull >= FULL_REPORT_EVERY - 1;
    const current = new Map<number, Reported>();
    const changed: ReplicaStatus[] = [];
    for (const replica of replicas) {
      const previous = this.acknowledged.get(replica.shardId);
      const status = replicaStatus(replica, previous?.status, previous?.members);
      current.set(replica.shardId, { status, members: replica.members() });
      if (full || status !== previous?.status) changed.push(status);
    }
    this.taken = current;
    this.fullWanted = full; // until this one is answered
    if (full) return { replicas: changed, partial: false, removedShardIds: [] };
    const removedShardIds: number[] = [];
    for (const shardId of this.acknowledged.keys()) if (!current.has(shardId)) removedShardIds.push(shardId);
    return { replicas: changed, partial: true, removedShardIds };
  }

  /** The heartbeat taken last was answered; `fullReport`: the manager asks for every replica next time. */
  answered(fullReport: boolean): void {
    if (this.taken === undefined) return;
    if (fullReport) {
      this.fullWanted = true;
    } else {
      this.sinceFull = this.fullWanted ? 0 : this.sinceFull + 1;
      this.fullWanted = false;
      this.acknowledged = this.taken;
    }
    this.taken = undefined;
  }
}

/**
 * A replica's status for the manager; `previous` itself when nothing in it changed (so the
 * caller compares by identity, and an unchanged replica allocates nothing). `previousMembers`:
 * the `Replica.members()` array `previous` was built from (the epoch is the members' too).
 */
export function replicaStatus(replica: Replica, previous?: ReplicaStatus, previousMembers?: readonly unknown[]): ReplicaStatus {
  const rawNode = replica.rawNode;
  const role = ROLES[rawNode.role()];
  const leader = role === ReplicaRole.REPLICA_ROLE_LEADER;
  const members = replica.members();
  if (
    previous !== undefined && members === previousMembers && previous.role === role && previous.term === rawNode.term() &&
    previous.commitIndex === rawNode.commitIndex() && previous.appliedIndex === replica.machine.appliedIndex &&
    previous.leaderReplicaId === rawNode.leaderId() && previous.keyCount === replica.machine.keyCount &&
    previous.uninitialized === replica.uninitialized && sameMatches(replica, members, previous.matchIndexes, leader)
  ) {
    return previous;
  }
  return {
    shardId: replica.shardId,
    replicaId: replica.replicaId,
    role,
    term: rawNode.term(),
    commitIndex: rawNode.commitIndex(),
    appliedIndex: replica.machine.appliedIndex,
    leaderReplicaId: rawNode.leaderId(),
    members: members.map((member) => ({ replicaId: member.replicaId, nodeId: member.nodeId, learner: member.learner })),
    epoch: replica.machine.epoch,
    keyCount: replica.machine.keyCount,
    matchIndexes: leader ? members.map((member) => replica.rawNode.matchIndex(member.replicaId)) : [],
    uninitialized: replica.uninitialized,
  };
}

/** True when a leader's match indexes are still `matches` (a follower reports none). */
function sameMatches(replica: Replica, members: readonly { replicaId: number }[], matches: readonly number[], leader: boolean): boolean {
  if (!leader) return matches.length === 0;
  if (matches.length !== members.length) return false;
  for (let i = 0; i < members.length; i++) if (matches[i] !== replica.rawNode.matchIndex((members[i] as { replicaId: number }).replicaId)) return false;
  return true;
}
