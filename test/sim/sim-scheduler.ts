/**
 * Virtual time for the whole-node simulator: one queue of events ordered by (time,
 * insertion), each owned by a simulated process. The real node code runs inside the
 * events; its promises settle in the microtasks drained after each event, exactly as
 * Node drains them after each macrotask, so a run is a function of its seed.
 *
 * A process can die (its events are dropped) or be paused, SIGSTOP-like: its events
 * wait until it resumes, while its clock, like a real one, keeps running.
 */

/** A simulated process (one incarnation of a node, or the clients). */
export class SimProcess {
  alive = true;
  /** Global virtual ms until which the process is stopped; its events wait until then. */
  pausedUntilMs = 0;
  /** Global virtual ms until which an inline fsync holds it (part of {@link pausedUntilMs}). */
  stalledUntilMs = 0;

  constructor(readonly name: string) {}
}

interface SimEvent {
  timeMs: number;
  seq: number;
  owner: SimProcess;
  run: () => void;
}

/** Lets every queued promise continuation run (a macrotask turn drains the microtask queue). */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The event queue and the global virtual clock (ms). */
export class SimScheduler {
  nowMs = 0;
  /** Events run so far (for reports). */
  events = 0;
  private readonly heap: SimEvent[] = [];
  private seq = 0;
  /** The owner of events scheduled through {@link schedule}. */
  private readonly main = new SimProcess('main');

  /** Runs `run` after `delayMs` as the scheduler's own process: a plain `(delayMs, run)` scheduler (the SimDisk's). */
  readonly schedule = (delayMs: number, run: () => void): void => {
    this.after(delayMs, this.main, run);
  };

  /** Virtual milliseconds since the start. */
  get now(): number {
    return this.nowMs;
  }

  /** Events waiting to run. */
  get pending(): number {
    return this.heap.length;
  }

  /**
   * Runs the next event of a live owner due by `untilMs`, advancing the clock to it,
   * without draining microtasks; false when none is. (Standalone tests step this way.)
   */
  runNext(untilMs = Number.POSITIVE_INFINITY): boolean {
    for (;;) {
      const next = this.heap[0];
      if (next === undefined || next.timeMs > untilMs) return false;
      this.pop();
      if (!next.owner.alive) continue;
      this.nowMs = next.timeMs;
      if (next.owner.pausedUntilMs > this.nowMs) {
        this.push({ ...next, timeMs: next.owner.pausedUntilMs, seq: this.seq++ });
        continue;
      }
      this.events += 1;
      next.run();
      return true;
    }
  }

  /** Runs `run` as `owner` at global time `timeMs` (not before now). */
  at(timeMs: number, owner: SimProcess, run: () => void): void {
    this.push({ timeMs: Math.max(timeMs, this.nowMs), seq: this.seq++, owner, run });
  }

  /** Runs `run` as `owner` `delayMs` of global time from now. */
  after(delayMs: number, owner: SimProcess, run: () => void): void {
    this.at(this.nowMs + Math.max(0, delayMs), owner, run);
  }

  /** True when no event is queued. */
  get idle(): boolean {
    return this.heap.length === 0;
  }

  /**
   * Runs events in order until global time `untilMs` (events at later times stay queued),
   * calling `afterEach` after each event and its microtasks. Stops early when `afterEach`
   * returns true.
   */
  async runUntil(untilMs: number, afterEach?: () => boolean | void): Promise<void> {
    while (this.runNext(untilMs)) {
      await drainMicrotasks();
      if (afterEach?.() === true) return;
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  private push(event: SimEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(event, heap[parent] as SimEvent)) break;
      heap[i] = heap[parent] as SimEvent;
      i = parent;
    }
    heap[i] = event;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right] as SimEvent, heap[left] as SimEvent) ? right : left;
      if (!before(heap[child] as SimEvent, last)) break;
      heap[i] = heap[child] as SimEvent;
      i = child;
    }
    heap[i] = last;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.seq < b.seq);
}

/**
 * Runs the scheduler, draining microtasks after each event, until `promise` settles;
 * returns its outcome. Rejects if the queue empties first (a deadlock) or after `maxSteps` events.
 */
export async function runUntilSettled<T>(scheduler: SimScheduler, promise: Promise<T>, maxSteps = 100_000): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  watched.catch(() => undefined);
  await drainMicrotasks();
  for (let step = 0; !settled; step++) {
    if (step >= maxSteps) throw new Error(`not settled after ${maxSteps} scheduled events`);
    if (!scheduler.runNext()) throw new Error('the scheduler ran dry before the operation settled');
    await drainMicrotasks();
  }
  return watched;
}
