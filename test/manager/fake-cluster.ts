/**
 * A model of storage nodes for scheduler tests: each shard's Raft group is one
 * record (members, epoch, term, leader, commit, match indexes); commands take
 * effect at once when their precondition holds, like the node applies them, and
 * are ignored otherwise. Drives the real ClusterState + scheduler round by round.
 */
import {
  ReplicaRole, type PlacementCommand, type ReplicaMember, type ReplicaStatus,
} from '../../src/gen/kvstore/v1/manager.js';
import { ClusterState } from '../../src/manager/cluster-state.js';
import { parsePersistedState } from '../../src/manager/state-store.js';
import { DEFAULT_SCHEDULER_CONFIG, type SchedulerConfig, type SchedulerEvent } from '../../src/manager/scheduler-context.js';

interface Group {
  members: ReplicaMember[];
  epoch: number;
  term: number;
  leaderReplicaId: number;
  commitIndex: number;
  match: Map<number, number>;
}

interface HostedReplica {
  replicaId: number;
  /** What the replica last knew, kept when it stops being a member. */
  members: ReplicaMember[];
  epoch: number;
  term: number;
  uninitialized: boolean;
}

/** One command a node received, for asserting sequences. */
export interface ReceivedCommand {
  round: number;
  nodeId: string;
  command: PlacementCommand;
}

/** Options of a simulated cluster. */
export interface FakeClusterOptions {
  shardCount: number;
  replicationFactor: number;
  nodeIds: string[];
  bootstrapNodes?: number;
  downAfterMs?: number;
  scheduler?: Partial<SchedulerConfig>;
}

/** Rounds from a leader's death until its group has a new leader (randomised election timeout + vote). */
const ELECTION_ROUNDS = 3;

/** Simulated nodes plus the manager's real model, stepped in 500 ms rounds. */
export class FakeCluster {
  state: ClusterState;
  readonly received: ReceivedCommand[] = [];
  readonly events: SchedulerEvent[] = [];
  nowMs = 1_000_000;
  round = 0;
  /** Drop the next command matching this predicate (a lost response). */
  dropNext: ((command: PlacementCommand) => boolean) | null = null;
  private readonly groups = new Map<number, Group>();
  private readonly hosted = new Map<string, Map<number, HostedReplica>>();
  private readonly alive = new Set<string>();
  /** Round in which each dead node died: its groups elect a new leader only after an election timeout. */
  private readonly diedInRound = new Map<string, number>();
  private readonly options: FakeClusterOptions;
  private readonly config: SchedulerConfig;

  constructor(options: FakeClusterOptions) {
    this.options = options;
    this.config = { ...DEFAULT_SCHEDULER_CONFIG, ...options.scheduler, replicationFactor: options.replicationFactor };
    this.state = ClusterState.create(options.shardCount, options.replicationFactor, this.nowMs);
    for (const nodeId of options.nodeIds) this.addNode(nodeId);
  }

  /** Starts a node (new, or back after a crash with its replicas). */
  addNode(nodeId: string): void {
    if (!this.hosted.has(nodeId)) this.hosted.set(nodeId, new Map());
    this.alive.add(nodeId);
    this.state.register(nodeId, `127.0.0.1:${7000 + this.hosted.size}`, 0, this.nowMs);
  }

  /** Restarts the manager from its persisted state (through JSON, as from state.json). */
  restartManager(): void {
    const saved = parsePersistedState(JSON.parse(JSON.stringify(this.state.toPersisted())));
    this.state = ClusterState.fromPersisted(saved, this.nowMs);
  }

  /** Stops a node's heartbeats; its replicas stop answering. */
  killNode(nodeId: string): void {
    this.alive.delete(nodeId);
    this.diedInRound.set(nodeId, this.round);
  }

  /** One round: Raft progress, heartbeats, health, scheduling, command delivery. */
  step(): void {
    this.round += 1;
    this.nowMs += 500;
    this.advanceGroups();
    for (const nodeId of this.alive) {
      this.state.heartbeat({ nodeId, address: '', replicas: this.statusOf(nodeId), partial: false, removedShardIds: [], opsPerSecond: 0, p99LatencyMs: 0, metricsPort: 0, unreachablePeers: [] }, this.nowMs);
    }
    this.state.updateHealth(this.nowMs, 3000, this.options.downAfterMs ?? 10_000);
    this.state.maybeBootstrap(this.options.bootstrapNodes ?? this.options.replicationFactor);
    this.events.push(...this.state.runScheduler(this.nowMs, this.config));
    for (const nodeId of this.alive) {
      for (const command of this.state.takeCommands(nodeId)) {
        if (this.dropNext?.(command) === true) {
          this.dropNext = null;
          continue;
        }
        this.received.push({ round: this.round, nodeId, command });
        this.apply(nodeId, command);
      }
    }
  }

