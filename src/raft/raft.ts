/**
 * The Raft state machine (Raft §5, thesis §3–§6; etcd `raft.go`): terms,
 * roles, elections, replication and commit. Pure: it reacts to ticks and
 * messages, and queues outgoing messages and read states for the next Ready.
 */
import { restoreTracker } from './conf-change.js';
import type { ResolvedRaftConfig } from './config.js';
import { assertInvariant } from './errors.js';
import { CAMPAIGN_TRANSFER, EMPTY_BYTES, bytesEqual, newMessage, voteResponseType } from './message.js';
import { RaftLog, entrySize } from './raft-log.js';
import { startReadRound } from './read-index.js';
import { ReadOnly, encodeRoundKey, type ReadRequest } from './read-only.js';
import { broadcastAppend, broadcastHeartbeat } from './replication.js';
import { VoteResult } from './quorum.js';
import { stepLeader } from './step-leader.js';
import { stepCandidate, stepFollower } from './step-follower.js';
import { ProgressTracker } from './tracker.js';
import {
  EntryType,
  MessageType,
  NONE,
  Role,
  type Entry,
  type HardState,
  type Message,
  type ProposeResult,
  type RaftLogger,
  type RandomSource,
  type ReadState,
  type ReplicaId,
} from './types.js';

/** Why a replica campaigns. */
export type CampaignKind = 'pre-election' | 'election' | 'transfer';

/**
 * One replica's Raft state. Fields are internal to src/raft: the outside uses
 * {@link RawNode}. The step functions live in step-leader.ts / step-follower.ts.
 */
export class Raft {
  readonly id: ReplicaId;
  /** Current term (persisted). */
  term = 0;
  /** Whom we voted for in `term` (persisted). */
  vote: ReplicaId = NONE;
  /** The leader we know of in `term`, or NONE. */
  lead: ReplicaId = NONE;
  role: Role = Role.Follower;
  /** True when this replica is a learner in its applied configuration. */
  isLearner = false;
  readonly log: RaftLog;
  readonly tracker: ProgressTracker;
  /** Outgoing messages for the next Ready. */
  messages: Message[] = [];
  /** Reads answered since the last Ready. */
  readStates: ReadState[] = [];
  /** Leadership transfer target, or NONE. Proposals are refused while set. */
  leadTransferee: ReplicaId = NONE;
  /**
   * Index of the latest conf change entry the leader appended (or its last
   * index at election, conservatively). A new one is refused until `applied`
   * reaches it: one membership change at a time (thesis §4.1).
   */
  pendingConfIndex = 0;
  /** Bytes of entries appended by this leader and not yet committed-and-applied. */
  uncommittedBytes = 0;
  /** ReadIndex rounds in flight (leader). */
  readOnly = new ReadOnly();
  /** Reads waiting to start a round: at the next flush, or once this leader committed an entry of its term. */
  readBatch: ReadRequest[] = [];
  /** Next ReadIndex round key; never reused, so a stale ack cannot complete a new round. */
  nextReadKey = 1;
  /** Followers need an append (new entries or commit): sent once per turn by {@link flush}. */
  needsBroadcast = false;

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;

  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  readonly maxSizePerMsg: number;
  readonly maxUncommittedBytes: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly piggyback: boolean;
  readonly random: RandomSource;
  readonly logger: RaftLogger;

