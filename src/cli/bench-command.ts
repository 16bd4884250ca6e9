/**
 * `kvstore bench`: throughput, latency and key spread (issue 6). With `--nodes/--replicas` it starts a
 * fresh local cluster per replication factor; with `--manager` it measures that cluster. Load comes
 * from `--clients` worker processes; each run prints a table, and `--out DIR` writes results.json and
 * the charts (docs/benchmarks.md documents both). Exit 0; 2 bad input; 3 cluster unavailable.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { BenchSettings } from '../bench/results.js';
import { checkWorkload, DEFAULT_BENCH_TTL_MS, describeOperation, formatTtl, parseMix, workloadOf, WorkloadError } from '../bench/workload.js';
import { exitCodeForLoadError } from './load-errors.js';
import { BadInputError, checkAddress, EXIT, failWith, onStopSignals, parseDuration, parseInteger, parseSeconds, reportError } from './client-util.js';
import { addClientSecurityOptions, clientSecurityFromFlags, type ClientSecurity, type ClientSecurityFlags } from './security-flags.js';

/** Operations per run when neither `--ops` nor `--duration` is given. */
const DEFAULT_OPS = 20_000;
/** The shard count of local clusters is the smallest multiple of `--nodes` at or above this. */
const MIN_DEFAULT_SHARDS = 64;
/**
 * Without `--clients`: one worker process per this many requests in flight. A worker drives 128
 * requests at ~20–30 µs of CPU per operation (docs/benchmarks.md); with fewer, each batch it
 * sends carries fewer of them and its fixed costs per message weigh more: at 64 in flight four
 * workers of 16 took 54 µs per operation, one worker of 64 took 28.
 */
const REQUESTS_PER_CLIENT_PROCESS = 128;
/** …and at most this many, the default before: 512 in flight (the default) still gets 4. */
const MAX_DEFAULT_CLIENT_PROCESSES = 4;

/** The worker processes for `concurrency` requests in flight when `--clients` is not given. */
export function defaultClientProcesses(concurrency: number): number {
  return Math.min(MAX_DEFAULT_CLIENT_PROCESSES, Math.max(1, Math.ceil(concurrency / REQUESTS_PER_CLIENT_PROCESS)));
}

interface BenchFlags extends ClientSecurityFlags {
  manager?: string;
  nodes?: string;
  replicas?: string;
  shards?: string;
  ops?: string;
  duration?: string;
  warmup: string;
  mix: string;
  ttl?: string;
  concurrency: string;
  clients?: string;
  keys: string;
  keyBytes: string;
  valueBytes: string;
  seed: string;
  out?: string;
  leaseReads: boolean;
  tls?: boolean;
}

/** Registers `bench` on the root program. */
export function registerBenchCommand(program: Command): void {
  const bench = program
    .command('bench')
    .description('measure throughput, latency and key spread; one local cluster per replication factor, or --manager')
    .option('--manager <host:port>', 'measure this running cluster instead of starting local ones')
    .option('--nodes <n>', 'nodes of each local cluster', '3')
    .option('--replicas <k,…>', 'replication factors: one local cluster and run per value', '3')
    .option('--shards <s>', `shards of each local cluster (default: the smallest multiple of --nodes ≥ ${MIN_DEFAULT_SHARDS}, so every node holds as many)`)
    .option('--ops <n>', `operations per run (default ${DEFAULT_OPS} unless --duration)`)
    .option('--duration <seconds>', 'run each measurement this long instead of --ops')
    .option('--warmup <seconds>', 'run the workload this long before each measurement, unrecorded (JIT and connections warm up)', '0')
    .option('--mix <pct|txn|ttl>', 'percentage of gets, the rest puts; or txn: every op one transaction, if {gN}a exists put {gN}a and {gN}b ' +
      '(keys in pairs under a hash tag, --keys even); or ttl: 50% gets and 50% puts, every put (the preload\'s too) with --ttl', '50')
    .option('--ttl <duration>', `with --mix ttl: the TTL of every put (500ms, 30s, 10m; default ${formatTtl(DEFAULT_BENCH_TTL_MS)}, longer than ` +
      'a usual run, so no key expires; a TTL shorter than the preload, warm-up and run makes keys expire under load)')
    .option('--concurrency <c>', 'requests in flight in total; lower it to see latency under light load', '512')
    .option('--clients <p>', `client worker processes sharing the load (default: one per ${REQUESTS_PER_CLIENT_PROCESS} requests in flight, ` +
      `at most ${MAX_DEFAULT_CLIENT_PROCESSES})`)
    .option('--keys <n>', 'keyspace size; every key is written before the measurement', '10000')
    .option('--key-bytes <b>', 'bytes per key (≤ 20)', '16')
    .option('--value-bytes <b>', 'bytes per value (≤ 1024)', '128')
    .option('--seed <n>', 'seed of the key and operation choices', '1')
    .option('--out <dir>', 'write results.json and the charts (SVG and PNG) here')
    .option('--no-lease-reads', 'start the local nodes with --no-lease-reads: each read batch is confirmed by a ReadIndex round')
    .option('--tls', 'start the local clusters with mutual TLS (certificates made for the run); the clients present a client certificate');
  addClientSecurityOptions(bench);
  bench
    .action(async (flags: BenchFlags, command: Command) => {
      let settings: BenchSettings;
      let credentials: ClientSecurity;
      try {
        settings = parseBenchFlags(flags, (name) => command.getOptionValueSource(name) === 'cli');
        credentials = settings.manager === null ? {} : clientSecurityFromFlags(flags);
        if (settings.manager === null && (flags.tlsCa !== undefined || flags.token !== undefined)) {
          throw new BadInputError('--tls-ca, --cert, --key and --token are for --manager; local clusters take --tls');
        }
        if (settings.manager !== null && flags.tls === true) throw new BadInputError('--tls starts local clusters with TLS; with --manager give --tls-ca');
      } catch (error) {
        reportError(error);
        return;
      }
      process.exitCode = await runBenchCommand(settings, credentials, flags.out === undefined ? undefined : resolve(flags.out));
    });
}

