/**
 * A worker thread of the simulator pool: runs the seeds it is handed, one at a time,
 * and answers each with its result or its failure.
 */
import { parentPort } from 'node:worker_threads';
import { scenarioFor } from './scenario.js';
import { runSimulation, SimulationFailure } from './simulation.js';

/** A seed to run. */
export interface SeedRequest {
  seed: number;
}

/** The outcome of one seed. */
export type SeedAnswer =
  | { seed: number; ok: true; events: number; operations: number }
  | { seed: number; ok: false; message: string };

const port = parentPort;
if (port === null) throw new Error('sim-worker.js runs as a worker thread');
port.on('message', (request: SeedRequest) => {
  runSimulation(scenarioFor(request.seed)).then(
    (result) => port.postMessage({ seed: request.seed, ok: true, events: result.events, operations: result.operations } satisfies SeedAnswer),
    (error: unknown) => {
      const message = error instanceof SimulationFailure ? error.message : error instanceof Error ? error.stack ?? error.message : String(error);
      port.postMessage({ seed: request.seed, ok: false, message } satisfies SeedAnswer);
    },
  );
});
