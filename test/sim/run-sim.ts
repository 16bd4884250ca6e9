/**
 * `npm run sim -- [--seeds N] [--from S] [--jobs J] [--keep-going]`: the whole-node
 * simulator over many seeds, for long runs. Prints progress with seeds per second and
 * every failure with its seed (replay one with `SEED=n npm run sim`, adding `SIM_LOG=debug`
 * for the nodes' logs); exits 1 if any seed failed.
 */
import { Command, InvalidArgumentError } from 'commander';
import { scenarioFor } from './scenario.js';
import { runSeedPool } from './sim-pool.js';
import { runSimulation } from './simulation.js';

const positive = (name: string) => (value: string): number => {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 1) throw new InvalidArgumentError(`${name} must be a whole number ≥ 1, got "${value}"`);
  return number;
};

const program = new Command('sim')
  .description('run the whole-node simulator over many seeds')
  .option('--seeds <n>', 'how many seeds', positive('--seeds'), 1000)
  .option('--from <seed>', 'the first seed', positive('--from'), 1)
  .option('--jobs <n>', 'worker threads (default: one per core)', positive('--jobs'))
  .option('--keep-going', 'run every seed even after a failure')
  .parse();
const options = program.opts<{ seeds: number; from: number; jobs?: number; keepGoing?: boolean }>();

const replay = process.env['SEED'];
if (replay !== undefined) {
  const seed = positive('SEED')(replay);
  const logLevel = process.env['SIM_LOG'];
  const started = performance.now();
  try {
    const result = await runSimulation(scenarioFor(seed), logLevel === undefined ? {} : { logLevel });
    console.log(`seed ${seed}: ok — ${result.operations} operations, ${result.events} events, ${(result.virtualMs / 1000).toFixed(1)} s virtual, ` +
      `faults ${JSON.stringify(result.faults)}, ${result.moves} moves, in ${((performance.now() - started) / 1000).toFixed(2)} s`);
  } catch (error) {
    console.log(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  }
} else {
  const started = performance.now();
  let done = 0;
  let lastReportMs = started;
  const failures = await runSeedPool({
    seeds: Array.from({ length: options.seeds }, (_, i) => options.from + i),
    ...(options.jobs === undefined ? {} : { jobs: options.jobs }),
    stopOnFailure: options.keepGoing !== true,
    onAnswer: (answer) => {
      done += 1;
      if (!answer.ok) console.log(`FAIL ${answer.message}`);
      const nowMs = performance.now();
      if (nowMs - lastReportMs > 10_000 || done === options.seeds) {
        lastReportMs = nowMs;
        const seconds = (nowMs - started) / 1000;
        console.log(`${done}/${options.seeds} seeds in ${seconds.toFixed(0)} s (${(done / seconds).toFixed(1)} seeds/s)`);
      }
    },
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(`seeds ${options.from}–${options.from + done - 1}: ${done} run, ${failures.length} failed, ${seconds.toFixed(0)} s, ${(done / seconds).toFixed(1)} seeds/s`);
  if (failures.length > 0) process.exitCode = 1;
}
