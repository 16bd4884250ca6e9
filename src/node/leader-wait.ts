/**
 * Requests that reach a follower while its shard has no usable leader wait here, briefly,
 * instead of being answered at once with "no known leader" or a hint at a dead node. That
 * answer sends the client into backoff, and by the time its doubling delay runs out the
 * election has long finished: a kill -9 of a leader cost clients ~1.1 s where the election
 * took ~0.4. A waiting request is run again as soon as the shard learns a leader (this
 * replica or another: the client then gets NOT_LEADER with the new leader at once and goes
 * straight there), as soon as the suspected leader's node is heard from again, or after
 * {@link LeaderWaitOptions.maxWaitMs}, whichever comes first. It is run again exactly once,
 * and that run answers whatever it finds (it never waits twice), so a client's request is
 * held at most `maxWaitMs` here. (C etcd: a follower's proposals block while it has no
 * leader, until the request's timeout.)
 *
 * Only the answer is delayed: nothing is proposed or read while waiting, so no Raft order
 * changes. The wait is bounded in count ({@link LeaderWaitOptions.maxWaiting}); past it a
 * request is answered at once, as before. Resumptions run from the runtime's timer, never
 * inside a turn.
 * @internal
 */
import type { Cancel, NodeRuntime } from './runtime.js';

/** Bounds of the wait. */
export interface LeaderWaitOptions {
  /** Longest wait of one request (ms). */
  maxWaitMs: number;
  /** Most requests waiting at once on the node. */
  maxWaiting: number;
}

interface Waiter {
  resume: () => void;
  cancelTimer: Cancel;
}

/** The node's waiting requests, by shard. */
export class LeaderWait {
  private readonly waiting = new Map<number, Set<Waiter>>();
  private count = 0;

  constructor(
    private readonly runtime: NodeRuntime,
    private readonly options: LeaderWaitOptions,
  ) {}

  /** True while another request may wait ({@link park} would take it). */
  get hasRoom(): boolean {
    return this.count < this.options.maxWaiting;
  }

  /** Requests waiting now (metrics, tests). */
  get size(): number {
    return this.count;
  }

  /**
   * Holds a request of `shardId` until a leader is known or the wait ends, then calls
   * `resume` once. False (and `resume` never called) when the node already holds
   * {@link LeaderWaitOptions.maxWaiting} requests: answer the request now.
   */
  park(shardId: number, resume: () => void): boolean {
    if (this.count >= this.options.maxWaiting) return false;
    let waiters = this.waiting.get(shardId);
    if (waiters === undefined) {
      waiters = new Set();
      this.waiting.set(shardId, waiters);
    }
    const shardWaiters = waiters;
    const waiter: Waiter = {
      resume,
      cancelTimer: this.runtime.runAfter(this.options.maxWaitMs, () => {
        if (!shardWaiters.delete(waiter)) return;
        if (shardWaiters.size === 0 && this.waiting.get(shardId) === shardWaiters) this.waiting.delete(shardId);
        this.count--;
        resume();
      }),
    };
    waiters.add(waiter);
    this.count++;
    return true;
  }

  /** The shard learned a leader: its waiting requests run again (from the timer, not inside the caller). */
  wake(shardId: number): void {
    const waiters = this.waiting.get(shardId);
    if (waiters === undefined) return;
    this.waiting.delete(shardId);
    this.resumeSoon(waiters);
  }

  /** The waiting requests of every shard `usable` accepts run again (a suspected node was heard from). */
  wakeWhere(usable: (shardId: number) => boolean): void {
    if (this.count === 0) return;
    for (const shardId of [...this.waiting.keys()]) if (usable(shardId)) this.wake(shardId);
  }

  /** Every waiting request runs again (the node is closing). */
  wakeAll(): void {
    this.wakeWhere(() => true);
  }

  private resumeSoon(waiters: Set<Waiter>): void {
    this.count -= waiters.size;
    for (const waiter of waiters) waiter.cancelTimer();
    this.runtime.runAfter(0, () => {
      for (const waiter of waiters) waiter.resume();
    });
  }
}