  /** Steps until `done()` holds; fails after `maxRounds`. */
  runUntil(done: () => boolean, maxRounds = 400): void {
    for (let i = 0; i < maxRounds; i += 1) {
      if (done()) return;
      this.step();
    }
    if (!done()) throw new Error(`not converged after ${maxRounds} rounds`);
  }

  /** Steps `rounds` times. */
  run(rounds: number): void {
    for (let i = 0; i < rounds; i += 1) this.step();
  }

  /** The group's true membership. */
  group(shardId: number): Group | undefined {
    return this.groups.get(shardId);
  }

  /** Node id hosting `replicaId` of a shard per the group's members. */
  nodeOf(shardId: number, replicaId: number): string | undefined {
    return this.groups.get(shardId)?.members.find((member) => member.replicaId === replicaId)?.nodeId;
  }

  /** Shard ids a node hosts (member or not). */
  hostedShards(nodeId: string): number[] {
    return [...(this.hosted.get(nodeId)?.keys() ?? [])];
  }

  /** True when every shard has K voters, all on live nodes, no learners, and a live leader. */
  healthy(): boolean {
    const factor = this.options.replicationFactor;
    for (let shardId = 0; shardId < this.options.shardCount; shardId += 1) {
      const group = this.groups.get(shardId);
      if (group === undefined || group.leaderReplicaId === 0) return false;
      if (group.members.length !== factor || group.members.some((m) => m.learner || !this.alive.has(m.nodeId))) return false;
    }
    return true;
  }

  /** Replicas (members) per live node. */
  replicaCounts(): Map<string, number> {
    const counts = new Map<string, number>([...this.alive].map((nodeId) => [nodeId, 0]));
    for (const group of this.groups.values()) {
      for (const member of group.members) if (counts.has(member.nodeId)) counts.set(member.nodeId, (counts.get(member.nodeId) ?? 0) + 1);
    }
    return counts;
  }

  /** Leaders per live node. */
  leaderCounts(): Map<string, number> {
    const counts = new Map<string, number>([...this.alive].map((nodeId) => [nodeId, 0]));
    for (const [shardId, group] of this.groups) {
      const nodeId = this.nodeOf(shardId, group.leaderReplicaId);
      if (nodeId !== undefined && counts.has(nodeId)) counts.set(nodeId, (counts.get(nodeId) ?? 0) + 1);
    }
    return counts;
  }

  private advanceGroups(): void {
    for (const [shardId, group] of this.groups) {
      const leaderNode = this.nodeOf(shardId, group.leaderReplicaId);
      const voters = group.members.filter((m) => !m.learner);
      const live = voters.filter((m) => this.alive.has(m.nodeId) && this.hosted.get(m.nodeId)?.get(shardId)?.replicaId === m.replicaId);
      if (leaderNode === undefined || !this.alive.has(leaderNode)) {
        // Followers notice after an election timeout plus the vote: about 1.5 s, 3 rounds.
        if (leaderNode !== undefined && this.round - (this.diedInRound.get(leaderNode) ?? 0) < ELECTION_ROUNDS) continue;
        group.leaderReplicaId = 0;
        if (live.length >= Math.floor(voters.length / 2) + 1) {
          const winner = live.sort((a, b) => a.replicaId - b.replicaId)[0];
          if (winner !== undefined) {
            group.term += 1;
            group.leaderReplicaId = winner.replicaId;
          }
        }
        continue;
      }
      group.commitIndex += 1;
      group.match.set(group.leaderReplicaId, group.commitIndex);
      for (const member of group.members) {
        const replica = this.hosted.get(member.nodeId)?.get(shardId);
        if (!this.alive.has(member.nodeId) || replica?.replicaId !== member.replicaId) continue;
        group.match.set(member.replicaId, group.commitIndex);
        replica.uninitialized = false;
      }
    }
  }