/** Validates the flags; throws {@link BadInputError}. `given(name)` says whether a flag was on the command line. */
export function parseBenchFlags(flags: BenchFlags, given: (name: string) => boolean): BenchSettings {
  if (flags.ops !== undefined && flags.duration !== undefined) throw new BadInputError('give --ops or --duration, not both');
  const manager = flags.manager === undefined ? null : checkAddress(flags.manager, '--manager');
  if (manager !== null) {
    const localOnly = { nodes: '--nodes', replicas: '--replicas', shards: '--shards', leaseReads: '--no-lease-reads' };
    const clashing = Object.entries(localOnly).filter(([name]) => given(name)).map(([, flag]) => flag);
    if (clashing.length > 0) throw new BadInputError(`--manager measures a running cluster; drop ${clashing.join(', ')}`);
  }
  const nodes = parseInteger(flags.nodes ?? '3', '--nodes', 1, 100);
  const replicas = manager !== null ? [] : (flags.replicas ?? '3').split(',').map((text) => parseInteger(text, '--replicas', 1, 100));
  for (const k of replicas) {
    if (k > nodes) throw new BadInputError(`--replicas ${k} is larger than --nodes ${nodes}: each replica of a shard needs its own node`);
  }
  const shards = flags.shards !== undefined ? parseInteger(flags.shards, '--shards', 1, 1_000_000) : nodes * Math.ceil(MIN_DEFAULT_SHARDS / nodes);
  const ops = flags.ops !== undefined ? parseInteger(flags.ops, '--ops', 1) : flags.duration === undefined ? DEFAULT_OPS : null;
  const concurrency = parseInteger(flags.concurrency, '--concurrency', 1, 100_000);
  const clients = flags.clients === undefined ? defaultClientProcesses(concurrency) : parseInteger(flags.clients, '--clients', 1, 64);
  const mix = asBadInput(() => parseMix(flags.mix));
  if (flags.ttl !== undefined && mix.mixName !== 'ttl') throw new BadInputError(`--ttl is the TTL of --mix ttl's puts; with --mix ${flags.mix} drop it`);
  const ttlMs = mix.mixName !== 'ttl' ? null : flags.ttl === undefined ? DEFAULT_BENCH_TTL_MS : parseDuration(flags.ttl, '--ttl');
  if (concurrency < clients) throw new BadInputError(`--concurrency ${concurrency} is below --clients ${clients}: every client needs at least one request in flight`);
  const settings: BenchSettings = {
    manager,
    nodes: manager === null ? nodes : null,
    replicas,
    shards: manager === null ? shards : null,
    ops,
    durationSeconds: flags.duration === undefined ? null : parseSeconds(flags.duration, '--duration'),
    warmupSeconds: parseInteger(flags.warmup, '--warmup', 0, 3600),
    mix: mix.getPercent,
    mixName: mix.mixName,
    ttlMs,
    concurrency,
    clients,
    keys: parseInteger(flags.keys, '--keys', 1, 10_000_000),
    keyBytes: parseInteger(flags.keyBytes, '--key-bytes', 1, 1000),
    valueBytes: parseInteger(flags.valueBytes, '--value-bytes', 0, 1_000_000),
    seed: parseInteger(flags.seed, '--seed', 0, 2 ** 32 - 1),
    leaseReads: manager === null ? flags.leaseReads : null,
    tls: manager === null ? flags.tls === true : flags.tlsCa !== undefined,
  };
  const workload = workloadOf(settings);
  asBadInput(() => checkWorkload(workload));
  return { ...settings, opDescription: describeOperation(workload) };
}

/** Runs `check`, turning a {@link WorkloadError} into a {@link BadInputError} (exit 2, one line). */
function asBadInput<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof WorkloadError) throw new BadInputError(error.message);
    throw error;
  }
}

async function runBenchCommand(settings: BenchSettings, credentials: ClientSecurity, outDir: string | undefined): Promise<number> {
  const interrupt = new AbortController();
  const onSignal = (): void => interrupt.abort();
  const stopListening = onStopSignals(onSignal);
  try {
    // Loaded here, not at start-up: the charts' libraries (vega, resvg) would otherwise load in
    // every process the CLI starts, nodes included.
    const { runBench } = await import('../bench/bench-runner.js');
    await runBench(settings, {
      result: (text) => process.stdout.write(`${text}\n`),
      note: (text) => process.stderr.write(`${text}\n`),
    }, outDir, interrupt.signal, credentials);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof WorkloadError) {
      failWith(`error: ${error.message}`, EXIT.badInput);
      return EXIT.badInput;
    }
    return exitCodeForLoadError(error);
  } finally {
    stopListening();
  }
}