  constructor(config: ResolvedRaftConfig) {
    this.id = config.id;
    this.electionTimeout = config.electionTick;
    this.heartbeatTimeout = config.heartbeatTick;
    this.maxSizePerMsg = config.maxSizePerMsg;
    this.maxUncommittedBytes = config.maxUncommittedEntriesBytes;
    this.preVote = config.preVote;
    this.checkQuorum = config.checkQuorum;
    this.piggyback = config.piggyback;
    this.random = config.random;
    this.logger = config.logger;
    this.log = new RaftLog(config.storage, config.maxCommittedBytesPerReady);
    this.tracker = new ProgressTracker(config.maxInflightMsgs);

    const { hardState, confState } = config.storage.initialState();
    restoreTracker(this.tracker, confState, this.log.lastIndex() + 1);
    this.isLearner = this.tracker.progress.get(this.id)?.isLearner ?? false;
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) {
      assertInvariant(
        hardState.commit >= this.log.committed && hardState.commit <= this.log.lastIndex(),
        'hard state commit out of the log range',
        { commit: hardState.commit, firstIndex: this.log.firstIndex(), lastIndex: this.log.lastIndex() },
      );
      this.log.committed = hardState.commit;
      this.term = hardState.term;
      this.vote = hardState.vote;
    }
    if (config.applied > 0) this.log.appliedTo(Math.min(config.applied, this.log.committed));
    this.becomeFollower(this.term, NONE);
    this.logger.info('raft replica started', {
      replica: this.id,
      term: this.term,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      voters: confState.voters,
      learners: confState.learners,
    });
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  // ---- sending -------------------------------------------------------------

  /** Queues `message`; non-vote messages carry the current term, forwarded reads none (local). */
  send(message: Message): void {
    this.messages.push(message);
  }

  /**
   * Work deferred to the end of a turn so that a turn's proposals share one
   * append per follower and a turn's reads share one heartbeat round. Called
   * by RawNode before building a Ready.
   */
  flush(): void {
    if (this.role !== Role.Leader) return;
    if (this.needsBroadcast) {
      this.needsBroadcast = false;
      broadcastAppend(this);
    }
    if (this.readBatch.length > 0 && this.committedEntryInCurrentTerm()) startReadRound(this);
  }

  /** True when there is deferred work for {@link flush}. */
  hasDeferredWork(): boolean {
    return (
      this.role === Role.Leader &&
      (this.needsBroadcast || (this.readBatch.length > 0 && this.committedEntryInCurrentTerm()))
    );
  }

  // ---- reads ---------------------------------------------------------------

  /** Thesis §6.4: a leader may serve reads only once it committed an entry of its own term. */
  committedEntryInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  // ---- proposals -----------------------------------------------------------

  private refuse(reason: 'NOT_LEADER' | 'TRANSFERRING' | 'CONF_CHANGE_PENDING' | 'TOO_LARGE'): ProposeResult {
    return { ok: false, reason, leaderId: this.lead };
  }

