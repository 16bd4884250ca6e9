/**
 * The simulator's manager: it places every shard's K replicas at the start, then, while
 * faults run, moves replicas the way the real manager does (create on the target → add as
 * learner → wait until it caught up → promote → remove the source → destroy it) and
 * transfers leaderships, by calling the real `RaftHost`'s placement methods on whichever
 * node it believes leads. Its view comes from the replicas it can see, as the real
 * manager's comes from heartbeats: it may be stale, and every command may be repeated.
 */
import { type SeededRandom, Role } from '../../src/raft/index.js';
import type { Replica } from '../../src/node/replica.js';
import type { SimNode } from './sim-node.js';

/** One move in progress. */
interface Move {
  shardId: number;
  to: { nodeId: string; replicaId: number };
  from: { nodeId: string; replicaId: number };
  /** Global ms before which the learner is not promoted (slow promotions keep learners around). */
  promoteAfterMs: number;
  startedMs: number;
}

/** A shard as the manager's map has it: its voters' nodes (clients route by it). */
interface ShardPlacement {
  voters: { nodeId: string; replicaId: number }[];
}

/** Manager settings (drawn per run). */
export interface ManagerOptions {
  shardCount: number;
  replicationFactor: number;
  /** Probability per manager step of starting a move, and of a leadership transfer. */
  moveRate: number;
  transferRate: number;
  /** Longest extra time a caught-up learner waits before promotion (ms). */
  maxPromotionDelayMs: number;
}

/** Places, moves and transfers. */
export class SimManager {
  private readonly placement = new Map<number, ShardPlacement>();
  private readonly moves = new Map<number, Move>();
  /** Replicas removed from their group, to destroy on their node once it runs. */
  private readonly toDestroy: { nodeId: string; shardId: number; replicaId: number }[] = [];
  private nextReplicaId = 1;
  /** Counters for reports. */
  readonly stats = { moves: 0, movesDone: 0, transfers: 0 };

  constructor(
    private readonly nodes: ReadonlyMap<string, SimNode>,
    private readonly random: SeededRandom,
    private readonly options: ManagerOptions,
  ) {
    const ids = [...nodes.keys()];
    for (let shardId = 0; shardId < options.shardCount; shardId++) {
      const voters = Array.from({ length: options.replicationFactor }, (_, i) => ({
        nodeId: ids[(shardId + i) % ids.length] as string,
        replicaId: this.nextReplicaId++,
      }));
      this.placement.set(shardId, { voters });
    }
  }

  /** Nodes of the shard's voters, as the map says. */
  nodesOf(shardId: number): string[] {
    return this.placement.get(shardId)?.voters.map((voter) => voter.nodeId) ?? [];
  }

  /** Creates every initial replica on its node (idempotent; repeated until all exist). Returns true when done. */
  bootstrap(): boolean {
    let done = true;
    for (const [shardId, shard] of this.placement) {
      for (const [index, voter] of shard.voters.entries()) {
        const host = this.nodes.get(voter.nodeId)?.host;
        if (host === undefined) {
          done = false;
          continue;
        }
        if (host.replica(shardId) !== undefined) continue;
        host.createReplica({ shardId, replicaId: voter.replicaId, initialMembers: shard.voters, campaign: index === 0 });
      }
    }
    return done;
  }

  /** The leader replica of a shard among running, unpaused nodes (highest term), with its node. */
  leaderOf(shardId: number): { node: SimNode; replica: Replica } | undefined {
    let best: { node: SimNode; replica: Replica } | undefined;
    for (const node of this.nodes.values()) {
      if (!node.up || node.paused) continue;
      const replica = node.host?.replica(shardId);
      if (replica === undefined || replica.removed || replica.rawNode.role() !== Role.Leader) continue;
      if (best === undefined || replica.rawNode.term() > best.replica.rawNode.term()) best = { node, replica };
    }
    return best;
  }

  /** One manager step: advance moves, maybe start one or transfer a leader, destroy removed replicas. */
  step(nowMs: number, chaos: boolean): void {
    for (const move of [...this.moves.values()]) this.advance(move, nowMs);
    this.destroyRemoved();
    this.refreshPlacement();
    if (!chaos) return;
    const shardId = this.random.nextInt(this.options.shardCount);
    if (this.chance(this.options.moveRate) && !this.moves.has(shardId)) this.startMove(shardId, nowMs);
    else if (this.chance(this.options.transferRate)) this.transfer(shardId);
  }

