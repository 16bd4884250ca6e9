/**
 * The read path of one replica: linearizable reads through ReadIndex (Raft thesis §6.4),
 * or under the leader's lease (thesis §6.4.1; C `Lease` in raftstore), and the
 * follower's promise that makes the lease safe. The whole argument is here, beside the
 * code that keeps it.
 *
 * ## Why a lease read is linearizable
 * A read must reflect every write acknowledged before it arrived. A leader knows its
 * commit index covers all of them as long as no other leader has been elected since.
 *
 * 1. **The promise (followers).** A follower that steps a message of its leader at
 *    monotonic time `t` promises not to help elect anyone else — not to grant a vote,
 *    not to campaign — until `t + voteGuardMs` on its own clock. The Raft core keeps
 *    half of it: CheckQuorum's leader lease ignores vote requests for an election
 *    timeout (≥ 10 ticks = 500 ms) after the leader's last message. The host keeps the
 *    rest: its fast failover ({@link LeaderPromise.remainingMs}, `fast-failover.ts`)
 *    skips ahead and campaigns only once the promise ran out, re-checked AFTER the
 *    turn's inbox was stepped ({@link LeaderPromise.allowsCampaign}); a replica that
 *    restarted ignores vote requests for `voteGuardMs` ({@link LeaderPromise.ignoresVoteRequests}),
 *    because a promise made before a crash lived only in memory.
 * 2. **The lease (leader).** When a quorum acknowledged something the leader sent at
 *    its time `s` (a heartbeat round, or the append of a proposal that then committed),
 *    every one of those followers stepped it after `s` and so promised until at least
 *    `s + voteGuardMs`. No other leader can be elected before then; the leader answers
 *    reads from its state machine until `s + leaseMs`, once it applied the commit index
 *    it had when the read arrived.
 * 3. **Clock rates, not clock values.** Each side measures only its own durations, so
 *    only the clocks' rates matter: with {@link LEASE_RATIO} 0.4 and
 *    {@link PROMISE_RATIO} 0.6 of the shortest election timeout, a follower's clock
 *    would have to run 50% faster than the leader's to break it (the simulator drifts
 *    them by ±1%). A pause of the leader after the check changes nothing: the read was
 *    decided while the lease held.
 * 4. **What ends a lease early**: a new term (the replica stepped down), TimeoutNow
 *    (the transferee campaigns past every promise, by design), and an applied membership
 *    change (the quorum the lease was earned from is gone).
 * @internal
 */
import type { RawNode } from '../raft/index.js';
import type { KvStateMachine } from './kv-state-machine.js';
import type { ReplicaEvents } from './node-metrics.js';
import { type FailureReason, type ReadCallback, REQUEST_TIMEOUT_MS } from './replica-requests.js';
import type { NodeRuntime } from './runtime.js';

/** A leader's lease, as a fraction of the shortest election timeout. */
export const LEASE_RATIO = 0.4;
/** A follower's promise (and a recovered replica's vote guard), as a fraction of the shortest election timeout. */
export const PROMISE_RATIO = 0.6;

/** Lease and promise lengths for a host; both 0 when lease reads are off. */
export function leaseTimings(electionTimeoutMs: number, leaseReads: boolean): { leaseMs: number; voteGuardMs: number } {
  if (!leaseReads) return { leaseMs: 0, voteGuardMs: 0 };
  return { leaseMs: Math.floor(electionTimeoutMs * LEASE_RATIO), voteGuardMs: Math.ceil(electionTimeoutMs * PROMISE_RATIO) };
}

/** The follower side of the lease: when this replica last heard its leader, and what it promised. */
export class LeaderPromise {
  /** Monotonic ms when this replica last stepped a leader's message (append, heartbeat, snapshot). */
  lastLeaderMessageMs = Number.NEGATIVE_INFINITY;
  /** Vote requests stepped before this monotonic time are dropped. */
  private readonly ignoreVotesUntilMs: number;

  /**
   * @param guardMs How long a promise lasts (`voteGuardMs`); 0 when lease reads are off.
   * @param recovered True for a replica recreated from disk at start-up: before the
   *   crash it may have promised a leader, so it ignores vote requests for `guardMs`.
   */
  constructor(
    private readonly guardMs: number,
    nowMs: number,
    recovered: boolean,
  ) {
    this.ignoreVotesUntilMs = recovered ? nowMs + guardMs : Number.NEGATIVE_INFINITY;
  }

  /** The replica stepped a message of its leader: the promise starts again. */
  heardFromLeader(nowMs: number): void {
    this.lastLeaderMessageMs = nowMs;
  }

  /** Ms until the promise to the last leader heard from ends (≤ 0: it has). */
  remainingMs(nowMs: number): number {
    return this.lastLeaderMessageMs + this.guardMs - nowMs;
  }

