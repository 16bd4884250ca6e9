/**
 * The manager's Prometheus metrics and readiness rule, served by the shared endpoint
 * (`src/common/metrics-server.ts`): node health, the shard map's leader coverage and
 * replication, and re-replication progress (moves started, finished, in flight).
 *
 * Map and health are sampled from the model at scrape time; moves and health
 * transitions are counted as they happen, because a move can start and finish
 * between two scrapes.
 * @internal
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Readiness } from '../common/index.js';
import type { ClusterState, HealthTransition } from './cluster-state.js';
import type { Health, MoveReason, MoveTask } from './types.js';

const HEALTHS: readonly Health[] = ['up', 'suspect', 'down'];

/** A move's identity across scheduler rounds: one move per shard, and `to` is never reused. */
function moveKey(task: MoveTask): string {
  return `${task.shardId}/${task.to.replicaId}`;
}

/** The manager's registry and event counters. */
export class ManagerMetrics {
  /** Everything `/metrics` serves. */
  readonly registry = new Registry();
  private readonly transitions = new Counter({
    name: 'kvstore_manager_node_health_transitions_total',
    help: 'Node health changes the manager decided (to suspect, to down, back to up)',
    labelNames: ['to'],
    registers: [this.registry],
  });
  private readonly movesStarted = new Counter({
    name: 'kvstore_manager_moves_started_total',
    help: 'Replica moves started: replace-down is re-replication after a node went down',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  private readonly movesFinished = new Counter({
    name: 'kvstore_manager_moves_finished_total',
    help: 'Replica moves that ended (done or aborted; the log says which)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  /** Moves seen at the last {@link observeMoves}, by key. */
  private moves = new Map<string, MoveReason>();

  /** Registers the gauges sampled from `state` at each scrape. */
  constructor(private readonly state: ClusterState) {
    collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    for (const reason of ['replace-down', 'add-missing', 'rebalance'] as const) {
      this.movesStarted.inc({ reason }, 0);
      this.movesFinished.inc({ reason }, 0);
    }
    for (const to of HEALTHS) this.transitions.inc({ to }, 0);
    new Gauge({
      name: 'kvstore_manager_nodes', help: 'Known storage nodes by health', labelNames: ['health'], registers,
      collect() {
        for (const [health, count] of Object.entries(state.healthCounts())) this.set({ health }, count);
      },
    });
    new Gauge({
      name: 'kvstore_manager_node_health', help: '1 for the health each known node is in (labels node, health), 0 for the others',
      labelNames: ['node', 'health'], registers,
      collect() {
        this.reset();
        for (const [nodeId, health] of state.nodeHealths()) {
          for (const candidate of HEALTHS) this.set({ node: nodeId, health: candidate }, candidate === health ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'kvstore_manager_shards', help: 'Shards in the cluster', registers,
      collect() { this.set(state.shardCount); },
    });
    new Gauge({
      name: 'kvstore_manager_shards_with_leader', help: 'Shards whose leader is known and not on a down node', registers,
      collect() { this.set(state.shardsWithLeader()); },
    });
    new Gauge({
      name: 'kvstore_manager_shards_under_replicated',
      help: 'Shards with fewer than K voters on nodes that are up (re-replication pending or running)', registers,
      collect() { this.set(underReplicatedShards(state)); },
    });
    new Gauge({
      name: 'kvstore_manager_moves_in_flight', help: 'Replica moves running, by reason (replace-down = re-replication)',
      labelNames: ['reason'], registers,
      collect() {
        const counts: Record<MoveReason, number> = { 'replace-down': 0, 'add-missing': 0, rebalance: 0, drain: 0 };
        for (const task of state.moveTasks()) counts[task.reason] += 1;
        for (const [reason, count] of Object.entries(counts)) this.set({ reason }, count);
      },
    });
  }

  /** Counts a node health change. */
  healthChanged(transition: HealthTransition): void {
    this.transitions.inc({ to: transition.to });
  }

  /** Counts moves started and finished since the previous call; call after every scheduler round. */
  observeMoves(tasks: readonly MoveTask[]): void {
    const current = new Map<string, MoveReason>();
    for (const task of tasks) {
      const key = moveKey(task);
      current.set(key, task.reason);
      if (!this.moves.has(key)) this.movesStarted.inc({ reason: task.reason });
    }
    for (const [key, reason] of this.moves) if (!current.has(key)) this.movesFinished.inc({ reason });
    this.moves = current;
  }

  /**
   * Ready once the state is loaded (it is before the endpoint starts) and a majority
   * of the known nodes is up: with fewer, placement and re-replication cannot make progress.
   */
  readiness(): Readiness {
    const counts = this.state.healthCounts();
    const known = counts.up + counts.suspect + counts.down;
    if (known === 0) return { ready: false, reason: 'no storage node has registered' };
    if (counts.up * 2 <= known) return { ready: false, reason: `${counts.up} of ${known} known nodes up, need a majority` };
    return { ready: true };
  }
}

/** Shards with fewer than K voters on `up` nodes. */
function underReplicatedShards(state: ClusterState): number {
  if (!state.isBootstrapped) return 0;
  const up = new Set<string>();
  for (const [nodeId, health] of state.nodeHealths()) if (health === 'up') up.add(nodeId);
  let count = 0;
  for (const shard of state.shardInfos()) {
    const live = shard.replicas.filter((member) => !member.learner && up.has(member.nodeId)).length;
    if (live < state.replicationFactor) count += 1;
  }
  return count;
}
