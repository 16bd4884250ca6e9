/**
 * A bench worker process, started by `kvstore bench` with child_process.fork (see worker-protocol.ts).
 * It owns one KVClient, preloads its slice of the keyspace, waits for `run`, drives the closed loop
 * (load-loop.ts) with the workload's mix (gets and puts, puts with a TTL, or two-key transactions)
 * and sends its counts, its CPU time and its histograms back. It exits when done, or when the parent
 * goes away (the IPC channel closes).
 */
import { KVClient } from '../client/index.js';
import { deriveSeed, SeededRandom } from '../common/index.js';
import { encodeHistogram } from './histogram.js';
import { LoadCounters, preloadKeys, runClosedLoop, type LoadTarget } from './load-loop.js';
import { benchKeys, benchValue } from './workload.js';
import { isParentMessage, type WorkerConfigMessage, type WorkerMessage } from './worker-protocol.js';

const PROGRESS_INTERVAL_MS = 250;
/** Warm-up streams are seeded apart from the measured ones (worker index + this). */
const WARMUP_SEED_OFFSET = 1 << 20;

function send(message: WorkerMessage): void {
  if (process.connected) process.send?.(message);
}

function disconnect(): void {
  if (process.connected) process.disconnect();
}

async function runWorker(config: WorkerConfigMessage, started: Promise<void>, stop: AbortSignal): Promise<void> {
  const client = new KVClient({ manager: config.manager, ...(config.credentials ?? {}) });
  try {
    await client.init();
    const { mixName = 'get-put', ttlMs } = config.workload;
    const target: LoadTarget = {
      get: (key) => client.getBytes(key),
      put: (key, value) => client.put(key, value),
      putExpiring: (key, value, ttl) => client.put(key, value, { ttlMs: ttl }),
      writePair: async (first, second, value) => {
        const outcome = await client.txn({ compare: [{ key: first, exists: true }], success: [{ put: { key: first, value } }, { put: { key: second, value } }] });
        return outcome.succeeded;
      },
    };
    const keys = benchKeys(config.workload);
    const value = benchValue(config.workload.valueBytes);
    // With --mix ttl the preload's puts carry the TTL too: every key of the run is in the TTL index.
    const preloadTarget: LoadTarget = mixName === 'ttl' && ttlMs !== undefined ? { ...target, put: (key, data) => client.put(key, data, { ttlMs }) } : target;
    // Stopped (or the parent gone) during the preload: end here instead of writing the rest into a cluster no one measures.
    const failed = await preloadKeys(preloadTarget, keys.slice(config.preloadFrom, config.preloadTo), value, config.concurrency, 3, stop);
    if (stop.aborted) return;
    send({ type: 'loaded', failed });
    await started;
    const loop = {
      keys, concurrency: config.concurrency, getPercent: config.workload.getPercent, mixName, value, signal: stop,
      ...(ttlMs === undefined ? {} : { ttlMs }),
    };
    if (config.warmupMs !== undefined && config.warmupMs > 0) {
      // The same loop, unrecorded, with its own random stream: JIT compilation and connection
      // set-up happen here instead of in the measured phase.
      const warmupRandom = new SeededRandom(deriveSeed(config.seed, config.workerIndex + WARMUP_SEED_OFFSET));
      await runClosedLoop(target, { ...loop, durationMs: config.warmupMs, random: warmupRandom, counters: new LoadCounters() });
    }
    const counters = new LoadCounters();
    send({ type: 'measuring' });
    const progress = setInterval(() => send({ type: 'progress', ops: counters.ops, errors: counters.errors }), PROGRESS_INTERVAL_MS);
    try {
      const cpuStart = process.cpuUsage();
      const result = await runClosedLoop(target, {
        ...loop,
        ...(config.ops === undefined ? {} : { ops: config.ops }),
        ...(config.durationMs === undefined ? {} : { durationMs: config.durationMs }),
        random: new SeededRandom(deriveSeed(config.seed, config.workerIndex)),
        counters,
      });
      // Read before the histograms are encoded: that is reporting, not load.
      const cpu = process.cpuUsage(cpuStart);
      // With --mix txn the transactions go in the write slot (see WorkerResultMessage): the run has no plain puts.
      const writesAreTxns = mixName === 'txn';
      send({
        type: 'result',
        ops: result.ops,
        gets: result.gets,
        puts: writesAreTxns ? result.txns : result.puts,
        errors: result.errors,
        errorsByKind: result.errorsByKind,
        elapsedMs: result.elapsedMs,
        getHistogram: encodeHistogram(result.get),
        putHistogram: encodeHistogram(writesAreTxns ? result.txn : result.put),
        cpuMicros: cpu.user + cpu.system,
      });
    } finally {
      clearInterval(progress);
    }
  } finally {
    await client.finalize();
  }
}

function main(): void {
  if (process.send === undefined) {
    process.stderr.write('the bench worker runs only as a forked child of `kvstore bench`\n');
    process.exitCode = 2;
    return;
  }
  const stop = new AbortController();
  let startRun: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (startRun = resolve));
  let running = false;
  process.on('disconnect', () => {
    stop.abort();
    startRun();
  });
  process.on('message', (message: unknown) => {
    if (!isParentMessage(message)) return;
    if (message.type === 'config' && !running) {
      running = true;
      void runWorker(message, started, stop.signal)
        .then(disconnect)
        .catch((error: unknown) => {
          send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
          process.exitCode = 1;
          disconnect();
        });
    } else if (message.type === 'run') {
      startRun();
    } else if (message.type === 'stop') {
      stop.abort();
      startRun();
    }
  });
}

main();
