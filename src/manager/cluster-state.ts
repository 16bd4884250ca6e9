/**
 * The manager's live model: node records and health, the latest heartbeat reports,
 * the shard map, running moves and the commands waiting for each node. No I/O:
 * the shell persists `toPersisted()` whenever `dirty` is set.
 */
import {
  NodeHealth, ReplicaRole, type HeartbeatRequest, type NodeInfo, type PlacementCommand, type ReplicaStatus, type ShardInfo,
} from '../gen/kvstore/v1/manager.js';
import { drainRefusal } from './drain.js';
import { healthAfterSilence } from './health.js';
import { placeInitialReplicas } from './placement.js';
import { compareIds } from './repair.js';
import type { IssuedCommand, SchedulerConfig, SchedulerEvent } from './scheduler-context.js';
import { schedule } from './scheduler.js';
import { STATE_FORMAT_VERSION, type PersistedState } from './state-store.js';
import type { Health, MoveTask, NodeRecord, ShardRecord } from './types.js';

/** What the manager knows about a node only while it runs. */
interface NodeRuntime {
  lastSeenMs: number;
  health: Health;
  /** Set by the first heartbeat since this manager started. */
  reported: boolean;
  replicas: Map<number, ReplicaStatus>;
  opsPerSecond: number;
  p99LatencyMs: number;
  /** Peers the node's last heartbeat said it cannot connect to. */
  unreachablePeers: string[];
}

/** A node's health changed. */
export interface HealthTransition {
  nodeId: string;
  from: Health;
  to: Health;
}

const HEALTH_TO_PROTO: Record<Health, NodeHealth> = {
  up: NodeHealth.NODE_HEALTH_UP,
  suspect: NodeHealth.NODE_HEALTH_SUSPECT,
  down: NodeHealth.NODE_HEALTH_DOWN,
};

/** The cluster as the manager sees it. */
export class ClusterState {
  readonly shardCount: number;
  readonly replicationFactor: number;
  /** Set when placement, the map, node records or ids changed since the last save. */
  dirty = false;
  private nextReplicaId: number;
  private bootstrapped: boolean;
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly runtime = new Map<string, NodeRuntime>();
  private readonly shards: ShardRecord[];
  private tasks: MoveTask[];
  private recent = new Map<string, IssuedCommand>();
  /** When this manager saw each shard's leader change to a newer term (not persisted: a restart forgets, which only means "settled"). */
  private readonly leaderChangedAtMs = new Map<number, number>();
  private readonly outbox = new Map<string, Map<string, PlacementCommand>>();

  private constructor(state: PersistedState, nowMs: number) {
    this.shardCount = state.shardCount;
    this.replicationFactor = state.replicationFactor;
    this.nextReplicaId = state.nextReplicaId;
    this.bootstrapped = state.bootstrapped;
    this.shards = state.shards.map((shard) => ({ ...shard, members: shard.members.map((m) => ({ ...m })) }));
    this.tasks = state.tasks.map((task) => ({ ...task }));
    for (const node of state.nodes) {
      this.nodes.set(node.nodeId, { ...node });
      this.runtime.set(node.nodeId, freshRuntime(nowMs));
    }
  }

  /** A new, empty cluster; the initial placement waits for nodes. */
  static create(shardCount: number, replicationFactor: number, nowMs: number): ClusterState {
    const shards: ShardRecord[] = [];
    for (let shardId = 0; shardId < shardCount; shardId += 1) {
      shards.push({ shardId, epoch: 0, members: [], leaderNodeId: null, term: 0, commitIndex: 0, firstLeaderNodeId: null });
    }
    const state = new ClusterState({
      version: STATE_FORMAT_VERSION, shardCount, replicationFactor, nextReplicaId: 1, bootstrapped: false,
      nodes: [], shards, tasks: [],
    }, nowMs);
    state.dirty = true;
    return state;
  }

  /**
   * A cluster loaded from its state file. Known nodes count as just seen, so each
   * gets the full suspect/down grace period to heartbeat the new manager.
   */
  static fromPersisted(state: PersistedState, nowMs: number): ClusterState {
    return new ClusterState(state, nowMs);
  }

  /** The state to save. */
  toPersisted(): PersistedState {
    return {
      version: STATE_FORMAT_VERSION,
      shardCount: this.shardCount,
      replicationFactor: this.replicationFactor,
      nextReplicaId: this.nextReplicaId,
      bootstrapped: this.bootstrapped,
      nodes: [...this.nodes.values()].sort((a, b) => compareIds(a.nodeId, b.nodeId)).map((node) => ({ ...node })),
      shards: this.shards.map((shard) => ({ ...shard, members: shard.members.map((m) => ({ ...m })) })),
      tasks: this.tasks.map((task) => ({ ...task })),
    };
  }

