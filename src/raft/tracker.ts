/**
 * The leader's and candidate's book-keeping of the group (etcd `tracker/`):
 * membership, each member's {@link Progress}, and the votes of an election.
 */
import { Progress } from './progress.js';
import { committedIndex, voteResult, VoteResult } from './quorum.js';
import type { ConfState, ReplicaId } from './types.js';

/** Membership plus per-member progress and votes. Members are visited in id order (deterministic). */
export class ProgressTracker {
  /** Voting members, sorted. */
  voters: ReplicaId[] = [];
  /** Non-voting members, sorted. Disjoint from `voters`. */
  learners: ReplicaId[] = [];
  /** Every member, sorted: the visiting order for broadcasts. */
  members: ReplicaId[] = [];
  readonly progress = new Map<ReplicaId, Progress>();
  readonly votes = new Map<ReplicaId, boolean>();
  private readonly scratch: number[] = [];

  constructor(readonly maxInflight: number) {}

  /** The membership as plain data. */
  confState(): ConfState {
    return { voters: [...this.voters], learners: [...this.learners] };
  }

  /** True when `id` is a voter. */
  isVoter(id: ReplicaId): boolean {
    return this.voters.includes(id);
  }

  /** Adds or converts a member; `match`/`next` seed a new member's progress. */
  setMember(id: ReplicaId, isLearner: boolean, match: number, next: number): void {
    const existing = this.progress.get(id);
    if (existing === undefined) {
      const progress = new Progress(match, next, this.maxInflight, isLearner);
      // A new member counts as active so CheckQuorum does not depose the leader at once.
      progress.recentActive = true;
      this.progress.set(id, progress);
    } else {
      existing.isLearner = isLearner;
    }
    this.rebuildLists();
  }

  /** Removes a member entirely. */
  removeMember(id: ReplicaId): void {
    this.progress.delete(id);
    this.votes.delete(id);
    this.rebuildLists();
  }

  private rebuildLists(): void {
    const voters: ReplicaId[] = [];
    const learners: ReplicaId[] = [];
    for (const [id, progress] of this.progress) (progress.isLearner ? learners : voters).push(id);
    voters.sort((a, b) => a - b);
    learners.sort((a, b) => a - b);
    this.voters = voters;
    this.learners = learners;
    this.members = [...voters, ...learners].sort((a, b) => a - b);
  }

  /** Highest index stored on a majority of voters (Raft §5.3). */
  committed(): number {
    const scratch = this.scratch;
    scratch.length = 0;
    for (const id of this.voters) scratch.push((this.progress.get(id) as Progress).match);
    return committedIndex(scratch);
  }

  /** Records `id`'s vote; a second vote from the same member is ignored. */
  recordVote(id: ReplicaId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** The election's outcome so far, counting voters only. */
  tallyVotes(): VoteResult {
    return voteResult(this.voters, this.votes);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /**
   * CheckQuorum (Raft thesis §6.2): true when a majority of voters, counting
   * `self`, were recently active.
   */
  quorumActive(self: ReplicaId): boolean {
    const active = new Map<ReplicaId, boolean>();
    for (const id of this.voters) {
      const progress = this.progress.get(id) as Progress;
      active.set(id, id === self || progress.recentActive);
    }
    return voteResult(this.voters, active) === VoteResult.Won;
  }
}
