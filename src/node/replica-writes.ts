/**
 * The write path of one replica: writes queued for the next turn, proposed with their log
 * time, and waiting by log index until their entry applies (or their deadline passes). The
 * read path's counterpart (`replica-reads.ts`); the replica calls both from its turn.
 * @internal
 */
import type { RawNode } from '../raft/index.js';
import { encodeCommand, type WriteRequest } from './kv-command.js';
import type { KvStateMachine } from './kv-state-machine.js';
import { LogClock } from './log-clock.js';
import type { ReplicaEvents } from './node-metrics.js';
import { type FailureReason, REQUEST_TIMEOUT_MS, type WriteCallback } from './replica-requests.js';
import type { NodeRuntime } from './runtime.js';

/** A proposed write, waiting for its entry to apply. */
export interface PendingWrite {
  term: number;
  /** When it was proposed (monotonic ms): its commit proves a quorum heard from us after it. */
  proposedMs: number;
  deadlineMs: number;
  callback: WriteCallback;
}

interface QueuedWrite {
  request: WriteRequest;
  deadlineMs: number;
  callback: WriteCallback;
}

/** What the write path is built from. */
export interface WritePathOptions {
  shardId: number;
  rawNode: RawNode;
  runtime: NodeRuntime;
  /** The replica's current state machine (it is replaced when a snapshot installs). */
  machine: () => KvStateMachine;
  events: ReplicaEvents | undefined;
}

/** Queued and proposed writes of one replica. */
export class WritePath {
  private queued: QueuedWrite[] = [];
  /** Proposed writes by log index, in proposal order (so in deadline order). */
  private readonly pending = new Map<number, PendingWrite>();
  /**
   * The index of this leader's first entry of its term (0 before it led). Rule: a leader
   * proposes client writes only once it has applied through it, i.e. every entry of earlier
   * terms: the log time it stamps starts from the applied log time (`log-clock.ts`), and a new
   * leader that had applied no command yet would take its wall clock as is — one an hour ahead
   * aged every session at once, and a retried write that had applied under the old leader
   * applied again (simulator seed 1,030,103, once requests waiting for the new leader reached
   * it the moment it was elected). Held writes wait in the queue; the turn after the apply
   * proposes them.
   */
  private termStartIndex = 0;
  /** Stamps proposals with log time: monotonic time since the log time this leader knew, not its wall clock as is. */
  private readonly logClock = new LogClock();
  private lastStampAtMs = 0;

  constructor(private readonly options: WritePathOptions) {}

  /** Queues an admitted write for the next turn. */
  queue(request: WriteRequest, callback: WriteCallback): void {
    this.queued.push({ request, callback, deadlineMs: this.options.runtime.monotonicMs() + REQUEST_TIMEOUT_MS });
  }

  /** True when writes wait for the next turn. */
  get hasQueued(): boolean {
    return this.queued.length > 0;
  }

  /** True when the next turn would propose (or refuse) queued writes: some wait, and a leader no longer holds them. */
  ready(isLeader: boolean): boolean {
    return this.queued.length > 0 && !this.holds(isLeader);
  }

  /** The replica became leader: its term's first entry is the last one now (see {@link termStartIndex}). */
  becameLeader(): void {
    this.termStartIndex = this.options.rawNode.lastIndex();
  }

  /** True while a new leader has not applied its predecessors' entries: writes wait (see {@link termStartIndex}). */
  private holds(isLeader: boolean): boolean {
    return isLeader && this.options.machine().appliedIndex < this.termStartIndex;
  }

  /**
   * The log time a proposal would be stamped with now: what a leader reads a key's expiry
   * against (a read at or past a key's expiry proposes an expire first: `kv-service.ts`). Taking
   * it moves this leader's log clock as a proposal would, never backwards.
   */
  logTimeNow(): number {
    const { rawNode, runtime } = this.options;
    return this.logClock.stamp({
      term: rawNode.term(),
      appliedLogTimeMs: this.options.machine().logTimeMs,
      wallClockMs: runtime.wallClockMs(),
      monotonicMs: runtime.monotonicMs(),
    });
  }

  /** Monotonic ms of this leader's last stamp (a proposal or {@link logTimeNow}); 0 before any. */
  get lastStampMs(): number {
    return this.lastStampAtMs;
  }

  /** Proposes the queued writes (in a turn, after the inputs were stepped); a non-leader refuses them. */
  propose(isLeader: boolean): void {
    if (this.queued.length === 0 || this.holds(isLeader)) return;
    const queued = this.queued;
    this.queued = [];
    if (!isLeader) {
      for (const write of queued) write.callback({ ok: false, reason: 'NOT_LEADER' });
      return;
    }
    const { rawNode, runtime, events, shardId } = this.options;
    const proposedMs = runtime.monotonicMs();
    this.lastStampAtMs = proposedMs;
    const logTimeMs = this.logClock.stamp({
      term: rawNode.term(),
      appliedLogTimeMs: this.options.machine().logTimeMs,
      wallClockMs: runtime.wallClockMs(),
      monotonicMs: proposedMs,
    });
    for (const write of queued) {
      const outcome = rawNode.propose(encodeCommand(write.request, logTimeMs));
      if (!outcome.ok) {
        events?.proposalDropped(shardId, outcome.reason);
        write.callback({ ok: false, reason: 'UNAVAILABLE' });
        continue;
      }
      // A proposal at an index some older, lost proposal held: that one can no longer apply.
      const lost = this.pending.get(outcome.index);
      if (lost !== undefined) {
        this.pending.delete(outcome.index); // re-inserted last, keeping the map in deadline order
        events?.proposalDropped(shardId, 'superseded');
        lost.callback({ ok: false, reason: 'DROPPED' });
      }
      this.pending.set(outcome.index, { term: outcome.term, proposedMs, deadlineMs: write.deadlineMs, callback: write.callback });
    }
  }

  /** The write proposed at `index`, taken out (its entry is applying); undefined if none. */
  take(index: number): PendingWrite | undefined {
    const pending = this.pending.get(index);
    if (pending !== undefined) this.pending.delete(index);
    return pending;
  }

  /** A snapshot through `index` installed: proposals it covers can no longer be matched to their entries. */
  dropCoveredBy(index: number): void {
    for (const [pendingIndex, pending] of this.pending) {
      if (pendingIndex > index) continue;
      this.pending.delete(pendingIndex);
      pending.callback({ ok: false, reason: 'TIMEOUT' });
    }
  }

  /** Answers TIMEOUT to every proposed write past its deadline (monotonic ms). */
  expire(nowMs: number): void {
    for (const [index, pending] of this.pending) {
      if (pending.deadlineMs > nowMs) break;
      this.pending.delete(index);
      pending.callback({ ok: false, reason: 'TIMEOUT' });
    }
  }

  /** Answers the writes not yet proposed with `reason`. */
  failQueued(reason: FailureReason): void {
    for (const write of this.queued.splice(0)) write.callback({ ok: false, reason });
  }

  /** Answers every waiting write (shutdown, removal): proposed ones may still apply, so they time out. */
  failAll(reason: FailureReason): void {
    this.failQueued(reason);
    for (const pending of this.pending.values()) pending.callback({ ok: false, reason: reason === 'UNAVAILABLE' ? 'TIMEOUT' : reason });
    this.pending.clear();
  }

  /** Writes waiting anywhere on this path (tests, metrics). */
  get waiting(): number {
    return this.pending.size + this.queued.length;
  }
}
