/**
 * The bench's results: the `results.json` shape (documented in docs/benchmarks.md; fields may be added,
 * never renamed), the machine description, and the per-run text table.
 */
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { LatencyPercentiles } from './histogram.js';
import type { MixName } from './workload.js';

/** The settings a bench ran with (`--…` flags after defaults). */
export interface BenchSettings {
  /** `--manager` when an existing cluster was measured; null for local clusters. */
  manager: string | null;
  /** `--nodes` of the local clusters; null with `--manager`. */
  nodes: number | null;
  /** `--replicas`: one local cluster (and run) per replication factor; empty with `--manager`. */
  replicas: number[];
  /** `--shards` of the local clusters; null with `--manager`. */
  shards: number | null;
  /** `--ops` (total per run) or `--duration` (seconds per run); one of them is null. */
  ops: number | null;
  durationSeconds: number | null;
  /** `--warmup`: seconds of unrecorded load before each measurement (0: none). */
  warmupSeconds: number;
  /** `--mix`: percentage of gets (0 with `--mix txn`, 50 with `--mix ttl`). */
  mix: number;
  /**
   * Which operations: `get-put` (`--mix` was a percentage), `txn` (every op one two-key
   * transaction) or `ttl` (gets and puts, every put with `ttlMs`). Older results lack it (`get-put`).
   */
  mixName?: MixName;
  /** `--ttl` of `--mix ttl`, ms; null with other mixes. Older results lack it. */
  ttlMs?: number | null;
  /** What one operation (`ops`, `opsPerSec`) is, in words. Older results lack it. */
  opDescription?: string;
  /** `--concurrency`: requests in flight in total. */
  concurrency: number;
  /** `--clients`: worker processes. */
  clients: number;
  keys: number;
  keyBytes: number;
  valueBytes: number;
  seed: number;
  /** Whether local nodes answered reads under the leader's lease (`--no-lease-reads`: false); null with `--manager`. */
  leaseReads: boolean | null;
  /** Whether the local clusters ran with mutual TLS (`--tls`); with `--manager`, whether the clients spoke TLS. Older results lack it. */
  tls?: boolean;
}

/** The machine the numbers came from. */
export interface MachineInfo {
  /** Logical CPUs. */
  cpus: number;
  /** CPU model string. */
  model: string;
  /** Node.js version, e.g. v20.19.0. */
  node: string;
  platform: string;
  /** Total memory in GiB. */
  memoryGiB: number;
}

/** One measured run: one cluster, one replication factor. Latencies in ms. */
export interface BenchRun {
  nodes: number;
  replicas: number;
  shards: number;
  /** Successful operations in the measured phase (with `--mix txn`, transactions). */
  ops: number;
  gets: number;
  puts: number;
  /** With `--mix txn` only: successful transactions (each wrote two keys), and their latencies. */
  txns?: number;
  txn?: LatencyPercentiles;
  /** Successful operations per second of the measured phase. */
  opsPerSec: number;
  /** Length of the measured phase, seconds. */
  elapsedSeconds: number;
  get: LatencyPercentiles;
  put: LatencyPercentiles;
  /** Failed operations, and by error code. */
  errors: number;
  errorsByKind: Record<string, number>;
  /**
   * node id → keys of the keyspace it stores: each key counts once on every node holding a voting
   * replica of its shard (from the shard map after the run), so the counts add up to replicas × keys.
   */
  keysPerNode: Record<string, number>;
  meanKeysPerNode: number;
  /** Largest |count − mean| / mean, percent. */
  maxKeyDeviationPercent: number;
  /** node id → shard leaders it held after the run (where gets and puts were served). */
  leadersPerNode: Record<string, number>;
  /** How long the preload of every key took, seconds; and keys it could not write. */
  preloadSeconds: number;
  preloadFailed: number;
  /**
   * CPU (user + system) per successful operation of the measured phase, µs, 1 decimal. `nodes`: every
   * node process summed, from /proc, from the first worker's start of measuring to the last worker's
   * results; null with `--manager` (processes this bench did not start), without /proc, or when a
   * node exited during the run. `manager`: the manager process, the same way. `clients`: every bench
   * worker process summed, each over its own measured phase (the bench's parent process is not
   * counted). Each is null when no operation succeeded.
   */
  cpuMicrosPerOp: CpuPerOp;
}