  /** True while a campaign would break the promise. */
  forbidsCampaign(nowMs: number): boolean {
    return this.remainingMs(nowMs) > 0;
  }

  /** True while a recovered replica must not answer vote requests. */
  ignoresVoteRequests(nowMs: number): boolean {
    return nowMs < this.ignoreVotesUntilMs;
  }
}

interface PendingRead {
  key: string;
  callback: ReadCallback;
}

interface ReadBatch {
  reads: PendingRead[];
  deadlineMs: number;
  /** Set once the ReadState arrived (or at once, under the lease): serve when applied ≥ index. */
  index: number;
  /** Term and monotonic time the ReadIndex round began: its confirmation renews the lease. */
  term: number;
  startedMs: number;
}

/** What the read path is built from. */
export interface ReadPathOptions {
  shardId: number;
  rawNode: RawNode;
  runtime: NodeRuntime;
  /** The replica's current state machine (it is replaced when a snapshot installs). */
  machine: () => KvStateMachine;
  /** How long a confirmed quorum contact lets the leader read without a round (ms); 0: never. */
  leaseMs: number;
  events: ReplicaEvents | undefined;
  /** TEST ONLY: answer from the applied state with no confirmation (see `ReplicaOptions.unsafeStaleReads`). */
  unsafeStaleReads: boolean;
}

/** The leader side: queued reads, ReadIndex rounds and the lease. */
export class ReadPath {
  private queued: PendingRead[] = [];
  /** ReadIndex batches (and lease batches waiting to apply) by id, in deadline order. */
  private readonly batches = new Map<number, ReadBatch>();
  private nextReadId = 1;
  /** The lease: reads may skip ReadIndex while leader in `leaseTerm` and now < `leaseUntilMs`. */
  private leaseTerm = 0;
  private leaseUntilMs = 0;
  /** A term in which this leader sent TimeoutNow: no lease for the rest of it. */
  private leaseRevokedTerm = 0;
  /** The ReadIndex round started only to renew the lease, while it runs (0: none). */
  private renewalReadId = 0;

  constructor(private readonly options: ReadPathOptions) {}

  /** Queues a linearizable read of `key` (latin1 key string) for the next turn. */
  queue(key: string, callback: ReadCallback): void {
    this.queued.push({ key, callback });
  }

  /**
   * Answers a read at once, outside any turn, when it needs nothing a turn would do: this
   * replica leads under the lease (which need not be renewed yet) and has applied everything it
   * knows committed. That is the answer {@link startQueued} would give at the next turn — under
   * the lease no other leader exists, so the commit index covers every write acknowledged before
   * this read arrived, and every acknowledged write was applied before it was acknowledged —
   * only sooner: a read no longer waits for another request's fsync (no full turn runs while
   * one is in flight) or for the next tick's light turn. The lease is checked now, at the read's
   * arrival, which is what bounds it. False: queue it for the next turn.
   */
  tryNow(key: string, callback: ReadCallback, isLeader: boolean): boolean {
    if (!isLeader || this.options.unsafeStaleReads || this.queued.length > 0) return false;
    const nowMs = this.options.runtime.monotonicMs();
    if (!this.inLease(nowMs) || this.leaseUntilMs - nowMs < this.options.leaseMs / 2) return false;
    const machine = this.options.machine();
    if (this.options.rawNode.commitIndex() > machine.appliedIndex) return false;
    this.options.events?.readsServed(this.options.shardId, 'lease', 1);
    callback({ ok: true, value: machine.get(key) });
    return true;
  }

  /** True when reads wait for the next turn. */
  get hasQueued(): boolean {
    return this.queued.length > 0;
  }

  /** Reads waiting anywhere on this path (tests, metrics). */
  get waiting(): number {
    let reads = this.queued.length;
    for (const batch of this.batches.values()) reads += batch.reads.length;
    return reads;
  }

  /** Starts the queued reads (in a turn, after the inputs were stepped); a non-leader refuses them. */
  startQueued(isLeader: boolean): void {
    if (this.queued.length === 0) return;
    const reads = this.queued;
    this.queued = [];
    if (!isLeader) {
      for (const read of reads) read.callback({ ok: false, reason: 'NOT_LEADER' });
      return;
    }
    const machine = this.options.machine();
    if (this.options.unsafeStaleReads) {
      for (const read of reads) read.callback({ ok: true, value: machine.get(read.key) });
      return;
    }
    const nowMs = this.options.runtime.monotonicMs();
    if (this.inLease(nowMs)) {
      // Under the lease no other leader exists, so our commit index covers every write
      // acknowledged before these reads arrived: serve them once it is applied.
      const index = this.options.rawNode.commitIndex();
      this.options.events?.readsServed(this.options.shardId, 'lease', reads.length);
      if (index <= machine.appliedIndex) {
        for (const read of reads) read.callback({ ok: true, value: machine.get(read.key) });
      } else {
        this.batches.set(this.nextReadId++, { reads, deadlineMs: nowMs + REQUEST_TIMEOUT_MS, index, term: 0, startedMs: nowMs });
      }
      // Renew before it runs out, so a steady read load never waits for a round.
      if (this.renewalReadId === 0 && this.leaseUntilMs - nowMs < this.options.leaseMs / 2) this.renewalReadId = this.startRound([], nowMs);
      return;
    }
    this.options.events?.readsServed(this.options.shardId, 'read_index', reads.length);
    this.startRound(reads, nowMs);
  }

