/**
 * The seeded simulation suite (DESIGN.md §7): ≥ 1,000 seeds by default,
 * `RAFT_SEEDS=N` for more, `SEED=n` to replay one. A failure names its seed.
 */
import { expect } from 'chai';
import { Simulation, randomScenario, type RunResult } from './simulator.js';

const replaySeed = process.env['SEED'];
const seedCount = Number(process.env['RAFT_SEEDS'] ?? 1000);
const seeds = replaySeed !== undefined ? [Number(replaySeed)] : Array.from({ length: seedCount }, (_, i) => i + 1);

describe('raft simulation (Raft §5.4: safety under faults; liveness after healing)', function () {
  this.timeout(600_000);

  it(`keeps election safety, log matching, leader completeness, state-machine safety, linearizable reads, monotonic commit, CheckQuorum, PreVote term stability and the in-flight bound over ${seeds.length} seed(s), and recovers after healing`, () => {
    const results: RunResult[] = [];
    for (const seed of seeds) {
      const simulation = new Simulation(randomScenario(seed));
      try {
        results.push(simulation.run());
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(`simulation failed for seed ${seed} — replay with SEED=${seed}: ${message}`, { cause: error });
      }
    }
    expect(results).to.have.length(seeds.length);
    const liveness = results.map((r) => r.livenessTicks).sort((a, b) => a - b);
    const worstLiveness = liveness[liveness.length - 1] ?? 0;
    const medianLiveness = liveness[Math.floor(liveness.length / 2)] ?? 0;
    const reads = results.reduce((sum, r) => sum + r.reads, 0);
    expect(reads, 'reads were answered').to.be.greaterThan(0);
    if (process.env['RAFT_SIM_VERBOSE'] !== undefined) {
      console.log(`seeds=${seeds.length} livenessTicks median=${medianLiveness} worst=${worstLiveness} reads=${reads}`);
    }
  });
});
