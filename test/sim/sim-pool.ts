/**
 * Runs many simulator seeds on worker threads (one per core by default): each worker takes
 * the next seed as soon as it finishes one, so a slow seed does not hold the others up.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { SeedAnswer } from './sim-worker.js';

/** Pool settings. */
export interface PoolOptions {
  seeds: Iterable<number>;
  /** Worker threads; default one per available core. */
  jobs?: number;
  /** Called with each seed's outcome as it arrives. */
  onAnswer?: (answer: SeedAnswer) => void;
  /** Stop handing out seeds after the first failure. */
  stopOnFailure?: boolean;
}

/** Runs every seed; resolves with the failures (empty when all passed). */
export async function runSeedPool(options: PoolOptions): Promise<SeedAnswer[]> {
  const seeds = options.seeds[Symbol.iterator]();
  const jobs = Math.max(1, options.jobs ?? availableParallelism());
  const failures: SeedAnswer[] = [];
  let stopped = false;
  const workerUrl = new URL('./sim-worker.js', import.meta.url);
  const runWorker = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const worker = new Worker(workerUrl);
      const next = (): void => {
        const seed = stopped ? undefined : seeds.next();
        if (seed === undefined || seed.done === true) {
          void worker.terminate().then(() => resolve());
          return;
        }
        worker.postMessage({ seed: seed.value });
      };
      worker.on('message', (answer: SeedAnswer) => {
        if (!answer.ok) {
          failures.push(answer);
          if (options.stopOnFailure === true) stopped = true;
        }
        options.onAnswer?.(answer);
        next();
      });
      worker.on('error', reject);
      next();
    });
  await Promise.all(Array.from({ length: jobs }, runWorker));
  return failures;
}
