/**
 * Time, turns and randomness as the node sees them (DESIGN.md §4: "time and I/O come
 * in through small interfaces"). Production uses {@link systemRuntime}: Node's clocks
 * and timers. The whole-node simulator (test/sim) passes one of its own, so the real
 * `RaftHost`, replicas and WAL run on virtual time with drifting clocks and pauses,
 * and every run is a function of its seed.
 * @internal
 */
import { randomInt } from 'node:crypto';

/** Cancels a timer; calling it again does nothing. */
export type Cancel = () => void;

/** The node's clocks, scheduler and random seeds. */
export interface NodeRuntime {
  /**
   * Monotonic milliseconds (`performance.now()`): leases, promises, deadlines and
   * durations. Only its rate matters; it never jumps back.
   */
  monotonicMs(): number;
  /** Wall-clock milliseconds since the epoch (`Date.now()`): the log time stamped into commands. */
  wallClockMs(): number;
  /** Runs `task` once the current work and pending I/O callbacks are done (`setImmediate`). */
  runSoon(task: () => void): void;
  /** Runs `task` once, `delayMs` from now; it does not keep the process alive. */
  runAfter(delayMs: number, task: () => void): Cancel;
  /** Runs `task` every `intervalMs` until cancelled; it does not keep the process alive. */
  runEvery(intervalMs: number, task: () => void): Cancel;
  /** A seed for one replica's Raft random source (election timeouts). */
  randomSeed(): number;
}

/** The real clocks and timers of this process. */
export const systemRuntime: NodeRuntime = {
  monotonicMs: () => performance.now(),
  wallClockMs: () => Date.now(),
  runSoon: (task) => {
    setImmediate(task);
  },
  runAfter: (delayMs, task) => {
    const timer = setTimeout(task, delayMs);
    timer.unref();
    return () => clearTimeout(timer);
  },
  runEvery: (intervalMs, task) => {
    const timer = setInterval(task, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  },
  randomSeed: () => randomInt(0x7fff_ffff),
};