  /** True once the initial placement has been made. */
  get isBootstrapped(): boolean {
    return this.bootstrapped;
  }

  /** Number of running moves. */
  get movesInFlight(): number {
    return this.tasks.length;
  }

  /**
   * Adds or refreshes a node; it is `up` from now. Returns its health change, if any. A node
   * registers when it (re)starts: what it reported before is forgotten until its next full report,
   * so no leadership it held before a restart shows in the map.
   */
  register(nodeId: string, address: string, metricsPort: number, nowMs: number): HealthTransition | null {
    const record = this.nodes.get(nodeId);
    if (record === undefined || record.address !== address || record.metricsPort !== metricsPort) {
      this.nodes.set(nodeId, { nodeId, address, metricsPort });
      this.dirty = true;
    }
    const transition = this.markSeen(nodeId, nowMs);
    const runtime = this.runtime.get(nodeId);
    if (runtime !== undefined) {
      runtime.reported = false;
      runtime.replicas = new Map();
    }
    return transition;
  }

  /** True when the node is known (registered, now or before a restart). */
  knows(nodeId: string): boolean {
    return this.nodes.has(nodeId);
  }

  /**
   * Takes in a heartbeat from a known node: liveness, its replica reports, and from
   * each leader's report the shard's membership, epoch, leader, term and commit.
   */
  heartbeat(request: HeartbeatRequest, nowMs: number): HealthTransition | null {
    const record = this.nodes.get(request.nodeId);
    if (record === undefined) return null;
    if (request.address !== '' && (record.address !== request.address || record.metricsPort !== request.metricsPort)) {
      this.nodes.set(request.nodeId, { nodeId: request.nodeId, address: request.address, metricsPort: request.metricsPort });
      this.dirty = true;
    }
    const transition = this.markSeen(request.nodeId, nowMs);
    const runtime = this.runtime.get(request.nodeId) ?? freshRuntime(nowMs);
    runtime.opsPerSecond = request.opsPerSecond;
    runtime.p99LatencyMs = request.p99LatencyMs;
    // Bounded by what the manager knows: a node cannot fill the map with names.
    runtime.unreachablePeers = request.unreachablePeers.filter((peer) => this.nodes.has(peer)).slice(0, this.nodes.size);
    this.runtime.set(request.nodeId, runtime);
    if (request.partial) {
      // Only what changed since the node's last answered heartbeat (`heartbeat-report.ts`):
      // without a full report to apply it to, it is ignored and the answer asks for one.
      if (!runtime.reported) return transition;
      for (const status of request.replicas) runtime.replicas.set(status.shardId, status);
      for (const shardId of request.removedShardIds) runtime.replicas.delete(shardId);
    } else {
      runtime.reported = true;
      runtime.replicas = new Map(request.replicas.map((status) => [status.shardId, status]));
    }
    for (const status of request.replicas) this.ingestReport(request.nodeId, status, nowMs);
    return transition;
  }

  /** True once the node sent a full report since this manager started: its partial heartbeats apply. */
  hasFullReport(nodeId: string): boolean {
    return this.runtime.get(nodeId)?.reported === true;
  }

  /**
   * Applies one replica report to the map. A leader's report is authoritative for
   * membership when its (term, epoch) is at least the map's: one leader per term
   * (Raft §5.2), and within a term the epoch only grows. A follower that knows a
   * leader of a newer term moves the map's leader (not its membership) there.
   */
  private ingestReport(nodeId: string, status: ReplicaStatus, nowMs: number): void {
    const shard = this.shards[status.shardId];
    if (shard === undefined) return;
    // A leader of a newer term than a known one: an election or a transfer just happened.
    if (shard.term > 0 && status.term > shard.term && (status.role === ReplicaRole.REPLICA_ROLE_LEADER || status.leaderReplicaId !== 0)) {
      this.leaderChangedAtMs.set(shard.shardId, nowMs);
    }
    if (status.role === ReplicaRole.REPLICA_ROLE_LEADER) {
      const newer = status.term > shard.term || (status.term === shard.term && status.epoch >= shard.epoch);
      if (!newer || !status.members.some((member) => member.replicaId === status.replicaId)) return;
      const members = status.members.map((member) => ({ ...member }));
      if (shard.leaderNodeId !== nodeId || shard.term !== status.term || shard.epoch !== status.epoch
        || JSON.stringify(members) !== JSON.stringify(shard.members)) {
        this.dirty = true;
      }
      shard.members = members;
      shard.epoch = status.epoch;
      shard.leaderNodeId = nodeId;
      shard.term = status.term;
      shard.commitIndex = status.commitIndex;
      return;
    }
    if (status.term > shard.term && status.leaderReplicaId !== 0) {
      const leader = shard.members.find((member) => member.replicaId === status.leaderReplicaId);
      if (leader === undefined) return;
      shard.leaderNodeId = leader.nodeId;
      shard.term = status.term;
      this.dirty = true;
    }
  }

