/**
 * The IPC messages between `kvstore bench` and its worker processes (child_process.fork of
 * worker.ts). The parent configures each worker, waits until all have preloaded their slice of the
 * keyspace, then starts them together so the measured phase overlaps; each worker says when its
 * measured phase (after any warm-up) begins, then sends its counts, its CPU time and its latency
 * histograms (compressed base64) back, and the parent merges them.
 */
import type { LoadResult } from './load-loop.js';
import type { WorkloadSettings } from './workload.js';

/** Parent → worker: what to do. Sent once, first. */
export interface WorkerConfigMessage {
  type: 'config';
  /** The manager the worker's KVClient asks for the shard map. */
  manager: string;
  /** TLS (PEM text) and token the worker's KVClient presents; none for a plaintext, open cluster. */
  credentials?: { tls?: { ca: string; cert?: string; key?: string }; token?: string };
  /** This worker's number (0-based); seeds its random stream. */
  workerIndex: number;
  workload: WorkloadSettings;
  /** The half-open range of key indexes this worker preloads. */
  preloadFrom: number;
  preloadTo: number;
  /** Requests this worker keeps in flight. */
  concurrency: number;
  /** Operations for this worker, or how long to run (ms). */
  ops?: number;
  durationMs?: number;
  /** Run the workload this long after `run` before measuring (ms); nothing of it is recorded. */
  warmupMs?: number;
  seed: number;
}

/** Parent → worker: start the measured phase (all workers get it at once), or stop early. */
export interface WorkerControlMessage {
  type: 'run' | 'stop';
}

/** Everything the parent sends. */
export type ParentMessage = WorkerConfigMessage | WorkerControlMessage;

/** Worker → parent: preload done. */
export interface WorkerLoadedMessage {
  type: 'loaded';
  /** Keys of the slice that could not be written. */
  failed: number;
}

/**
 * Worker → parent: its warm-up is over and its measured phase starts now. The parent samples the
 * servers' CPU at the first of these, so that reading leaves out preload and warm-up.
 */
export interface WorkerMeasuringMessage {
  type: 'measuring';
}

/** Worker → parent: counts so far, a few times a second while running. */
export interface WorkerProgressMessage {
  type: 'progress';
  ops: number;
  errors: number;
}

/**
 * Worker → parent: the measured phase's results. The pool (worker-pool.ts) sums two kinds of
 * operation, gets and puts, and merges their two histograms; with `--mix txn` a run has no plain
 * gets or puts, and its transactions travel in the write slot (`puts`, `putHistogram`): the
 * runner (bench-runner.ts) reports them as `txns` and `txn`.
 */
export interface WorkerResultMessage extends Omit<LoadResult, 'get' | 'put' | 'txn' | 'txns'> {
  type: 'result';
  /** hdr-histogram-js compressed base64, µs. `putHistogram`: the transactions' with `--mix txn`. */
  getHistogram: string;
  putHistogram: string;
  /**
   * The worker process's CPU, user + system in µs (`process.cpuUsage()`, every thread), from the
   * start of its measured phase to its end: what generating the measured load cost the client.
   */
  cpuMicros: number;
}

/** Worker → parent: the worker failed (it exits non-zero after sending this). */
export interface WorkerErrorMessage {
  type: 'error';
  message: string;
}

/** Everything a worker sends. */
export type WorkerMessage = WorkerLoadedMessage | WorkerMeasuringMessage | WorkerProgressMessage | WorkerResultMessage | WorkerErrorMessage;

/** Narrows an IPC payload to a {@link WorkerMessage} by its `type` (the peer is our own code; this guards against bugs). */
export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return typeof message === 'object' && message !== null && 'type' in message &&
    ['loaded', 'measuring', 'progress', 'result', 'error'].includes(String(message.type));
}

/** Narrows an IPC payload to a {@link ParentMessage}. */
export function isParentMessage(message: unknown): message is ParentMessage {
  return typeof message === 'object' && message !== null && 'type' in message && ['config', 'run', 'stop'].includes(String(message.type));
}
