/**
 * A machine's simulated disk as the whole-node simulator uses it: one {@link SimDisk}
 * whose operations complete as events of the node's current process (so they wait while
 * it is paused and vanish when it dies), with a fault that makes its fsyncs slow for a while.
 */
import type { TextFileStore } from '../../src/common/index.js';
import type { FileSystem, SeededRandom } from '../../src/raft/index.js';
import { type PowerLossPlan, SimDisk } from './sim-disk.js';
import type { SimNodeDisk } from './sim-node.js';

/** A node's disk, with a slow-fsync fault. */
export interface SlowableDisk extends SimNodeDisk {
  /** From global time `nowMs`, fsyncs take up to the scenario's slow latency for `durationMs`; (0, 0) ends it. */
  slowFor(nowMs: number, durationMs: number): void;
  /** The disk itself (scripted tests corrupt or inspect it). */
  readonly disk: SimDisk;
}

/**
 * A disk whose fsyncs take `fsyncMs()` (ms), or up to `slowFsyncMs` during a slow-disk
 * fault. `nowMs` reads global virtual time. With `inlineSyncs` the WAL may fsync inline: the
 * process then stalls for the fsync's latency.
 */
export function newNodeDisk(random: SeededRandom, fsyncMs: () => number, slowFsyncMs: number, nowMs: () => number, inlineSyncs = false): SlowableDisk {
  let schedule: ((delayMs: number, run: () => void) => void) | undefined;
  let slowUntilMs = 0;
  const disk = new SimDisk({
    random,
    scheduler: (delayMs, run) => {
      if (schedule === undefined) throw new Error('disk used before a process attached');
      schedule(delayMs, run);
    },
    syncLatencyMs: () => (nowMs() < slowUntilMs ? slowFsyncMs / 4 + random.nextInt(Math.ceil(slowFsyncMs * 0.75)) : fsyncMs()),
    operationLatencyMs: () => random.nextInt(100) / 1000,
    inlineSyncs,
  });
  return {
    disk,
    attach(scheduleForProcess, stallProcess): FileSystem & TextFileStore {
      schedule = scheduleForProcess;
      disk.stallProcess = stallProcess;
      return disk.process();
    },
    kill: () => disk.kill(),
    powerLoss: (plan?: PowerLossPlan) => disk.powerLoss(plan),
    slowFor(fromMs, durationMs) {
      slowUntilMs = fromMs + durationMs;
    },
  };
}
