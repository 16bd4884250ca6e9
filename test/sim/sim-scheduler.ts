/**
 * Virtual time for simulations: callbacks run in time order (ties in the
 * order they were scheduled), one at a time, only when the test says so.
 * Nothing here reads a real clock, so a run replays exactly.
 */

interface Timer {
  at: number;
  order: number;
  run: () => void;
}

/** A queue of callbacks on a virtual clock; pass {@link SimScheduler.schedule} as a `Scheduler`. */
export class SimScheduler {
  private timers: Timer[] = [];
  private order = 0;
  private time = 0;

  /** Virtual milliseconds since the start. */
  get now(): number {
    return this.time;
  }

  /** Callbacks waiting to run. */
  get pending(): number {
    return this.timers.length;
  }

  /** Runs `run` once the clock reaches now + `delayMs`. */
  readonly schedule = (delayMs: number, run: () => void): void => {
    const timer = { at: this.time + Math.max(0, delayMs), order: this.order++, run };
    let low = 0;
    let high = this.timers.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const other = this.timers[middle] as Timer;
      if (other.at < timer.at || (other.at === timer.at && other.order < timer.order)) low = middle + 1;
      else high = middle;
    }
    this.timers.splice(low, 0, timer);
  };

  /** Advances the clock to the next callback and runs it; false when none is waiting. */
  runNext(): boolean {
    const timer = this.timers.shift();
    if (timer === undefined) return false;
    this.time = timer.at;
    timer.run();
    return true;
  }
}

/** Lets every queued promise continuation run (a macrotask turn drains the microtask queue). */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Runs the scheduler, draining microtasks after each callback, until `promise`
 * settles; returns its outcome. Rejects if the queue empties first (a deadlock)
 * or after `maxSteps` callbacks.
 */
export async function runUntilSettled<T>(scheduler: SimScheduler, promise: Promise<T>, maxSteps = 100_000): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  watched.catch(() => undefined);
  await drainMicrotasks();
  for (let step = 0; !settled; step++) {
    if (step >= maxSteps) throw new Error(`not settled after ${maxSteps} scheduled callbacks`);
    if (!scheduler.runNext()) throw new Error('the scheduler ran dry before the operation settled');
    await drainMicrotasks();
  }
  return watched;
}
