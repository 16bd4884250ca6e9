/**
 * The Raft core's public face (etcd `rawnode.go`): a synchronous, pure state
 * machine driven by `tick`/`step`/`propose`/`readIndex` and drained through
 * `ready()`/`advance()`. No timers, no I/O, no promises.
 */
import { encodeConfChange } from './conf-change.js';
import { resolveConfig, type RaftConfig } from './config.js';
import { RaftInvariantError } from './errors.js';
import { applyConfChange } from './membership.js';
import { newMessage } from './message.js';
import { Raft } from './raft.js';
import { readIndex } from './read-index.js';
import {
  EntryType,
  MessageType,
  Role,
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type ProgressStatus,
  type ProposeResult,
  type RaftStatus,
  type ReadState,
  type Ready,
  type ReplicaId,
  type SoftState,
} from './types.js';

/** Message types the caller must never feed in from the network. */
const LOCAL_ONLY = new Set<MessageType>([MessageType.Propose, MessageType.SnapshotStatus, MessageType.Unreachable]);

/**
 * What may leave while a Ready is still being persisted ({@link RawNode.takeSendable}):
 * messages that acknowledge nothing written since the last durable Ready. A leader's
 * heartbeats and appends (its commit index counts only durable entries: `Raft.onStable`),
 * a follower's heartbeat answers, and forwarded reads. Never an append's acknowledgement,
 * a vote, a snapshot or a TimeoutNow.
 */
const SENDABLE_BEFORE_ADVANCE = new Set<MessageType>([
  MessageType.Heartbeat,
  MessageType.HeartbeatResponse,
  MessageType.Append,
  MessageType.ReadIndex,
  MessageType.ReadIndexResponse,
]);

/** Response types, accepted only from current members. */
const RESPONSES = new Set<MessageType>([
  MessageType.AppendResponse,
  MessageType.VoteResponse,
  MessageType.PreVoteResponse,
  MessageType.HeartbeatResponse,
]);

/**
 * One replica of one Raft group. Drive it from a single loop:
 *
 * ```
 * node.tick() / node.step(msg) / node.propose(data) / node.readIndex(ctx)
 * if (node.hasReady()) { const rd = node.ready(); persist; send; apply; node.advance(rd); }
 * ```
 *
 * The Ready contract is documented on {@link Ready}: persist, then send, then
 * apply, then advance. Calling `ready()` twice without `advance()` throws.
 */
export class RawNode {
  private readonly raft: Raft;
  private previousSoftState: SoftState;
  private previousHardState: HardState;
  /** The term of the last hard state the caller made durable (advanced): what a message sent early may carry. */
  private durableTerm: number;
  private awaitingAdvance = false;

  constructor(config: RaftConfig) {
    this.raft = new Raft(resolveConfig(config));
    this.previousSoftState = this.softState();
    this.previousHardState = this.raft.hardState();
    this.durableTerm = this.previousHardState.term;
  }

  /** Advances logical time one tick (elections, heartbeats, CheckQuorum). */
  tick(): void {
    this.raft.tick();
  }

  /** Campaigns now (bootstrap leader placement, tests); skips nothing but the timeout. */
  campaign(): void {
    this.raft.hup(this.raft.preVote ? 'pre-election' : 'election');
  }

  /**
   * Forgets a follower's leader (etcd `ForgetLeader`): it stays a leaderless follower in its
   * term, without campaigning, so it grants (pre-)votes at once instead of ignoring them under
   * the leader lease for the rest of an election timeout. It follows the leader again on its
   * next message, and campaigns on its own election timeout as before. For a host that has
   * strong reason to think the leader dead (its connection broke) and that a successor should
   * be elected now. The host MUST NOT call it while it still owes the leader anything: with
   * lease reads, a follower must not help elect another leader while that leader's lease may
   * rest on it. A no-op unless follower with a known leader.
   */
  forgetLeader(): void {
    this.raft.forgetLeader();
  }

  /**
   * Feeds a message received from a peer. Local-only types and responses from
   * non-members are ignored, and so is a heartbeat whose commit index lies beyond
   * this replica's log (a misbehaving peer must not crash the replica: committing
   * past the log is a broken invariant). A leader never sends one: it tells a
   * follower at most the match index that follower acknowledged. The node checks
   * every message before it gets here (`src/node/inbound-gate.ts`); this check is
   * the one that depends on the log as it is when the message is stepped.
   */
  step(message: Message): void {
    if (LOCAL_ONLY.has(message.type)) {
      this.raft.logger.debug('ignored local-only message from the network', { replica: this.raft.id, type: message.type });
      return;
    }
    if (RESPONSES.has(message.type) && !this.raft.tracker.progress.has(message.from)) return;
    if (message.type === MessageType.Heartbeat && message.term >= this.raft.term && message.commit > this.raft.log.lastIndex()) {
      this.raft.logger.warn('heartbeat ignored: commit beyond the log', {
        replica: this.raft.id, from: message.from, commit: message.commit, lastIndex: this.raft.log.lastIndex(),
      });
      return;
    }
    this.raft.step(message);
  }