  /** Recomputes every node's health; returns the changes. */
  updateHealth(nowMs: number, suspectAfterMs: number, downAfterMs: number): HealthTransition[] {
    const transitions: HealthTransition[] = [];
    for (const [nodeId, runtime] of this.runtime) {
      const health = healthAfterSilence(nowMs - runtime.lastSeenMs, suspectAfterMs, downAfterMs);
      if (health !== runtime.health) {
        transitions.push({ nodeId, from: runtime.health, to: health });
        runtime.health = health;
        // Commands for a down node are stale by the time it returns; the scheduler re-decides.
        if (health === 'down') this.outbox.delete(nodeId);
      }
    }
    return transitions;
  }

  /**
   * Makes the initial placement once `bootstrapNodes` live nodes have reported:
   * K replicas per shard on distinct nodes, replicas and first leaders spread
   * evenly. Refuses (returns a reason) when a node already hosts replicas, which
   * would mean they belong to a cluster this manager has no state for.
   */
  maybeBootstrap(bootstrapNodes: number): { placed: boolean; refused?: string } {
    if (this.bootstrapped) return { placed: false };
    const ready = [...this.runtime.entries()]
      .filter(([, runtime]) => runtime.health === 'up' && runtime.reported)
      .map(([nodeId]) => nodeId)
      .sort(compareIds);
    if (ready.length < Math.max(bootstrapNodes, this.replicationFactor)) return { placed: false };
    const foreign = ready.find((nodeId) => (this.runtime.get(nodeId)?.replicas.size ?? 0) > 0);
    if (foreign !== undefined) return { placed: false, refused: `node ${foreign} already hosts replicas` };
    const placements = placeInitialReplicas(ready, this.shardCount, this.replicationFactor);
    placements.forEach((placement, shardId) => {
      const shard = this.shards[shardId];
      if (shard === undefined) return;
      shard.members = placement.nodeIds.map((nodeId) => ({ replicaId: this.nextReplicaId++, nodeId, learner: false }));
      shard.epoch = 1;
      shard.firstLeaderNodeId = placement.leaderNodeId;
    });
    this.bootstrapped = true;
    this.dirty = true;
    return { placed: true };
  }

  /** Runs one scheduling round and queues its commands; returns its events to log. */
  runScheduler(nowMs: number, config: SchedulerConfig): SchedulerEvent[] {
    if (!this.bootstrapped) return [];
    const output = schedule({
      nowMs,
      config,
      nextReplicaId: this.nextReplicaId,
      nodes: [...this.runtime.entries()].map(([nodeId, runtime]) => ({
        nodeId, health: runtime.health, reported: runtime.reported, replicas: runtime.replicas,
        silentMs: nowMs - runtime.lastSeenMs, draining: this.nodes.get(nodeId)?.draining === true,
      })),
      shards: this.shards,
      tasks: this.tasks,
      recent: this.recent,
      leaderChangedAtMs: this.leaderChangedAtMs,
    });
    if (output.nextReplicaId !== this.nextReplicaId || JSON.stringify(output.tasks) !== JSON.stringify(this.tasks)) {
      this.dirty = true;
    }
    this.nextReplicaId = output.nextReplicaId;
    this.tasks = output.tasks;
    this.recent = output.recent;
    for (const { nodeId, key, command } of output.commands) {
      let queue = this.outbox.get(nodeId);
      if (queue === undefined) {
        queue = new Map();
        this.outbox.set(nodeId, queue);
      }
      queue.delete(key);
      queue.set(key, command);
    }
    return output.events;
  }

  /**
   * Starts draining `nodeId` (or stops, with `cancel`): see `drain.ts`. Returns why it was
   * refused — `unknown` for a node never registered, else the reason — or undefined.
   */
  setDraining(nodeId: string, draining: boolean): { refused: 'unknown' | 'precondition'; message: string } | undefined {
    const record = this.nodes.get(nodeId);
    if (record === undefined) return { refused: 'unknown', message: `no node ${nodeId} is known to the manager` };
    if (draining && record.draining !== true) {
      const refusal = drainRefusal(nodeId, this.replicationFactor, [...this.nodes.values()].map((node) => ({
        nodeId: node.nodeId, live: this.runtime.get(node.nodeId)?.health === 'up', draining: node.draining === true,
      })));
      if (refusal !== undefined) return { refused: 'precondition', message: refusal };
    }
    if ((record.draining === true) !== draining) {
      if (draining) record.draining = true;
      else delete record.draining;
      this.dirty = true;
    }
    return undefined;
  }

