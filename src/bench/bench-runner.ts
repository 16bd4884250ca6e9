/**
 * `kvstore bench` end to end: for each replication factor a fresh local cluster (or the one at
 * `--manager`), a preload and a measured phase from worker processes, the key distribution from the
 * shard map, a printed table per run, and with an output dir `results.json` plus the charts.
 */
import { mkdirSync } from 'node:fs';
import { connectManager, type ClientCredentials } from '../cluster/index.js';
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';
import { writeCharts, type ChartImporters } from './charts.js';
import { newLatencyHistogram, percentilesOf } from './histogram.js';
import { compareNodeIds, keyDistribution } from './key-distribution.js';
import { LocalCluster } from './local-cluster.js';
import { clockTicksPerSecond, cpuMicrosBetween, hasProcStat, readCpuMicros } from './process-cpu.js';
import { createProgress } from './progress.js';
import { machineInfo, perOp, renderRunTable, writeResultsJson, type BenchResults, type BenchRun, type BenchSettings } from './results.js';
import { runWorkerPool } from './worker-pool.js';
import { benchKeys, checkWorkload, describeOperation, formatTtl, workloadOf, type WorkloadSettings } from './workload.js';

/** How the bench reports as it goes. */
export interface BenchOutput {
  /** Results (the tables, the files written): stdout. */
  result(text: string): void;
  /** Progress notes (cluster starting, preloading): stderr. */
  note(text: string): void;
}

/** Runs the whole bench. `outDir` (optional) receives results.json and the charts. */
export async function runBench(
  settings: BenchSettings, output: BenchOutput, outDir?: string, signal?: AbortSignal,
  /** For `--manager`: what the clients present. Not in the settings, which go into results.json. */
  credentials: ClientCredentials = {},
): Promise<BenchResults> {
  const workload = workloadOf(settings);
  checkWorkload(workload);
  const timedMs = settings.durationSeconds === null ? null : (settings.warmupSeconds + settings.durationSeconds) * 1000;
  if (workload.ttlMs !== undefined && timedMs !== null && workload.ttlMs <= timedMs) {
    output.note(`--ttl ${formatTtl(workload.ttlMs)} is within the warm-up and run (${String(timedMs / 1000)} s): keys not rewritten in time expire under load`);
  }
  if (outDir !== undefined) mkdirSync(outDir, { recursive: true });
  const results: BenchResults = { startedAt: new Date().toISOString(), settings, machine: machineInfo(), runs: [] };

  if (settings.manager !== null) {
    results.runs.push(await measure(settings, workload, settings.manager, credentials, output, signal));
  } else {
    for (const replicas of settings.replicas) {
      if (signal?.aborted === true) break;
      const nodes = settings.nodes ?? 3;
      const shards = settings.shards ?? 64;
      output.note(`starting a local cluster: ${nodes} nodes, ${replicas} replicas per shard, ${shards} shards${settings.tls === true ? ', TLS' : ''}`);
      const cluster = await LocalCluster.start({ nodes, replicas, shards, leaseReads: settings.leaseReads !== false, tls: settings.tls === true }, signal);
      try {
        results.runs.push(await measure(settings, workload, cluster.managerAddress, cluster.credentials, output, signal, cluster));
      } finally {
        await cluster.stop();
      }
    }
  }

  if (outDir !== undefined) await writeBenchFiles(outDir, results, output);
  return results;
}

/**
 * Writes results.json, then the charts when their optional packages load (`importers` for tests);
 * without them one note says how to get them, and the results are written all the same.
 */
export async function writeBenchFiles(outDir: string, results: BenchResults, output: BenchOutput, importers?: ChartImporters): Promise<string[]> {
  const written = [writeResultsJson(outDir, results)];
  const charts = await writeCharts(outDir, results, importers);
  if ('written' in charts) written.push(...charts.written);
  else output.note(charts.skipped);
  output.result(`wrote ${written.join(', ')}`);
  return written;
}

/**
 * One run against the cluster at `manager`. `cluster` is given when this bench started it: then the
 * CPU of its processes is read at the start and end of the measured phase.
 */