  /** Proposes application data; only the leader accepts (no forwarding). */
  propose(data: Uint8Array): ProposeResult {
    return this.raft.propose(EntryType.Normal, data);
  }

  /**
   * Proposes a membership change; refused with `CONF_CHANGE_PENDING` while an
   * earlier one is not yet applied (one at a time, thesis §4.1).
   */
  proposeConfChange(change: ConfChange): ProposeResult {
    return this.raft.propose(EntryType.ConfChange, encodeConfChange(change));
  }

  /**
   * Applies a committed conf change. The caller MUST call this when it applies
   * the ConfChange entry, in log order, and record the returned ConfState with
   * its next snapshot.
   */
  applyConfChange(change: ConfChange): ConfState {
    return applyConfChange(this.raft, change);
  }

  /**
   * Asks for leadership to move to `to` (thesis §3.10). Forwarded to the
   * leader by a follower; proposals are refused until it completes or an
   * election timeout passes.
   */
  transferLeader(to: ReplicaId): void {
    const message = newMessage(MessageType.TransferLeader, this.raft.id, to, 0);
    this.raft.step(message);
  }

  /**
   * Requests a linearizable read (thesis §6.4). The answer arrives as a
   * {@link ReadState} with the same `context` in a later Ready — or never, if
   * leadership is lost: the caller times out and retries.
   */
  readIndex(context: Uint8Array): void {
    readIndex(this.raft, { from: this.raft.id, context });
  }

  /** The caller could not deliver messages to `id`: the leader falls back to probing it. */
  reportUnreachable(id: ReplicaId): void {
    this.raft.step(newMessage(MessageType.Unreachable, this.raft.id, id, 0));
  }

  /** Outcome of sending a snapshot to `id`; the leader resumes appends (or retries) afterwards. */
  reportSnapshot(id: ReplicaId, status: 'finish' | 'failure'): void {
    const message = newMessage(MessageType.SnapshotStatus, this.raft.id, id, 0);
    message.reject = status === 'failure';
    this.raft.step(message);
  }

  private softState(): SoftState {
    return { leaderId: this.raft.lead, role: this.raft.role };
  }

  private hardStateChanged(hardState: HardState): boolean {
    const previous = this.previousHardState;
    return hardState.term !== previous.term || hardState.vote !== previous.vote || hardState.commit !== previous.commit;
  }

  /** True when a Ready has something to do. Never true between `ready()` and `advance()`. */
  hasReady(): boolean {
    if (this.awaitingAdvance) return false;
    const raft = this.raft;
    if (raft.hasDeferredWork()) return true;
    if (raft.messages.length > 0 || raft.readStates.length > 0) return true;
    if (raft.log.unstable.length > 0 || raft.log.hasPendingSnapshot() || raft.log.hasNextCommittedEntries()) return true;
    if (raft.lead !== this.previousSoftState.leaderId || raft.role !== this.previousSoftState.role) return true;
    return this.hardStateChanged(raft.hardState());
  }

