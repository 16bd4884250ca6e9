/**
 * The parent side of the bench load: forks `workers` worker processes (worker.ts), splits the
 * keyspace preload, the in-flight requests and the operation count among them, starts their measured
 * phases together (telling the caller when measuring starts and ends), and merges their results,
 * histograms and CPU times. Workers are killed by PID if anything
 * fails, and always reaped before this resolves.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClientCredentials } from '../cluster/index.js';
import { mergeEncodedHistograms } from './histogram.js';
import type { LoadResult } from './load-loop.js';
import type { WorkloadSettings } from './workload.js';
import { isWorkerMessage, type WorkerConfigMessage, type WorkerResultMessage } from './worker-protocol.js';

/** A worker process failed or exited before sending its results. */
export class BenchWorkerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchWorkerError';
  }
}

/** One load run from worker processes. */
export interface WorkerPoolPlan {
  /** The manager of the cluster under test. */
  manager: string;
  /** What the workers' clients present (TLS, a token); none for a plaintext, open cluster. */
  credentials?: ClientCredentials;
  /** Worker processes (each with its own KVClient). */
  workers: number;
  workload: WorkloadSettings;
  /** Requests in flight in total, split evenly over the workers (at least one each). */
  concurrency: number;
  /** Operations in total, split over the workers; or a duration in ms for each. */
  ops?: number;
  durationMs?: number;
  /** Unrecorded load before the measured phase, ms (each worker). */
  warmupMs?: number;
  seed: number;
  /** Called a few times a second during the measured phase with the totals so far. */
  onProgress?: (ops: number, errors: number) => void;
  /**
   * Called once, when the first worker's measured phase starts (after the preload and its warm-up;
   * the workers start together, so the others follow within moments).
   */
  onMeasureStart?: () => void;
  /** Called once, when the last worker's results arrive: every measured phase is over. */
  onMeasureEnd?: () => void;
  /** Aborting stops the workers early; the result covers what they did. */
  signal?: AbortSignal;
}

/**
 * Merged results of every worker: their counts summed, histograms merged, and
 * `elapsedMs` the longest worker's measured phase (workers start together).
 */
export interface WorkerPoolResult extends LoadResult {
  /** Keys the preload could not write. */
  preloadFailed: number;
  /** How long the preload took, ms. */
  preloadMs: number;
  /** CPU of the worker processes during their measured phases, user + system µs, summed. */
  clientCpuMicros: number;
}

/** Splits `total` into `parts` near-equal whole numbers (the first ones get the remainder). */
export function splitEvenly(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < total % parts ? 1 : 0));
}