  /** Appends a proposal to the leader's log; the hot path, so no message objects. */
  propose(type: EntryType, data: Uint8Array): ProposeResult {
    if (this.role !== Role.Leader || !this.tracker.progress.has(this.id)) return this.refuse('NOT_LEADER');
    if (this.leadTransferee !== NONE) return this.refuse('TRANSFERRING');
    if (type === EntryType.ConfChange) {
      if (this.pendingConfIndex > this.log.applied) return this.refuse('CONF_CHANGE_PENDING');
    }
    const size = data.length;
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + size > this.maxUncommittedBytes) {
      return this.refuse('TOO_LARGE');
    }
    const index = this.log.lastIndex() + 1;
    this.appendEntry({ term: this.term, index, type, data });
    this.uncommittedBytes += size;
    if (type === EntryType.ConfChange) this.pendingConfIndex = index;
    return { ok: true, index, term: this.term };
  }

  /**
   * Appends one entry as leader. The leader's own progress does NOT move here: see
   * {@link onStable}.
   */
  private appendEntry(entry: Entry): void {
    this.log.appendOne(entry);
    this.needsBroadcast = true;
  }

  /**
   * The caller made the log durable through `(index, term)` (`RawNode.advance`).
   *
   * Rule (Raft thesis §10.2.1; etcd acknowledges its own appends the same way, after the
   * write): a leader counts its OWN entries toward commit only once they are durable, like
   * any follower's, whose acknowledgement is sent only after its fsync. A leader may send
   * its appends before its own fsync; this rule is what keeps that safe: the commit index
   * it computes, and so every commit index it sends, covers only entries a quorum holds
   * durably. Counting an unsynced entry would let a one-voter leader tell a learner that
   * an entry is committed, lose the entry in a crash, and write another at its index.
   * {@link maybeCommit} asserts it.
   */
  onStable(index: number, term: number): void {
    this.log.stableTo(index, term);
    if (this.role !== Role.Leader || term !== this.term || this.log.term(index) !== term) return;
    const self = this.tracker.progress.get(this.id);
    if (self === undefined || !self.maybeUpdate(Math.min(index, this.log.stableLastIndex()))) return;
    this.maybeCommit();
  }

  /**
   * Advances the commit index to what a majority of voters store, but only for
   * an entry of this term (Raft §5.4.2). Returns true if it moved.
   */
  maybeCommit(): boolean {
    const self = this.tracker.progress.get(this.id);
    assertInvariant(
      self === undefined || self.match <= this.log.stableLastIndex(),
      'leader counts an entry it has not made durable',
      { replica: this.id, match: self?.match, stableLastIndex: this.log.stableLastIndex() },
    );
    if (!this.log.maybeCommit(this.tracker.committed(), this.term)) return false;
    this.needsBroadcast = true;
    return true;
  }

  /** Called once entries are applied: they no longer count as uncommitted. */
  reduceUncommittedBytes(entries: readonly Entry[]): void {
    if (this.uncommittedBytes === 0) return;
    let bytes = 0;
    for (const entry of entries) bytes += entrySize(entry);
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
  }

  // ---- ticks ---------------------------------------------------------------

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.preVote ? 'pre-election' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.checkQuorumActive();
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === Role.Leader && this.leadTransferee !== NONE) {
        this.logger.info('leadership transfer timed out', { replica: this.id, to: this.leadTransferee });
        this.abortLeaderTransfer();
      }
    }
    if (this.role !== Role.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      const key = this.readOnly.lastKey();
      if (key === undefined) broadcastHeartbeat(this, EMPTY_BYTES, this.piggyback);
      else broadcastHeartbeat(this, encodeRoundKey(key));
    }
  }

  /** CheckQuorum (thesis §6.2): step down unless a majority was heard from recently. */
  private checkQuorumActive(): void {
    if (!this.tracker.quorumActive(this.id)) {
      this.logger.info('stepping down: quorum not active', { replica: this.id, term: this.term });
      this.becomeFollower(this.term, NONE);
      return;
    }
    for (const [id, progress] of this.tracker.progress) if (id !== this.id) progress.recentActive = false;
  }

  // ---- role transitions ----------------------------------------------------

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.random.nextInt(this.electionTimeout);
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.tracker.resetVotes();
    // Our own match is what is durable here: entries still on their way to disk count
    // once `onStable` reports them (the durability rule above).
    const lastIndex = this.log.lastIndex();
    const stableLastIndex = this.log.stableLastIndex();
    for (const [id, progress] of this.tracker.progress) {
      progress.reset(id === this.id ? stableLastIndex : 0, lastIndex + 1, id === this.id);
    }
    this.pendingConfIndex = 0;
    this.uncommittedBytes = 0;
    this.readOnly = new ReadOnly();
    this.readBatch = [];
    this.needsBroadcast = false;
  }

  becomeFollower(term: number, lead: ReplicaId): void {
    const wasLeader = this.role === Role.Leader;
    this.reset(term);
    this.lead = lead;
    this.role = Role.Follower;
    if (wasLeader) this.logger.info('became follower', { replica: this.id, term, leaderId: lead });
  }

  private becomePreCandidate(): void {
    assertInvariant(this.role !== Role.Leader, 'leader cannot become pre-candidate', { replica: this.id });
    // PreVote changes neither term nor vote (thesis §9.6).
    this.tracker.resetVotes();
    this.lead = NONE;
    this.role = Role.PreCandidate;
    this.logger.debug('became pre-candidate', { replica: this.id, term: this.term });
  }

  private becomeCandidate(): void {
    assertInvariant(this.role !== Role.Leader, 'leader cannot become candidate', { replica: this.id });
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
    this.logger.debug('became candidate', { replica: this.id, term: this.term });
  }

  becomeLeader(): void {
    assertInvariant(this.role !== Role.Follower, 'follower cannot become leader directly', { replica: this.id });
    this.reset(this.term);
    this.lead = this.id;
    this.role = Role.Leader;
    this.tracker.progress.get(this.id)?.becomeReplicate();
    // Any unapplied entry might be a conf change: allow no new one before applying them.
    this.pendingConfIndex = this.log.lastIndex();
    // Raft §8 / thesis §6.4: the no-op commits the previous terms' entries and enables reads.
    this.appendEntry({ term: this.term, index: this.log.lastIndex() + 1, type: EntryType.Normal, data: EMPTY_BYTES });
    this.logger.info('became leader', { replica: this.id, term: this.term, lastIndex: this.log.lastIndex() });
  }

  // ---- elections -----------------------------------------------------------

  /** True when this replica may campaign: a voter in its config, not installing a snapshot. */
  promotable(): boolean {
    const progress = this.tracker.progress.get(this.id);
    return progress !== undefined && !progress.isLearner && !this.log.hasPendingSnapshot();
  }

  /** Starts an election unless one is pointless or unsafe. */
  hup(kind: CampaignKind): void {
    if (this.role === Role.Leader) return;
    if (!this.promotable()) {
      this.logger.debug('not campaigning: not promotable', { replica: this.id });
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger.warn('not campaigning: unapplied conf change', { replica: this.id, term: this.term });
      return;
    }
    this.campaign(kind);
  }

  /** A committed membership change is not applied yet: campaigning now could count the wrong configuration. */
  hasUnappliedConfChanges(): boolean {
    if (this.log.applied >= this.log.committed) return false;
    const entries = this.log.slice(this.log.applied + 1, this.log.committed + 1, Number.POSITIVE_INFINITY);
    if (!entries.ok) return false;
    return entries.value.some((entry) => entry.type === EntryType.ConfChange);
  }

  campaign(kind: CampaignKind): void {
    let type: MessageType;
    let term: number;
    if (kind === 'pre-election') {
      this.becomePreCandidate();
      type = MessageType.PreVote;
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      type = MessageType.Vote;
      term = this.term;
    }
    if (this.poll(this.id, true) === VoteResult.Won) {
      if (kind === 'pre-election') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.tracker.voters) {
      if (id === this.id) continue;
      const message = newMessage(type, id, this.id, term);
      message.index = lastIndex;
      message.logTerm = lastTerm;
      if (kind === 'transfer') message.context = CAMPAIGN_TRANSFER;
      this.send(message);
    }
  }

  /** Records a vote and returns the election's state. Only voters' votes count. */
  poll(from: ReplicaId, granted: boolean): VoteResult {
    this.tracker.recordVote(from, granted);
    return this.tracker.tallyVotes();
  }

  /** See {@link RawNode.forgetLeader}. */
  forgetLeader(): void {
    if (this.role !== Role.Follower || this.lead === NONE) return;
    this.logger.info('forgetting leader', { replica: this.id, term: this.term, leader: this.lead });
    this.lead = NONE;
  }

  // ---- step ----------------------------------------------------------------

  /**
   * Handles one message. The term is checked once here (Raft §5.1: a higher
   * term makes us follow it, a lower one is stale), then role-specific
   * handling is in stepLeader / stepCandidate / stepFollower.
   */
  step(message: Message): void {
    if (message.term > this.term) {
      if (message.type === MessageType.Vote || message.type === MessageType.PreVote) {
        const force = bytesEqual(message.context, CAMPAIGN_TRANSFER);
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // Leader lease (thesis §4.2.3): with a live leader, ignore — a removed
          // or partitioned replica cannot disrupt the group.
          this.logger.debug('vote request ignored: leader lease', { replica: this.id, from: message.from });
          return;
        }
      }
      if (message.type === MessageType.PreVote) {
        // Never change term because of a PreVote.
      } else if (message.type === MessageType.PreVoteResponse && !message.reject) {
        // The term rises only if the pre-election is won.
      } else if (
        message.type === MessageType.Append ||
        message.type === MessageType.Heartbeat ||
        message.type === MessageType.Snapshot
      ) {
        this.becomeFollower(message.term, message.from);
      } else {
        this.becomeFollower(message.term, NONE);
      }
    } else if (message.term < this.term && message.term !== 0) {
      if ((this.checkQuorum || this.preVote) && (message.type === MessageType.Heartbeat || message.type === MessageType.Append)) {
        // A stale leader (partitioned, now back) learns our term from this and steps down.
        this.send(newMessage(MessageType.AppendResponse, message.from, this.id, this.term));
      } else if (message.type === MessageType.PreVote) {
        this.rejectVote(message);
      }
      return;
    }

    if ((message.type === MessageType.VoteResponse || message.type === MessageType.PreVoteResponse) && message.reject) {
      this.learnCommitHint(message);
    }

    if (message.type === MessageType.Vote || message.type === MessageType.PreVote) {
      this.handleVoteRequest(message);
      return;
    }
    switch (this.role) {
      case Role.Leader:
        stepLeader(this, message);
        return;
      case Role.Candidate:
      case Role.PreCandidate:
        stepCandidate(this, message);
        return;
      case Role.Follower:
        stepFollower(this, message);
        return;
    }
  }

  /**
   * Raft §5.2/§5.4.1: grant at most one vote per term, only to an up-to-date log.
   * A learner answers too — it may already be a voter in a configuration it has
   * not applied — but its vote counts only where the candidate sees it as a voter.
   */
  private handleVoteRequest(message: Message): void {
    const canVote =
      this.vote === message.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (message.type === MessageType.PreVote && message.term > this.term);
    if (canVote && this.log.isUpToDate(message.index, message.logTerm)) {
      this.send(newMessage(voteResponseType(message.type), message.from, this.id, message.term));
      if (message.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.vote = message.from;
      }
      return;
    }
    this.rejectVote(message);
  }

  /**
   * Refuses a (pre)vote, telling the candidate how far this replica knows the log to be
   * committed, up to the candidate's last index: `commit`, and `logTerm`, the term of
   * that entry here.
   *
   * Why: a replica that applied its own removal never campaigns again, yet a group
   * shrinking from two voters to one may still need it. If the survivor lost, on power
   * loss, its knowledge that the removal committed (and entries after it), it restarts in
   * the old configuration, where it needs the removed replica's vote — which the removed
   * replica must refuse, its log being longer. Without the hint neither ever leads again.
   * With it, the survivor learns the removal committed, applies it and elects itself.
   */
  private rejectVote(message: Message): void {
    const response = newMessage(voteResponseType(message.type), message.from, this.id, this.term);
    response.reject = true;
    response.commit = Math.min(this.log.committed, message.index);
    response.logTerm = this.log.term(response.commit) ?? 0;
    this.send(response);
  }

  /**
   * Takes a refusing voter's commit index (see {@link rejectVote}). Rule: commit to it
   * only when our entry at that index has the voter's term there. A commit index is a
   * fact about the group, not about the sender — that entry is committed, durable on a
   * quorum and in every later leader's log — and by Log Matching equal terms at one
   * index mean our log equals the voter's up to it, so every entry we mark committed is
   * one that committed. This is the same step a follower takes on an append whose
   * commit reaches its matched entries; only the messenger differs.
   */
  private learnCommitHint(message: Message): void {
    if (message.commit <= this.log.committed || message.logTerm === 0) return;
    if (!this.log.matchTerm(message.commit, message.logTerm)) return;
    this.logger.debug('commit learned from a refused vote', { replica: this.id, from: message.from, commit: message.commit });
    this.log.commitTo(message.commit);
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  sendTimeoutNow(to: ReplicaId): void {
    this.send(newMessage(MessageType.TimeoutNow, to, this.id, this.term));
  }

  // ---- snapshots and membership -------------------------------------------

  /**
   * True before this replica learned any membership (created without initial
   * members). It never campaigns and accepts no appends until a snapshot gives
   * it the configuration the log's conf changes build on.
   */
  isUninitialized(): boolean {
    return this.tracker.voters.length === 0 && this.tracker.learners.length === 0;
  }

}