  /** Removes and returns the commands waiting for `nodeId`, oldest first. */
  takeCommands(nodeId: string): PlacementCommand[] {
    const queue = this.outbox.get(nodeId);
    if (queue === undefined) return [];
    this.outbox.delete(nodeId);
    return [...queue.values()];
  }

  /** Every known node with its health, counts and load, in id order. */
  nodeInfos(): NodeInfo[] {
    const replicaCounts = new Map<string, number>();
    const leaderCounts = new Map<string, number>();
    for (const shard of this.shards) {
      for (const member of shard.members) replicaCounts.set(member.nodeId, (replicaCounts.get(member.nodeId) ?? 0) + 1);
      const leader = this.visibleLeader(shard);
      if (leader !== null) leaderCounts.set(leader, (leaderCounts.get(leader) ?? 0) + 1);
    }
    return [...this.nodes.values()].sort((a, b) => compareIds(a.nodeId, b.nodeId)).map((node) => {
      const runtime = this.runtime.get(node.nodeId);
      let keyCount = 0;
      for (const status of runtime?.replicas.values() ?? []) keyCount += status.keyCount;
      return {
        nodeId: node.nodeId,
        address: node.address,
        health: HEALTH_TO_PROTO[runtime?.health ?? 'down'],
        replicaCount: replicaCounts.get(node.nodeId) ?? 0,
        leaderCount: leaderCounts.get(node.nodeId) ?? 0,
        keyCount,
        opsPerSecond: runtime?.health === 'up' ? runtime.opsPerSecond : 0,
        p99LatencyMs: runtime?.health === 'up' ? runtime.p99LatencyMs : 0,
        metricsPort: node.metricsPort,
        peersUnreachable: runtime?.health === 'up' ? [...runtime.unreachablePeers] : [],
        draining: node.draining === true,
      };
    });
  }

  /** Every shard in the map; the leader is empty when unknown or on a down node. */
  shardInfos(): ShardInfo[] {
    return this.shards.map((shard) => ({
      shardId: shard.shardId,
      epoch: shard.epoch,
      replicas: shard.members.map((member) => ({ ...member })),
      leaderNodeId: this.visibleLeader(shard) ?? '',
      term: shard.term,
      commitIndex: shard.commitIndex,
    }));
  }

  /** Number of shards whose leader is known and not on a down node. */
  shardsWithLeader(): number {
    return this.shards.filter((shard) => this.visibleLeader(shard) !== null).length;
  }

  /** Node ids by health, for metrics. */
  healthCounts(): Record<Health, number> {
    const counts: Record<Health, number> = { up: 0, suspect: 0, down: 0 };
    for (const runtime of this.runtime.values()) counts[runtime.health] += 1;
    return counts;
  }

  /** Every known node's health, for metrics. */
  nodeHealths(): [string, Health][] {
    return [...this.runtime.entries()].map(([nodeId, runtime]) => [nodeId, runtime.health]);
  }

  /** The running moves, for metrics (read-only view; the scheduler replaces the list each round). */
  moveTasks(): readonly MoveTask[] {
    return this.tasks;
  }

  /**
   * The leader the map shows: one its own node reported as leader of this term since that node
   * and this manager (re)started, on a node that is not down. The persisted map still names the
   * leaders from before a restart, and a follower's report may name a leader that has not spoken
   * yet: neither is shown, so a client, `status --wait`, the ready line and `/readyz` never trust a
   * leader nobody has vouched for (it appears with the leader's next heartbeat, sent early on a
   * leadership change).
   */
  private visibleLeader(shard: ShardRecord): string | null {
    if (shard.leaderNodeId === null) return null;
    const runtime = this.runtime.get(shard.leaderNodeId);
    if (runtime === undefined || runtime.health === 'down') return null;
    const status = runtime.replicas.get(shard.shardId);
    return status?.role === ReplicaRole.REPLICA_ROLE_LEADER && status.term === shard.term ? shard.leaderNodeId : null;
  }

  private markSeen(nodeId: string, nowMs: number): HealthTransition | null {
    const runtime = this.runtime.get(nodeId);
    if (runtime === undefined) {
      this.runtime.set(nodeId, freshRuntime(nowMs));
      return null;
    }
    runtime.lastSeenMs = nowMs;
    if (runtime.health === 'up') return null;
    const transition: HealthTransition = { nodeId, from: runtime.health, to: 'up' };
    runtime.health = 'up';
    return transition;
  }
}

function freshRuntime(nowMs: number): NodeRuntime {
  return { lastSeenMs: nowMs, health: 'up', reported: false, replicas: new Map(), opsPerSecond: 0, p99LatencyMs: 0, unreachablePeers: [] };
}
