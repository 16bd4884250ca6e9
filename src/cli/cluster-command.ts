/**
 * `kvstore cluster`: a local cluster in one command — the manager plus N node processes on ports
 * port+1…port+N, with their JSON logs forwarded to stderr. Prints `ready manager=127.0.0.1:PORT` on
 * stdout once every shard has a leader. Ctrl-C or SIGTERM stops every child (SIGTERM, then SIGKILL
 * after a grace period) and exits 0. Children are started with KVSTORE_PARENT_WATCH=1 and a stdin
 * pipe (src/common/parent-watch.ts), so they also exit if this process dies without cleaning up.
 * Re-running on the same data dir restarts the same cluster with its data. The processes, their argv
 * and the readiness poll are src/cluster's; this file is the flags and the run's lifecycle.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { launchCluster, managerAddress, portRange, STOP_GRACE_MS, waitForLeaders, type ClusterSpec } from '../cluster/index.js';
import { createLogger, isLogLevel, LOG_LEVELS, type LogLevel } from '../common/index.js';
import { BadInputError, EXIT, onStopSignals, parseInteger, parseSeconds, reportError, STOP_SIGNALS } from './client-util.js';

interface ClusterFlags {
  nodes: string;
  replicas: string;
  shards: string;
  port: string;
  dataDir: string;
  downAfter: string;
  logLevel?: string;
  leaseReads: boolean;
  metricsPerShard?: boolean;
}

/** Validated settings of one `kvstore cluster` run. */
export interface ClusterSettings {
  nodes: number;
  replicas: number;
  shards: number;
  port: number;
  dataDir: string;
  downAfterSeconds: number;
  logLevel: LogLevel | undefined;
  /** False: every node runs with `--no-lease-reads`. */
  leaseReads: boolean;
  /** True: every node runs with `--metrics-per-shard`. */
  metricsPerShard?: boolean;
}

/** Registers `cluster` on the root program. */
export function registerClusterCommand(program: Command): void {
  program
    .command('cluster')
    .description('run a local cluster: the manager plus N nodes; prints "ready manager=…" when every shard has a leader')
    .option('--nodes <n>', 'storage nodes to start', '3')
    .option('--replicas <k>', 'replicas per shard (≤ nodes)', '3')
    .option('--shards <s>', 'shard count (fixed when the cluster is created)', '64')
    .option('--port <port>', 'manager port; node i listens on port+i', '7000')
    .option('--data-dir <dir>', 'data directory: <dir>/manager and <dir>/n<i>', './data')
    .option('--down-after <seconds>', 'how long a silent node is suspect before it is down and re-replicated', '10')
    .option('--log-level <level>', `log level of every process: ${LOG_LEVELS.join(', ')}`)
    .option('--no-lease-reads', 'start every node with --no-lease-reads: each read batch is confirmed by a ReadIndex round')
    .option('--metrics-per-shard', 'start every node with --metrics-per-shard: per-shard series on /metrics')
    .action(async (flags: ClusterFlags) => {
      let settings: ClusterSettings;
      try {
        settings = parseClusterFlags(flags);
      } catch (error) {
        reportError(error);
        return;
      }
      process.exitCode = await runCluster(settings);
    });
}

/** Validates the flags; throws {@link BadInputError} with one clear line. */
export function parseClusterFlags(flags: ClusterFlags): ClusterSettings {
  const nodes = parseInteger(flags.nodes, '--nodes', 1, 1000);
  const replicas = parseInteger(flags.replicas, '--replicas', 1, 1000);
  const shards = parseInteger(flags.shards, '--shards', 1, 1_000_000);
  const port = parseInteger(flags.port, '--port', 1, 65535 - nodes);
  if (replicas > nodes) {
    throw new BadInputError(`--replicas ${replicas} is larger than --nodes ${nodes}: each replica of a shard needs its own node`);
  }
  if (flags.logLevel !== undefined && !isLogLevel(flags.logLevel)) {
    throw new BadInputError(`--log-level wants one of ${LOG_LEVELS.join(', ')}, got "${flags.logLevel}"`);
  }
  return {
    nodes,
    replicas,
    shards,
    port,
    dataDir: resolve(flags.dataDir),
    downAfterSeconds: parseSeconds(flags.downAfter, '--down-after'),
    logLevel: flags.logLevel,
    leaseReads: flags.leaseReads,
    metricsPerShard: flags.metricsPerShard === true,
  };
}

/** The processes of a `kvstore cluster` run: the manager on `port`, node nI on port+I, all on 127.0.0.1. */
export function clusterSpec(settings: ClusterSettings, mainScript?: string): ClusterSpec {
  return {
    ...(mainScript === undefined ? {} : { mainScript }),
    ...portRange(settings.port),
    nodes: settings.nodes,
    replicas: settings.replicas,
    shards: settings.shards,
    dataDir: settings.dataDir,
    downAfterSeconds: settings.downAfterSeconds,
    leaseReads: settings.leaseReads,
    metricsPerShard: settings.metricsPerShard === true,
  };
}

/** Runs the cluster until a stop signal; resolves to the exit code. */
async function runCluster(settings: ClusterSettings): Promise<number> {
  const log = createLogger(settings.logLevel, { component: 'cluster' });
  const spec = clusterSpec(settings);
  const manager = managerAddress(spec);
  mkdirSync(settings.dataDir, { recursive: true });

  let stopping = false;
  let ready = false;
  let stopRequested: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolvePromise) => {
    stopRequested = resolvePromise;
  });

  const launcher = launchCluster(spec, {
    env: settings.logLevel === undefined ? {} : { KVSTORE_LOG_LEVEL: settings.logLevel },
    onError: (name, error) => log.error('child failed to start', { child: name, error: error.message }),
    onUnexpectedExit: (name, code, signal) => {
      log.warn('child exited', { child: name, code, signal });
      if (!ready) stopRequested(`${name} exited before the cluster was ready`);
      else if (launcher.all().every((child) => !child.running)) stopRequested('every child exited');
    },
  });
  log.info('starting cluster', { manager, nodes: settings.nodes, replicas: settings.replicas, shards: settings.shards, dataDir: settings.dataDir });

  const onSignal = (signal: NodeJS.Signals): void => stopRequested(signal);
  const stopListening = onStopSignals(onSignal);

  const readiness = new AbortController();
  void waitForLeaders({ address: manager }, { signal: readiness.signal, logger: log })
    .then((outcome) => {
      if (outcome.ready && !stopping) {
        ready = true;
        process.stdout.write(`ready manager=${manager}\n`);
        log.info('cluster ready', { manager });
      }
    })
    .catch((error: unknown) => {
      log.error('readiness check failed', { error: error instanceof Error ? error.message : String(error) });
      stopRequested('readiness check failed');
    });

  const reason = await stopped;
  stopping = true;
  readiness.abort();
  log.info('stopping cluster', { reason });
  await launcher.stop(STOP_GRACE_MS);
  stopListening();
  return STOP_SIGNALS.includes(reason as NodeJS.Signals) ? EXIT.ok : EXIT.unavailable;
}
