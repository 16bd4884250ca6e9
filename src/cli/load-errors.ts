/**
 * How `kvstore bench` and `kvstore driver` turn the failures of a load run into one line on
 * stderr and an exit code: a local cluster that would not start or a manager, worker or node
 * that could not be reached is `EXIT.unavailable`; a client error keeps the code `reportError`
 * chose. Anything else is a bug and is rethrown.
 */
import { LocalClusterError } from '../bench/local-cluster.js';
import { BenchWorkerError } from '../bench/worker-pool.js';
import { KVError, ManagerUnreachableError } from '../client/index.js';
import { EXIT, failWith, reportError } from './client-util.js';

/** Reports `error` and returns the exit code; rethrows what a load run should never throw. */
export function exitCodeForLoadError(error: unknown): number {
  if (error instanceof LocalClusterError) {
    process.stderr.write(`error: ${error.message}\n`); // keeps the children's log tail readable
    return EXIT.unavailable;
  }
  if (error instanceof ManagerUnreachableError || error instanceof BenchWorkerError) {
    failWith(`error: ${error.message}`, EXIT.unavailable);
    return EXIT.unavailable;
  }
  if (error instanceof KVError) {
    reportError(error);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.unavailable;
  }
  throw error;
}
