/**
 * The scheduler's inputs, outputs and the working state of one scheduling round.
 * Pure: a round reads a snapshot of the cluster and returns commands; the I/O
 * shell (manager.ts) delivers them in heartbeat responses.
 */
import { ReplicaRole, type PlacementCommand, type ReplicaMember, type ReplicaStatus } from '../gen/kvstore/v1/manager.js';
import type { Health, MovePhase, MoveTask, ShardRecord } from './types.js';

/** Scheduler knobs; each states its effect and trade-off. */
export interface SchedulerConfig {
  /** K: voters per shard. */
  replicationFactor: number;
  /**
   * Re-send a command that has not taken effect after this long (default 3000 ms).
   * Shorter recovers faster from a lost response; longer sends fewer duplicates
   * (every command is idempotent on the node).
   */
  reissueAfterMs: number;
  /**
   * A learner is promoted once its match index is within this many entries of the
   * leader's commit index (default 64). Promoting a lagging learner is safe but
   * lowers availability until it catches up.
   */
  learnerCatchUpSlackEntries: number;
  /** Re-replication moves in flight at once (default 32): bounds snapshot load after a node dies. */
  maxReplaceMoves: number;
  /**
   * Rebalancing moves in flight at once (default 8): bounds load while a new node fills.
   * A move takes about five heartbeats, so filling a node with R replicas takes ≈ 5·R/8 s.
   */
  maxRebalanceMoves: number;
  /** Leadership transfers in flight at once (default 8). */
  maxLeaderTransfers: number;
  /** A move whose new replica is not a voter after this long is abandoned (default 120000 ms). */
  moveTimeoutMs: number;
}

/** Defaults for {@link SchedulerConfig} apart from the replication factor. */
export const DEFAULT_SCHEDULER_CONFIG: Omit<SchedulerConfig, 'replicationFactor'> = {
  reissueAfterMs: 3000,
  learnerCatchUpSlackEntries: 64,
  maxReplaceMoves: 32,
  maxRebalanceMoves: 8,
  maxLeaderTransfers: 8,
  moveTimeoutMs: 120_000,
};

/** A node as the scheduler sees it. */
export interface NodeView {
  nodeId: string;
  health: Health;
  /** True once the node has heartbeated since this manager started: only then is `replicas` known. */
  reported: boolean;
  /** Replicas in the node's latest heartbeat, by shard id. */
  replicas: ReadonlyMap<number, ReplicaStatus>;
  /** Time since the node's latest heartbeat (0 when unknown). */
  silentMs?: number;
  /** True while the node is drained (`kvstore node drain`). */
  draining?: boolean;
}

/**
 * Longest silence after which a node no longer counts as responsive, although it
 * stays `up` until the suspect timeout: a heartbeat interval (1 s) plus slack. A node
 * killed a moment ago must not be handed leadership, which would stall the shard's
 * writes for an election timeout. (The node also refuses to transfer to a follower
 * its Raft progress shows inactive, which covers the first interval.)
 */
export const RESPONSIVE_SILENCE_MS = 1250;

/** How long a newly elected (or transferred) leader is left in place by leader balancing. */
export const LEADER_SETTLE_MS = 5000;

/** A command sent recently, kept to avoid re-sending it before `reissueAfterMs`. */
export interface IssuedCommand {
  nodeId: string;
  command: PlacementCommand;
  issuedAtMs: number;
}

/** A command for one node. `key` names it, so a re-sent command replaces a queued copy. */
export interface NodeCommand {
  nodeId: string;
  key: string;
  command: PlacementCommand;
}

/** Something an operator follows, for the shell to log. */
export interface SchedulerEvent {
  level: 'info' | 'debug' | 'warn';
  message: string;
  shardId: number;
  fields: Record<string, string | number | boolean | null>;
}

/** Everything one round reads. */
export interface SchedulerInput {
  nowMs: number;
  config: SchedulerConfig;
  nextReplicaId: number;
  nodes: readonly NodeView[];
  shards: readonly ShardRecord[];
  tasks: readonly MoveTask[];
  recent: ReadonlyMap<string, IssuedCommand>;
  /** When the manager last saw each shard's leader change (an election or transfer); absent: long ago. */
  leaderChangedAtMs?: ReadonlyMap<number, number>;
}

/** Everything one round decides. */
export interface SchedulerOutput {
  commands: NodeCommand[];
  tasks: MoveTask[];
  recent: Map<string, IssuedCommand>;
  nextReplicaId: number;
  events: SchedulerEvent[];
}

/** The shard leader as reported in its node's latest heartbeat. */
export interface LeaderView {
  nodeId: string;
  status: ReplicaStatus;
}

/** Working state of one round. @internal */
export class SchedulerContext {
  readonly nowMs: number;
  readonly config: SchedulerConfig;
  readonly nodes: ReadonlyMap<string, NodeView>;
  readonly shards: readonly ShardRecord[];
  readonly tasks = new Map<number, MoveTask>();
  readonly recent = new Map<string, IssuedCommand>();
  readonly commands: NodeCommand[] = [];
  readonly events: SchedulerEvent[] = [];
  nextReplicaId: number;
  private readonly leaderChangedAtMs: ReadonlyMap<number, number>;

  constructor(input: SchedulerInput) {
    this.nowMs = input.nowMs;
    this.leaderChangedAtMs = input.leaderChangedAtMs ?? new Map();
    this.config = input.config;
    this.nodes = new Map(input.nodes.map((node) => [node.nodeId, node]));
    this.shards = input.shards;
    this.nextReplicaId = input.nextReplicaId;
    for (const task of input.tasks) this.tasks.set(task.shardId, { ...task });
    for (const [key, issued] of input.recent) {
      if (input.nowMs - issued.issuedAtMs < input.config.reissueAfterMs) this.recent.set(key, issued);
    }
  }