  /** True when no move is in flight. */
  get settled(): boolean {
    return this.moves.size === 0;
  }

  private chance(probability: number): boolean {
    return probability > 0 && this.random.nextInt(1_000_000) < probability * 1_000_000;
  }

  private startMove(shardId: number, nowMs: number): void {
    const leader = this.leaderOf(shardId);
    if (leader === undefined) return;
    const members = leader.replica.members();
    if (members.some((member) => member.learner)) return;
    const hosting = new Set(members.map((member) => member.nodeId));
    const targets = [...this.nodes.values()].filter((node) => !hosting.has(node.nodeId) && node.host?.replica(shardId) === undefined);
    const sources = members.filter((member) => !member.learner);
    if (targets.length === 0 || sources.length === 0) return;
    const target = targets[this.random.nextInt(targets.length)] as SimNode;
    const source = sources[this.random.nextInt(sources.length)] as (typeof sources)[number];
    this.moves.set(shardId, {
      shardId,
      to: { nodeId: target.nodeId, replicaId: this.nextReplicaId++ },
      from: { nodeId: source.nodeId, replicaId: source.replicaId },
      promoteAfterMs: 0,
      startedMs: nowMs,
    });
    this.stats.moves += 1;
  }

  /** One step of a move, from what the leader shows now (as `advanceMove` in src/manager). */
  private advance(move: Move, nowMs: number): void {
    const leader = this.leaderOf(move.shardId);
    if (leader === undefined) return;
    const { replica, node } = leader;
    const host = node.host;
    if (host === undefined) return;
    const { voters, learners } = replica.confState;
    const target = move.to;
    if (!voters.includes(target.replicaId) && !learners.includes(target.replicaId)) {
      if (nowMs - move.startedMs > 20_000) {
        this.moves.delete(move.shardId); // gave up before the target joined
        return;
      }
      const targetHost = this.nodes.get(target.nodeId)?.host;
      if (targetHost === undefined || this.nodes.get(target.nodeId)?.paused === true) return;
      if (targetHost.replica(move.shardId) === undefined) {
        targetHost.createReplica({ shardId: move.shardId, replicaId: target.replicaId, initialMembers: [], campaign: false });
      }
      host.addLearner(move.shardId, target.replicaId, target.nodeId);
      return;
    }
    if (learners.includes(target.replicaId)) {
      const match = replica.rawNode.status().progress?.get(target.replicaId)?.match ?? 0;
      if (match === 0 || match + 5 < replica.rawNode.commitIndex()) return;
      if (move.promoteAfterMs === 0) move.promoteAfterMs = nowMs + this.random.nextInt(this.options.maxPromotionDelayMs + 1);
      if (nowMs < move.promoteAfterMs) return;
      host.promoteLearner(move.shardId, target.replicaId);
      return;
    }
    if (voters.includes(move.from.replicaId) || learners.includes(move.from.replicaId)) {
      host.removeMember(move.shardId, move.from.replicaId); // a leader asked to remove itself hands off first
      return;
    }
    this.moves.delete(move.shardId);
    this.stats.movesDone += 1;
    this.toDestroy.push({ nodeId: move.from.nodeId, shardId: move.shardId, replicaId: move.from.replicaId });
  }

  private transfer(shardId: number): void {
    const leader = this.leaderOf(shardId);
    if (leader === undefined) return;
    const others = leader.replica.confState.voters.filter((id) => id !== leader.replica.replicaId);
    if (others.length === 0) return;
    leader.node.host?.transferLeader(shardId, others[this.random.nextInt(others.length)] as number);
    this.stats.transfers += 1;
  }

  private destroyRemoved(): void {
    for (let i = this.toDestroy.length - 1; i >= 0; i--) {
      const item = this.toDestroy[i] as (typeof this.toDestroy)[number];
      const node = this.nodes.get(item.nodeId);
      if (node?.host === undefined || node.paused) continue;
      node.host.destroyReplica(item.shardId, item.replicaId);
      this.toDestroy.splice(i, 1);
    }
  }

  /** The map follows the leaders' applied configurations. */
  private refreshPlacement(): void {
    for (const shardId of this.placement.keys()) {
      const leader = this.leaderOf(shardId);
      if (leader === undefined) continue;
      const voters = leader.replica.members().filter((member) => !member.learner && member.nodeId !== '');
      if (voters.length > 0) this.placement.set(shardId, { voters: voters.map(({ nodeId, replicaId }) => ({ nodeId, replicaId })) });
    }
  }
}