/** Runs the plan; rejects if a worker fails or exits early. */
export async function runWorkerPool(plan: WorkerPoolPlan): Promise<WorkerPoolResult> {
  const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));
  const concurrencies = splitEvenly(plan.concurrency, plan.workers).map((c) => Math.max(1, c));
  const opsShares = plan.ops === undefined ? undefined : splitEvenly(plan.ops, plan.workers);
  const preloadShares = splitEvenly(plan.workload.keys, plan.workers);
  const children: ChildProcess[] = [];
  const progress = Array.from({ length: plan.workers }, () => ({ ops: 0, errors: 0 }));
  const results: (WorkerResultMessage | undefined)[] = Array.from({ length: plan.workers }, () => undefined);
  let loadedCount = 0;
  let measuring = false;
  let preloadFailed = 0;

  let fail: (error: Error) => void = () => undefined;
  let allLoaded: () => void = () => undefined;
  let allDone: () => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  const loaded = new Promise<void>((resolve) => (allLoaded = resolve));
  const done = new Promise<void>((resolve) => (allDone = resolve));
  failed.catch(() => undefined); // observed through the races below

  const stopAll = (): void => {
    for (const child of children) if (child.connected) child.send({ type: 'stop' });
  };
  plan.signal?.addEventListener('abort', stopAll, { once: true });
  try {
    let preloadFrom = 0;
    for (let index = 0; index < plan.workers; index++) {
      const child = fork(workerScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      child.on('message', (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        if (message.type === 'loaded') {
          preloadFailed += message.failed;
          if (++loadedCount === plan.workers) allLoaded();
        } else if (message.type === 'measuring') {
          if (!measuring) {
            measuring = true;
            plan.onMeasureStart?.();
          }
        } else if (message.type === 'progress') {
          progress[index] = { ops: message.ops, errors: message.errors };
          plan.onProgress?.(progress.reduce((sum, p) => sum + p.ops, 0), progress.reduce((sum, p) => sum + p.errors, 0));
        } else if (message.type === 'result') {
          results[index] = message;
          if (results.every((result) => result !== undefined)) {
            plan.onMeasureEnd?.();
            allDone();
          }
        } else {
          fail(new BenchWorkerError(`bench worker ${index} failed: ${message.message}`));
        }
      });
      child.on('exit', (code, signal) => {
        if (results[index] === undefined) fail(new BenchWorkerError(`bench worker ${index} exited early (code ${String(code)}, signal ${String(signal)})`));
      });
      const config: WorkerConfigMessage = {
        type: 'config',
        manager: plan.manager,
        ...(plan.credentials === undefined ? {} : { credentials: pemCredentials(plan.credentials) }),
        workerIndex: index,
        workload: plan.workload,
        preloadFrom,
        preloadTo: preloadFrom + (preloadShares[index] ?? 0),
        concurrency: concurrencies[index] ?? 1,
        seed: plan.seed,
        ...(opsShares === undefined ? {} : { ops: opsShares[index] ?? 0 }),
        ...(plan.durationMs === undefined ? {} : { durationMs: plan.durationMs }),
        ...(plan.warmupMs === undefined ? {} : { warmupMs: plan.warmupMs }),
      };
      preloadFrom = config.preloadTo;
      child.send(config);
    }
    const preloadStarted = performance.now();
    await Promise.race([loaded, failed]);
    const preloadMs = performance.now() - preloadStarted;
    for (const child of children) child.send({ type: 'run' });
    await Promise.race([done, failed]);
    const finished = results.filter((result): result is WorkerResultMessage => result !== undefined);
    const errorsByKind: Record<string, number> = {};
    for (const result of finished) {
      for (const [kind, count] of Object.entries(result.errorsByKind)) errorsByKind[kind] = (errorsByKind[kind] ?? 0) + count;
    }
    const sum = (pick: (result: WorkerResultMessage) => number): number => finished.reduce((total, result) => total + pick(result), 0);
    return {
      ops: sum((r) => r.ops),
      gets: sum((r) => r.gets),
      puts: sum((r) => r.puts),
      errors: sum((r) => r.errors),
      errorsByKind,
      elapsedMs: Math.max(...finished.map((r) => r.elapsedMs)),
      get: mergeEncodedHistograms(finished.map((r) => r.getHistogram)),
      put: mergeEncodedHistograms(finished.map((r) => r.putHistogram)),
      preloadFailed,
      preloadMs,
      clientCpuMicros: sum((r) => r.cpuMicros),
    };
  } finally {
    plan.signal?.removeEventListener('abort', stopAll);
    await reap(children);
  }
}

/** Waits for every worker to exit; one still running after a grace period is killed by PID. */
async function reap(children: ChildProcess[]): Promise<void> {
  const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;
  const exits = children.filter(alive).map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())));
  for (const child of children) if (child.connected) child.disconnect();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(exits), new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))]);
  clearTimeout(timer);
  for (const child of children) if (alive(child)) child.kill('SIGKILL');
  await Promise.all(exits);
}

/** Credentials as the IPC channel carries them: PEM text, not bytes (JSON would mangle a Buffer). */
function pemCredentials(credentials: ClientCredentials): NonNullable<WorkerConfigMessage['credentials']> {
  const text = (pem: string | Uint8Array): string => (typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8'));
  const { tls, token } = credentials;
  return {
    ...(token === undefined ? {} : { token }),
    ...(tls === undefined ? {} : {
      tls: { ca: text(tls.ca), ...(tls.cert === undefined ? {} : { cert: text(tls.cert) }), ...(tls.key === undefined ? {} : { key: text(tls.key) }) },
    }),
  };
}
