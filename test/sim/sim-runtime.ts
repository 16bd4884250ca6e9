/**
 * A node's clock and timers on virtual time: the `NodeRuntime` the real `RaftHost`,
 * replicas and transport run on inside the simulator. Each machine's clock runs at its
 * own rate (bounded drift) with its own wall-clock offset; a process's timers fire on
 * its own clock and wait while it is paused.
 */
import type { Cancel, NodeRuntime } from '../../src/node/runtime.js';
import type { SeededRandom } from '../../src/raft/index.js';
import type { SimProcess, SimScheduler } from './sim-scheduler.js';

/** Where the simulated wall clocks start (an arbitrary fixed instant). */
const EPOCH_MS = 1_800_000_000_000;

/** One machine's clock: `rate` local ms per global ms, and a wall-clock offset. */
export class SimClock {
  constructor(
    private readonly scheduler: SimScheduler,
    /** Local ms per global ms, e.g. 0.99–1.01. */
    readonly rate: number,
    /** How far this machine's wall clock is off (ms). */
    readonly wallOffsetMs: number,
  ) {}

  monotonicMs(): number {
    return this.scheduler.nowMs * this.rate;
  }

  wallClockMs(): number {
    return EPOCH_MS + Math.floor(this.scheduler.nowMs * this.rate) + this.wallOffsetMs;
  }

  /** Global ms that pass while this clock advances `localMs`. */
  globalDelay(localMs: number): number {
    return localMs / this.rate;
  }
}

/** The runtime of one process incarnation on one machine's clock. */
export class SimRuntime implements NodeRuntime {
  constructor(
    private readonly scheduler: SimScheduler,
    private readonly process: SimProcess,
    private readonly clock: SimClock,
    private readonly random: SeededRandom,
  ) {}

  monotonicMs(): number {
    return this.clock.monotonicMs();
  }

  wallClockMs(): number {
    return this.clock.wallClockMs();
  }

  runSoon(task: () => void): void {
    this.scheduler.after(0, this.process, task);
  }

  runAfter(delayMs: number, task: () => void): Cancel {
    let cancelled = false;
    this.scheduler.after(this.clock.globalDelay(delayMs), this.process, () => {
      if (!cancelled) task();
    });
    return () => {
      cancelled = true;
    };
  }

  runEvery(intervalMs: number, task: () => void): Cancel {
    let cancelled = false;
    // Like libuv's repeating timers: the next one is due an interval after this one ran,
    // so a paused process gets one late tick, not a burst.
    const fire = (): void => {
      if (cancelled) return;
      this.scheduler.after(this.clock.globalDelay(intervalMs), this.process, fire);
      task();
    };
    this.scheduler.after(this.clock.globalDelay(intervalMs), this.process, fire);
    return () => {
      cancelled = true;
    };
  }

  randomSeed(): number {
    return this.random.nextInt(0x7fff_ffff);
  }
}