  /**
   * What to persist, send and apply now. See {@link Ready} for the order.
   * @throws RaftInvariantError (`READY_NOT_ADVANCED`) if the previous Ready was not advanced.
   */
  ready(): Ready {
    if (this.awaitingAdvance) {
      throw new RaftInvariantError('ready() called again before advance()', { replica: this.raft.id }, 'READY_NOT_ADVANCED');
    }
    const raft = this.raft;
    raft.flush();
    const log = raft.log;
    const committedEntries = log.nextCommittedEntries();
    const entries = log.unstable.allEntries();
    const ready: Ready = {
      readStates: raft.readStates,
      entries,
      committedEntries,
      messages: raft.messages,
      mustSync: false,
    };
    raft.readStates = [];
    raft.messages = [];
    const softState = this.softState();
    if (softState.leaderId !== this.previousSoftState.leaderId || softState.role !== this.previousSoftState.role) {
      ready.softState = softState;
      this.previousSoftState = softState;
    }
    const hardState = raft.hardState();
    const previous = this.previousHardState;
    if (this.hardStateChanged(hardState)) {
      ready.hardState = hardState;
      this.previousHardState = hardState;
    }
    const snapshot = log.unstable.snapshot;
    if (snapshot !== undefined) ready.snapshot = snapshot;
    ready.mustSync =
      entries.length > 0 || snapshot !== undefined || hardState.term !== previous.term || hardState.vote !== previous.vote;
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted !== undefined) log.applyingTo(lastCommitted.index);
    this.awaitingAdvance = true;
    return ready;
  }

  /**
   * While the last Ready is being persisted (between `ready()` and `advance()`): takes the
   * messages that may leave now — heartbeats, a leader's appends, heartbeat answers and
   * forwarded reads, of the durable term — and every read state; the rest waits for the next
   * Ready. This lets a host whose fsync stalls keep its leaderships and its followers'
   * leaders alive (heartbeats and their answers go on; CheckQuorum sees the answers),
   * without acknowledging anything that is not yet durable.
   */
  takeSendable(): { messages: Message[]; readStates: ReadState[] } {
    const raft = this.raft;
    raft.flush();
    const sendable: Message[] = [];
    const held: Message[] = [];
    for (const message of raft.messages) {
      const ok = SENDABLE_BEFORE_ADVANCE.has(message.type) && (message.term === 0 || message.term === this.durableTerm);
      (ok ? sendable : held).push(message);
    }
    raft.messages = held;
    const readStates = raft.readStates;
    raft.readStates = [];
    return { messages: sendable, readStates };
  }

  /**
   * Tells the core that `ready` was persisted, sent and applied. Entries become
   * stable, the applied index moves, and the next Ready may be taken.
   */
  advance(ready: Ready): void {
    if (!this.awaitingAdvance) {
      throw new RaftInvariantError('advance() without a pending ready()', { replica: this.raft.id }, 'READY_NOT_ADVANCED');
    }
    const raft = this.raft;
    if (ready.hardState !== undefined) this.durableTerm = ready.hardState.term;
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) raft.onStable(lastEntry.index, lastEntry.term);
    if (ready.snapshot !== undefined) {
      raft.log.stableSnapshotTo(ready.snapshot.metadata.index);
      raft.log.appliedTo(ready.snapshot.metadata.index);
    }
    const lastCommitted = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastCommitted !== undefined) {
      raft.log.appliedTo(lastCommitted.index);
      if (raft.role === Role.Leader) raft.reduceUncommittedBytes(ready.committedEntries);
    }
    this.awaitingAdvance = false;
  }

  /** Where this replica stands; progress per member only on the leader. */
  status(): RaftStatus {
    const raft = this.raft;
    const status: RaftStatus = {
      id: raft.id,
      term: raft.term,
      vote: raft.vote,
      commit: raft.log.committed,
      applied: raft.log.applied,
      leaderId: raft.lead,
      role: raft.role,
      leadTransferee: raft.leadTransferee,
      confState: raft.tracker.confState(),
    };
    if (raft.role === Role.Leader) {
      const progress = new Map<ReplicaId, ProgressStatus>();
      for (const id of raft.tracker.members) {
        const member = raft.tracker.progress.get(id);
        if (member === undefined) continue;
        progress.set(id, {
          match: member.match,
          next: member.next,
          state: member.state,
          isLearner: member.isLearner,
          recentActive: member.recentActive,
        });
      }
      status.progress = progress;
    }
    return status;
  }

  /** True when this replica believes it is the leader (cheap; for the host loop). */
  isLeader(): boolean {
    return this.raft.role === Role.Leader;
  }

  /** This replica's role (cheap; for the host loop). */
  role(): Role {
    return this.raft.role;
  }

  /** The membership the core counts votes and acknowledgements with (cheap; for assertions). */
  confState(): ConfState {
    return this.raft.tracker.confState();
  }

  /** The known leader, or `NONE` (0). */
  leaderId(): ReplicaId {
    return this.raft.lead;
  }

  /** The current term (cheap; {@link status} builds the whole picture). */
  term(): number {
    return this.raft.term;
  }

  /** The highest log index known to be committed (cheap). */
  commitIndex(): number {
    return this.raft.log.committed;
  }

  /** A leader's match index for `replicaId` (cheap; {@link status} builds every member's); 0 when not leader or not a member. */
  matchIndex(replicaId: ReplicaId): number {
    if (this.raft.role !== Role.Leader) return 0;
    return this.raft.tracker.progress.get(replicaId)?.match ?? 0;
  }

  /** The index of the log's last entry, durable or not (cheap; the node checks heartbeats against it). */
  lastIndex(): number {
    return this.raft.log.lastIndex();
  }
}
