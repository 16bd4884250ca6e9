/**
 * A worker thread of the simulation suite: runs its share of the seeds and posts a
 * {@link SeedSummary}. Workers share the lowest failing seed through one Int32 slot, so
 * none keeps running seeds that can no longer be the one reported.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runSeeds } from './seed-runner.js';

/** What the suite hands each worker. */
export interface SeedWorkerData {
  seeds: number[];
  /** One Int32: the lowest seed any worker has seen fail (2^31 - 1 while none has). */
  lowestFailure: SharedArrayBuffer;
}

const data = workerData as SeedWorkerData;
const lowest = new Int32Array(data.lowestFailure);
const summary = runSeeds(data.seeds, () => Atomics.load(lowest, 0));
const failed = summary.failure?.seed;
if (failed !== undefined) {
  for (let seen = Atomics.load(lowest, 0); failed < seen; seen = Atomics.load(lowest, 0)) {
    if (Atomics.compareExchange(lowest, 0, seen, failed) === seen) break;
  }
}
parentPort?.postMessage(summary);