/** CPU µs per operation, by kind of process (see {@link BenchRun.cpuMicrosPerOp}). */
export interface CpuPerOp {
  nodes: number | null;
  manager: number | null;
  clients: number | null;
}

/** The whole `results.json`. */
export interface BenchResults {
  /** ISO time the bench started. */
  startedAt: string;
  settings: BenchSettings;
  machine: MachineInfo;
  runs: BenchRun[];
}

/** Describes this machine. */
export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpus: list.length,
    model: list[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  };
}

/** `micros` per operation, rounded to 0.1 µs; null when either is unknown or nothing succeeded. */
export function perOp(micros: number | null, ops: number): number | null {
  return micros === null || ops <= 0 ? null : Math.round((micros / ops) * 10) / 10;
}

/** Writes `DIR/results.json` (pretty-printed); returns its path. */
export function writeResultsJson(dir: string, results: BenchResults): string {
  const path = join(dir, 'results.json');
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  return path;
}

/**
 * One run as text: throughput, latency percentiles, errors, CPU per operation, and the keys per node
 * (count and %). `nodeCpuMissing` says why the node CPU is null, when it is (e.g. `--manager`).
 * `opDescription`, for the named mixes, says what one op is (a line under the first); a run with
 * transactions shows their row instead of the get and put rows.
 */
export function renderRunTable(run: BenchRun, nodeCpuMissing = 'not measured', opDescription?: string): string {
  const lines: string[] = [];
  lines.push(`nodes ${run.nodes}  replicas ${run.replicas}  shards ${run.shards}: ${run.opsPerSec.toLocaleString('en-US')} ops/s ` +
    `(${run.ops.toLocaleString('en-US')} ops in ${run.elapsedSeconds.toFixed(1)} s), errors ${run.errors}${formatErrorKinds(run.errorsByKind)}`);
  if (opDescription !== undefined) lines.push(`  one op: ${opDescription}`);
  const rows: [string, LatencyPercentiles][] = run.txn !== undefined ? [['txn', run.txn]] : [['get', run.get], ['put', run.put]];
  lines.push(...alignColumns([
    ['op', 'count', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms'],
    ...rows.map(([op, p]) => [op, String(p.count), fmt(p.p50), fmt(p.p90), fmt(p.p99), fmt(p.p999), fmt(p.max)]),
  ]).map((line) => `  ${line}`));
  const cpu = run.cpuMicrosPerOp;
  const micros = (value: number | null, missing: string): string => (value === null ? `n/a (${missing})` : `${value.toFixed(1)} µs`);
  lines.push(`  cpu per op: nodes ${micros(cpu.nodes, nodeCpuMissing)}, clients ${micros(cpu.clients, 'no successful ops')}` +
    (cpu.manager === null ? '' : `, manager ${cpu.manager.toFixed(1)} µs`));
  const total = Object.values(run.keysPerNode).reduce((sum, count) => sum + count, 0);
  lines.push(`  keys per node (each key on every node holding a replica of its shard; mean ${run.meanKeysPerNode}, worst ±${run.maxKeyDeviationPercent}%):`);
  lines.push(...alignColumns([
    ['node', 'keys', '% of total', 'leaders'],
    ...Object.entries(run.keysPerNode).map(([node, count]) => [
      node, String(count), total === 0 ? '0.0' : ((100 * count) / total).toFixed(1), String(run.leadersPerNode[node] ?? 0),
    ]),
  ]).map((line) => `    ${line}`));
  return lines.join('\n');
}

function fmt(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}

function formatErrorKinds(kinds: Record<string, number>): string {
  const entries = Object.entries(kinds);
  return entries.length === 0 ? '' : ` (${entries.map(([kind, count]) => `${kind} ${count}`).join(', ')})`;
}

/** Right-aligns every column but the first. */
function alignColumns(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  '));
}