async function measure(
  settings: BenchSettings, workload: WorkloadSettings, manager: string, credentials: ClientCredentials, output: BenchOutput,
  signal?: AbortSignal, cluster?: LocalCluster,
): Promise<BenchRun> {
  const before = await fetchMap(manager, credentials);
  const warmup = settings.warmupSeconds > 0 ? `a ${String(settings.warmupSeconds)} s warm-up, then ` : '';
  output.note(`preloading ${settings.keys} keys, then ${warmup}${settings.ops !== null ? `${settings.ops} ops` : `${String(settings.durationSeconds)} s`} ` +
    `from ${settings.clients} client processes, ${settings.concurrency} in flight`);
  const timed = settings.ops === null;
  const total = settings.ops ?? settings.durationSeconds ?? 0;
  const progress = createProgress(`K=${before.replicationFactor}`, total, timed ? 's' : 'ops');
  const phaseStartedMs = { value: 0 };
  const serverCpu = serverCpuMeter(cluster);
  let result;
  try {
    result = await runWorkerPool({
      manager,
      credentials,
      workers: settings.clients,
      workload,
      concurrency: settings.concurrency,
      ...(settings.ops === null ? {} : { ops: settings.ops }),
      ...(settings.durationSeconds === null ? {} : { durationMs: settings.durationSeconds * 1000 }),
      ...(settings.warmupSeconds > 0 ? { warmupMs: settings.warmupSeconds * 1000 } : {}),
      seed: settings.seed,
      onProgress: (ops, errors) => {
        if (phaseStartedMs.value === 0) phaseStartedMs.value = performance.now();
        progress.update(timed ? (performance.now() - phaseStartedMs.value) / 1000 : ops + errors, ops, errors);
      },
      onMeasureStart: serverCpu.start,
      onMeasureEnd: serverCpu.end,
      ...(signal === undefined ? {} : { signal }),
    });
  } finally {
    progress.stop();
  }
  const map = await fetchMap(manager, credentials);
  const distribution = await keyDistribution(benchKeys(workload), map);
  const leadersPerNode: Record<string, number> = {};
  for (const node of [...map.nodes].sort((a, b) => compareNodeIds(a.nodeId, b.nodeId))) leadersPerNode[node.nodeId] = 0;
  for (const shard of map.shards) if (shard.leaderNodeId !== '') leadersPerNode[shard.leaderNodeId] = (leadersPerNode[shard.leaderNodeId] ?? 0) + 1;
  const elapsedSeconds = result.elapsedMs / 1000;
  // With --mix txn the workers send their transactions in the write slot (worker-protocol.ts): name them here.
  const txnMix = workload.mixName === 'txn';
  const run: BenchRun = {
    nodes: map.nodes.length,
    replicas: map.replicationFactor,
    shards: map.shardCount,
    ops: result.ops,
    gets: result.gets,
    puts: txnMix ? 0 : result.puts,
    ...(txnMix ? { txns: result.puts } : {}),
    opsPerSec: elapsedSeconds > 0 ? Math.round(result.ops / elapsedSeconds) : 0,
    elapsedSeconds: Math.round(elapsedSeconds * 100) / 100,
    get: percentilesOf(result.get),
    put: percentilesOf(txnMix ? newLatencyHistogram() : result.put),
    ...(txnMix ? { txn: percentilesOf(result.put) } : {}),
    errors: result.errors,
    errorsByKind: result.errorsByKind,
    keysPerNode: distribution.keysPerNode,
    meanKeysPerNode: distribution.meanKeysPerNode,
    maxKeyDeviationPercent: distribution.maxDeviationPercent,
    leadersPerNode,
    preloadSeconds: Math.round(result.preloadMs / 10) / 100,
    preloadFailed: result.preloadFailed,
    cpuMicrosPerOp: {
      nodes: perOp(serverCpu.nodesMicros(), result.ops),
      manager: perOp(serverCpu.managerMicros(), result.ops),
      clients: perOp(result.clientCpuMicros, result.ops),
    },
  };
  const nodeCpuMissing = cluster === undefined ? '--manager: not a cluster this bench started'
    : result.ops === 0 ? 'no successful ops'
      : !hasProcStat() ? 'no /proc on this platform' : 'a node exited during the run';
  output.result(renderRunTable(run, nodeCpuMissing, workload.mixName === undefined ? undefined : describeOperation(workload)));
  return run;
}

/**
 * Reads the CPU of a local cluster's processes when the pool says measuring starts and ends. Without
 * a cluster (`--manager`) every reading is null: the bench cannot see remote processes.
 */
function serverCpuMeter(cluster: LocalCluster | undefined): {
  start: () => void;
  end: () => void;
  nodesMicros: () => number | null;
  managerMicros: () => number | null;
} {
  if (cluster === undefined) return { start: () => undefined, end: () => undefined, nodesMicros: () => null, managerMicros: () => null };
  clockTicksPerSecond(); // runs `getconf` once, here rather than inside the measured window
  let pids: { manager: number[]; nodes: number[] } = { manager: [], nodes: [] };
  let startNodes: Map<number, number> | null = null;
  let startManager: Map<number, number> | null = null;
  let endNodes: Map<number, number> | null = null;
  let endManager: Map<number, number> | null = null;
  return {
    start: () => {
      pids = cluster.pidsByRole();
      startNodes = readCpuMicros(pids.nodes);
      startManager = readCpuMicros(pids.manager);
    },
    end: () => {
      endNodes = readCpuMicros(pids.nodes);
      endManager = readCpuMicros(pids.manager);
    },
    nodesMicros: () => (pids.nodes.length === 0 ? null : cpuMicrosBetween(startNodes, endNodes)),
    managerMicros: () => (pids.manager.length === 0 ? null : cpuMicrosBetween(startManager, endManager)),
  };
}

async function fetchMap(manager: string, credentials: ClientCredentials): Promise<GetClusterMapResponse> {
  const connection = connectManager({ address: manager, credentials });
  try {
    return await connection.getClusterMap(5000);
  } finally {
    connection.close();
  }
}
