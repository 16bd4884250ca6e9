/**
 * Figure-8 schedules (Raft §5.4.2, Figure 8): a partition that follows the leader.
 *
 * In Figure 8, S1 (term 2) writes index 2 on S1 and S2 only; S5 (term 3) writes another
 * entry at index 2 on itself only; S1 returns in term 4 and copies its term-2 entry to
 * S3, a majority — which does not make it committed: S5 may still win an election
 * (its last term, 3, beats theirs) and overwrite it. A leader commits an entry of an
 * earlier term only indirectly, with one of its own term.
 *
 * This schedule plays that pattern over and over: soon after a new leader appears
 * (0 to 4 ticks, drawn), it is cut off together with a random minority of the voters
 * (or it crashes), and everyone else — the previous minority included — is joined
 * again. Leaders of successive terms thus write entries to different minorities, and a
 * leader that returns copies an old term's entries to a majority before its own no-op
 * reaches one, which is the moment a leader that counts replicas would commit them.
 */
import type { ReplicaId, SeededRandom } from '../../../src/raft/index.js';
import type { TestReplica } from './replica.js';

/** What the schedule does at a tick. */
export interface FigureEightMove {
  /** The new partition: replica → side. Replicas not listed are on side 0. */
  groups: Map<ReplicaId, number>;
  /** A leader to crash instead of only cutting it off. */
  crash?: TestReplica;
}

/** Ticks without any leader after which the schedule joins everyone again. */
const HEAL_AFTER_TICKS = 40;

export class FigureEightSchedule {
  /** The leader cut off last: it may still believe it leads until CheckQuorum. */
  private cutOff: ReplicaId | undefined;
  /** The leader being watched, and when it was first seen. */
  private watched: { id: ReplicaId; term: number; seenAt: number; cutAfterTicks: number } | undefined;
  private lastMoveAt = 0;

  constructor(private readonly rng: SeededRandom) {}

  private pick<T>(values: readonly T[]): T {
    return values[this.rng.nextInt(values.length)] as T;
  }

  /**
   * Called once per tick of the chaos phase with the live replicas. Returns a move, or
   * undefined to leave the network as it is.
   */
  tick(now: number, replicas: readonly TestReplica[]): FigureEightMove | undefined {
    let leader: TestReplica | undefined;
    for (const replica of replicas) {
      if (!replica.alive || !replica.node.isLeader() || replica.id === this.cutOff) continue;
      if (leader === undefined || replica.node.term() > leader.node.term()) leader = replica;
    }
    if (leader === undefined) {
      if (now - this.lastMoveAt < HEAL_AFTER_TICKS) return undefined;
      // The majority side could not elect anyone (its logs may be behind the cut-off
      // leader's): join everyone again and start over.
      this.lastMoveAt = now;
      this.cutOff = undefined;
      return { groups: new Map() };
    }
    const term = leader.node.term();
    if (this.watched === undefined || this.watched.id !== leader.id || this.watched.term !== term) {
      this.watched = { id: leader.id, term, seenAt: now, cutAfterTicks: this.pick([0, 0, 1, 2, 4]) };
    }
    if (now - this.watched.seenAt < this.watched.cutAfterTicks) return undefined;
    // Cut the leader off with up to a quorum minus two of the other voters: a minority.
    const others = leader.confState.voters.filter((id) => id !== leader.id);
    const quorum = Math.floor((others.length + 1) / 2) + 1;
    const companions = this.rng.nextInt(Math.max(1, quorum - 1));
    const groups = new Map<ReplicaId, number>([[leader.id, 1]]);
    for (let i = 0; i < companions && others.length > 0; i++) {
      const [companion] = others.splice(this.rng.nextInt(others.length), 1);
      if (companion !== undefined) groups.set(companion, 1);
    }
    this.cutOff = leader.id;
    this.watched = undefined;
    this.lastMoveAt = now;
    return this.rng.nextInt(3) === 0 ? { groups, crash: leader } : { groups };
  }
}