  private statusOf(nodeId: string): ReplicaStatus[] {
    const statuses: ReplicaStatus[] = [];
    for (const [shardId, replica] of this.hosted.get(nodeId) ?? []) {
      const group = this.groups.get(shardId);
      const member = group?.members.some((m) => m.replicaId === replica.replicaId) === true;
      if (group !== undefined && member && !replica.uninitialized) {
        replica.members = group.members.map((m) => ({ ...m }));
        replica.epoch = group.epoch;
        replica.term = group.term;
      }
      const leading = group !== undefined && member && group.leaderReplicaId === replica.replicaId;
      statuses.push({
        shardId,
        replicaId: replica.replicaId,
        role: leading ? ReplicaRole.REPLICA_ROLE_LEADER : ReplicaRole.REPLICA_ROLE_FOLLOWER,
        term: replica.term,
        commitIndex: member ? group.commitIndex : 0,
        appliedIndex: member ? group.commitIndex : 0,
        leaderReplicaId: member ? group.leaderReplicaId : 0,
        members: replica.members.map((m) => ({ ...m })),
        epoch: replica.epoch,
        keyCount: 0,
        matchIndexes: leading ? group.members.map((m) => group.match.get(m.replicaId) ?? 0) : [],
        uninitialized: replica.uninitialized,
      });
    }
    return statuses;
  }

  private leaderGroup(nodeId: string, shardId: number): Group | null {
    const group = this.groups.get(shardId);
    const replica = this.hosted.get(nodeId)?.get(shardId);
    if (group === undefined || replica === undefined || group.leaderReplicaId !== replica.replicaId) return null;
    return group;
  }

  private apply(nodeId: string, placement: PlacementCommand): void {
    const command = placement.command;
    const hosted = this.hosted.get(nodeId);
    if (command === undefined || hosted === undefined) return;
    switch (command.$case) {
      case 'createReplica': {
        const { shardId, replicaId, initialMembers, campaign } = command.value;
        if (hosted.has(shardId)) return;
        const bootstrap = initialMembers.length > 0;
        hosted.set(shardId, { replicaId, members: initialMembers, epoch: bootstrap ? 1 : 0, term: 0, uninitialized: !bootstrap });
        if (bootstrap && !this.groups.has(shardId)) {
          this.groups.set(shardId, { members: initialMembers.map((m) => ({ ...m })), epoch: 1, term: 0, leaderReplicaId: 0, commitIndex: 0, match: new Map() });
        }
        const group = this.groups.get(shardId);
        if (campaign && group !== undefined && group.leaderReplicaId === 0) {
          group.term += 1;
          group.leaderReplicaId = replicaId;
        }
        return;
      }
      case 'addReplica': {
        const group = this.leaderGroup(nodeId, command.value.shardId);
        const member = command.value.member;
        if (group === null || member === undefined || group.members.some((m) => m.replicaId === member.replicaId)) return;
        group.members.push({ ...member, learner: true });
        group.match.set(member.replicaId, 0);
        group.epoch += 1;
        return;
      }
      case 'promoteLearner': {
        const group = this.leaderGroup(nodeId, command.value.shardId);
        const member = group?.members.find((m) => m.replicaId === command.value.replicaId);
        if (group === null || member === undefined || !member.learner) return;
        member.learner = false;
        group.epoch += 1;
        return;
      }
      case 'removeReplica': {
        const group = this.leaderGroup(nodeId, command.value.shardId);
        if (group === null || !group.members.some((m) => m.replicaId === command.value.replicaId)) return;
        if (command.value.replicaId === group.leaderReplicaId) throw new Error('manager removed the leader');
        group.members = group.members.filter((m) => m.replicaId !== command.value.replicaId);
        group.epoch += 1;
        return;
      }
      case 'transferLeader': {
        const group = this.leaderGroup(nodeId, command.value.shardId);
        const target = group?.members.find((m) => m.replicaId === command.value.toReplicaId && !m.learner);
        if (group === null || target === undefined || !this.alive.has(target.nodeId)) return;
        group.term += 1;
        group.leaderReplicaId = target.replicaId;
        return;
      }
      case 'destroyReplica': {
        const replica = hosted.get(command.value.shardId);
        if (replica?.replicaId !== command.value.replicaId) return;
        const group = this.groups.get(command.value.shardId);
        if (group?.members.some((m) => m.replicaId === replica.replicaId) === true) throw new Error('manager destroyed a member');
        hosted.delete(command.value.shardId);
        return;
      }
    }
  }
}