  /** Up and heard from since the manager started: safe to send commands to and reason about. */
  isLive(nodeId: string): boolean {
    const node = this.nodes.get(nodeId);
    return node !== undefined && node.health === 'up' && node.reported;
  }

  /** Live and heard from within {@link RESPONSIVE_SILENCE_MS}: fit to receive leadership. */
  isResponsive(nodeId: string): boolean {
    const node = this.nodes.get(nodeId);
    return node !== undefined && this.isLive(nodeId) && (node.silentMs ?? 0) <= RESPONSIVE_SILENCE_MS;
  }

  /**
   * True while the shard's leader changed less than {@link LEADER_SETTLE_MS} ago: after a
   * failover the survivors' view is still settling (the dead node may not look dead yet), and
   * moving a leader clients have just found costs them a second interruption.
   */
  leaderIsNew(shardId: number): boolean {
    const changedAtMs = this.leaderChangedAtMs.get(shardId);
    return changedAtMs !== undefined && this.nowMs - changedAtMs < LEADER_SETTLE_MS;
  }

  /** True while the node is drained: no new replica or leadership goes there, and its replicas move off. */
  isDraining(nodeId: string): boolean {
    return this.nodes.get(nodeId)?.draining === true;
  }

  /** True when the node is known to be down (or was never registered). */
  isDown(nodeId: string): boolean {
    const node = this.nodes.get(nodeId);
    return node === undefined || node.health === 'down';
  }

  /**
   * The shard's leader when it is known: the map's leader node is up and its latest
   * heartbeat reports this replica leading at the map's term and epoch. The
   * scheduler never acts on a shard without one.
   */
  leaderOf(shard: ShardRecord): LeaderView | null {
    if (shard.leaderNodeId === null || !this.isLive(shard.leaderNodeId)) return null;
    const status = this.nodes.get(shard.leaderNodeId)?.replicas.get(shard.shardId);
    if (status?.role !== ReplicaRole.REPLICA_ROLE_LEADER) return null;
    if (status.term !== shard.term || status.epoch !== shard.epoch) return null;
    return { nodeId: shard.leaderNodeId, status };
  }

  /**
   * Queues `command` for `nodeId` unless the same command (same `key`) went out less
   * than `reissueAfterMs` ago. Returns true when it was queued.
   */
  issue(nodeId: string, key: string, command: PlacementCommand): boolean {
    if (this.recent.has(key)) return false;
    this.recent.set(key, { nodeId, command, issuedAtMs: this.nowMs });
    this.commands.push({ nodeId, key, command });
    return true;
  }

  /** Allocates a replica id from the cluster-wide counter; ids are never reused. */
  allocateReplicaId(): number {
    const replicaId = this.nextReplicaId;
    this.nextReplicaId += 1;
    return replicaId;
  }

  /** Records an event for the shell to log. */
  event(level: SchedulerEvent['level'], message: string, shardId: number, fields: SchedulerEvent['fields'] = {}): void {
    this.events.push({ level, message, shardId, fields });
  }

  /** Moves a task to `phase`, logging the step at info when it changes. */
  setPhase(task: MoveTask, phase: MovePhase): void {
    if (task.phase === phase) return;
    task.phase = phase;
    this.event('info', `move: ${phase}`, task.shardId, moveFields(task));
  }

  /**
   * Replicas per node once every running move completes: map members, plus move
   * targets not yet members, minus move sources still members.
   */
  projectedReplicaCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const nodeId of this.nodes.keys()) counts.set(nodeId, 0);
    const bump = (nodeId: string, by: number): void => { counts.set(nodeId, (counts.get(nodeId) ?? 0) + by); };
    for (const shard of this.shards) {
      for (const member of shard.members) bump(member.nodeId, 1);
      const task = this.tasks.get(shard.shardId);
      if (task === undefined) continue;
      if (!hasMember(shard, task.to.replicaId)) bump(task.to.nodeId, 1);
      if (task.from !== null && hasMember(shard, task.from.replicaId)) bump(task.from.nodeId, -1);
    }
    return counts;
  }

  /** The round's result. */
  output(): SchedulerOutput {
    return {
      commands: this.commands,
      tasks: [...this.tasks.values()].sort((a, b) => a.shardId - b.shardId),
      recent: this.recent,
      nextReplicaId: this.nextReplicaId,
      events: this.events,
    };
  }
}

/** The member with `replicaId`, if any. */
export function findMember(shard: ShardRecord, replicaId: number): ReplicaMember | undefined {
  return shard.members.find((member) => member.replicaId === replicaId);
}

/** True when `replicaId` is a member (voter or learner) of the shard. */
export function hasMember(shard: ShardRecord, replicaId: number): boolean {
  return findMember(shard, replicaId) !== undefined;
}

/** The voters of a shard. */
export function votersOf(shard: ShardRecord): ReplicaMember[] {
  return shard.members.filter((member) => !member.learner);
}

/** Majority of `voterCount` voters (Raft §5.2). */
export function quorumOf(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** Log fields describing a move. */
export function moveFields(task: MoveTask): SchedulerEvent['fields'] {
  return {
    reason: task.reason,
    step: task.phase,
    fromNode: task.from?.nodeId ?? null,
    fromReplica: task.from?.replicaId ?? null,
    toNode: task.to.nodeId,
    toReplica: task.to.replicaId,
  };
}
