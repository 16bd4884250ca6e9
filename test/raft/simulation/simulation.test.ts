/**
 * The seeded simulation suite (DESIGN.md §7): 10,000 seeds by default,
 * `RAFT_SEEDS=N` for more, `SEED=n` to replay one (in this thread, with its stack).
 * Seeds are split across `RAFT_SIM_WORKERS` worker threads (default: up to two, one
 * per core); the suite reports the lowest failing seed, as one thread would.
 */
import { expect } from 'chai';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { mergeSummaries, runSeeds, type SeedSummary } from './seed-runner.js';
import type { SeedWorkerData } from './seed-worker.js';

const replaySeed = process.env['SEED'];
const seedCount = Number(process.env['RAFT_SEEDS'] ?? 10_000);
const seeds = replaySeed !== undefined ? [Number(replaySeed)] : Array.from({ length: seedCount }, (_, i) => i + 1);
const workerCount = replaySeed !== undefined ? 1 : Number(process.env['RAFT_SIM_WORKERS'] ?? Math.min(2, availableParallelism()));

/** Runs `seeds` on `count` workers, seed i on worker i mod count. */
async function runInWorkers(count: number): Promise<SeedSummary> {
  const lowestFailure = new SharedArrayBuffer(4);
  new Int32Array(lowestFailure)[0] = 2 ** 31 - 1;
  const shares = Array.from({ length: count }, (_, worker) => seeds.filter((_, i) => i % count === worker));
  const summaries = await Promise.all(
    shares.map(
      (share) =>
        new Promise<SeedSummary>((resolve, reject) => {
          const workerData: SeedWorkerData = { seeds: share, lowestFailure };
          const worker = new Worker(new URL('./seed-worker.js', import.meta.url), { workerData });
          worker.once('message', (summary: SeedSummary) => resolve(summary));
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`simulation worker exited with code ${code} before reporting`)));
        }),
    ),
  );
  return mergeSummaries(summaries);
}

describe('raft simulation (Raft §5.4: safety under faults; liveness after healing)', function () {
  this.timeout(600_000);

  it(`keeps election safety, log matching, leader completeness, state-machine safety, linearizable reads, monotonic commit, CheckQuorum, PreVote term stability and the in-flight bound over ${seeds.length} seed(s), and recovers after healing`, async () => {
    const summary = workerCount > 1 ? await runInWorkers(workerCount) : runSeeds(seeds);
    const failure = summary.failure;
    if (failure !== undefined) {
      const error = new Error(`simulation failed for seed ${failure.seed} — replay with SEED=${failure.seed}: ${failure.message}`);
      error.stack = `${error.message}\n${failure.stack}`;
      throw error;
    }
    expect(summary.runs).to.equal(seeds.length);
    const liveness = [...summary.livenessTicks].sort((a, b) => a - b);
    const worstLiveness = liveness[liveness.length - 1] ?? 0;
    const medianLiveness = liveness[Math.floor(liveness.length / 2)] ?? 0;
    expect(summary.reads, 'reads were answered').to.be.greaterThan(0);
    if (process.env['RAFT_SIM_VERBOSE'] !== undefined) {
      console.log(
        `seeds=${seeds.length} workers=${workerCount} shapes=${JSON.stringify(summary.shapes)} ` +
          `livenessTicks median=${medianLiveness} worst=${worstLiveness} reads=${summary.reads}`,
      );
    }
  });
});