  /** Starts a ReadIndex round (Raft thesis §6.4) shared by `reads`; returns its id. */
  private startRound(reads: PendingRead[], nowMs: number): number {
    const readId = this.nextReadId++;
    const context = Buffer.allocUnsafe(8);
    context.writeDoubleLE(readId, 0);
    const rawNode = this.options.rawNode;
    this.batches.set(readId, { reads, deadlineMs: nowMs + REQUEST_TIMEOUT_MS, index: -1, term: rawNode.term(), startedMs: nowMs });
    rawNode.readIndex(context);
    return readId;
  }

  /** True while the lease lets this leader answer reads without a ReadIndex round. */
  inLease(nowMs: number): boolean {
    const rawNode = this.options.rawNode;
    return this.options.leaseMs > 0 && nowMs < this.leaseUntilMs && this.leaseTerm === rawNode.term() && rawNode.isLeader();
  }

  /** A quorum acknowledged what this leader sent in `term` after `startedMs`: the lease runs to `startedMs + leaseMs`. */
  renewLease(term: number, startedMs: number): void {
    const rawNode = this.options.rawNode;
    if (this.options.leaseMs === 0 || term !== rawNode.term() || term === this.leaseRevokedTerm || !rawNode.isLeader()) return;
    const untilMs = startedMs + this.options.leaseMs;
    if (this.leaseTerm !== term) {
      this.leaseTerm = term;
      this.leaseUntilMs = untilMs;
    } else if (untilMs > this.leaseUntilMs) {
      this.leaseUntilMs = untilMs;
    }
  }

  /** Ends the lease now; `forTerm` also refuses renewals for the rest of that term (TimeoutNow sent). */
  revokeLease(forTerm?: number): void {
    this.leaseUntilMs = 0;
    if (forTerm !== undefined) this.leaseRevokedTerm = forTerm;
  }

  /** A ReadIndex round came back confirmed at `index`. */
  onReadState(index: number, context: Uint8Array): void {
    if (context.length !== 8) return;
    const readId = Buffer.from(context.buffer, context.byteOffset, 8).readDoubleLE(0);
    const batch = this.batches.get(readId);
    if (batch === undefined) return;
    batch.index = index;
    // A quorum answered a heartbeat sent after the round began.
    this.renewLease(batch.term, batch.startedMs);
    if (readId === this.renewalReadId) this.renewalReadId = 0;
  }

  /** Answers every confirmed read whose index the state machine has applied. */
  serve(): void {
    if (this.batches.size === 0) return;
    const machine = this.options.machine();
    const applied = machine.appliedIndex;
    for (const [readId, batch] of this.batches) {
      if (batch.index < 0 || batch.index > applied) continue;
      this.batches.delete(readId);
      for (const read of batch.reads) read.callback({ ok: true, value: machine.get(read.key) });
    }
  }

  /** The replica stopped leading: no lease, and reads whose round never came back cannot be confirmed. */
  onLostLeadership(): void {
    this.revokeLease();
    this.renewalReadId = 0;
    for (const [readId, batch] of this.batches) {
      if (batch.index >= 0) continue;
      this.batches.delete(readId);
      for (const read of batch.reads) read.callback({ ok: false, reason: 'NOT_LEADER' });
    }
  }

  /** Answers TIMEOUT to every read past its deadline (monotonic ms). */
  expire(nowMs: number): void {
    for (const [readId, batch] of this.batches) {
      if (batch.deadlineMs > nowMs) break;
      this.batches.delete(readId);
      if (readId === this.renewalReadId) this.renewalReadId = 0;
      for (const read of batch.reads) read.callback({ ok: false, reason: 'TIMEOUT' });
    }
  }

  /** Answers the reads not yet started with `reason`. */
  failQueued(reason: FailureReason): void {
    for (const read of this.queued.splice(0)) read.callback({ ok: false, reason });
  }

  /** Answers every waiting read with `reason` (shutdown, removal). */
  failAll(reason: FailureReason): void {
    this.failQueued(reason);
    for (const batch of this.batches.values()) for (const read of batch.reads) read.callback({ ok: false, reason });
    this.batches.clear();
    this.renewalReadId = 0;
  }
}
