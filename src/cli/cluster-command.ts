/**
 * `kvstore cluster`: a local cluster in one command — the manager plus N node processes on ports
 * port+1…port+N, with their JSON logs forwarded to stderr. Prints `ready manager=127.0.0.1:PORT` on
 * stdout once every shard has a leader. Ctrl-C or SIGTERM stops every child (SIGTERM, then SIGKILL
 * after a grace period) and exits 0. Children are started with KVSTORE_PARENT_WATCH=1 and a stdin
 * pipe (src/common/parent-watch.ts), so they also exit if this process dies without cleaning up.
 * Re-running on the same data dir restarts the same cluster with its data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { ManagerConnection, ManagerUnreachableError } from '../client/index.js';
import { createLogger, isLogLevel, LOG_LEVELS, type Logger, type LogLevel } from '../common/index.js';
import { PARENT_WATCH_ENV } from '../common/parent-watch.js';
import { BadInputError, EXIT, onStopSignals, parseInteger, parseSeconds, reportError, STOP_SIGNALS } from './client-util.js';
import { everyShardHasLeader } from './status-util.js';

/** How long children get to exit after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 5000;
/** How often readiness is polled. */
const READY_POLL_INTERVAL_MS = 200;
/** A progress line is logged this often while waiting for leaders. */
const READY_LOG_INTERVAL_MS = 10_000;

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

/**
 * Where the children listen when they do not all share 127.0.0.1: `kvstore chaos` runs each node in
 * its own network namespace with its own address, and the manager on an address they can reach.
 */
export interface ChildHosts {
  /** The manager's listen address; nodes register with it there. */
  manager: string;
  /** The address node `nodeId` listens on and advertises to peers and clients. */
  node: (nodeId: string) => string;
}

/**
 * The argv (after the node binary) of every child: the manager first, then n1…nN. Without `hosts`
 * every process listens on 127.0.0.1 (the flags' default) on ports port, port+1…port+N.
 */
export function childCommands(settings: ClusterSettings, mainScript: string, hosts?: ChildHosts): { name: string; args: string[] }[] {
  const manager = `${hosts?.manager ?? '127.0.0.1'}:${settings.port}`;
  const commands = [
    {
      name: 'manager',
      args: [
        mainScript, 'manager',
        '--port', String(settings.port),
        '--replicas', String(settings.replicas),
        '--shards', String(settings.shards),
        '--data-dir', join(settings.dataDir, 'manager'),
        '--bootstrap-nodes', String(settings.nodes),
        '--down-after', String(settings.downAfterSeconds),
        ...(hosts === undefined ? [] : ['--host', hosts.manager]),
      ],
    },
  ];
  for (let i = 1; i <= settings.nodes; i++) {
    const nodeId = `n${i}`;
    const port = settings.port + i;
    const host = hosts?.node(nodeId);
    commands.push({
      name: nodeId,
      args: [
        mainScript, 'node',
        '--id', nodeId,
        '--port', String(port),
        '--manager', manager,
        '--data-dir', join(settings.dataDir, nodeId),
        ...(host === undefined ? [] : ['--host', host, '--advertise', `${host}:${port}`]),
        ...(settings.leaseReads ? [] : ['--no-lease-reads']),
        ...(settings.metricsPerShard === true ? ['--metrics-per-shard'] : []),
      ],
    });
  }
  return commands;
}

/** Runs the cluster until a stop signal; resolves to the exit code. */
async function runCluster(settings: ClusterSettings): Promise<number> {
  const log = createLogger(settings.logLevel, { component: 'cluster' });
  const mainScript = fileURLToPath(new URL('./main.js', import.meta.url));
  const managerAddress = `127.0.0.1:${settings.port}`;
  mkdirSync(settings.dataDir, { recursive: true });

  const env: NodeJS.ProcessEnv = { ...process.env, [PARENT_WATCH_ENV]: '1' };
  if (settings.logLevel !== undefined) env['KVSTORE_LOG_LEVEL'] = settings.logLevel;

  const children = new Map<string, ChildProcess>();
  let stopping = false;
  let ready = false;
  let stopRequested: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolvePromise) => {
    stopRequested = resolvePromise;
  });

  for (const { name, args } of childCommands(settings, mainScript)) {
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    children.set(name, child);
    forwardLines(child);
    child.on('error', (error) => log.error('child failed to start', { child: name, error: error.message }));
    child.on('exit', (code, signal) => {
      if (stopping) return;
      log.warn('child exited', { child: name, code, signal });
      if (!ready) stopRequested(`${name} exited before the cluster was ready`);
      else if ([...children.values()].every((other) => other.exitCode !== null || other.signalCode !== null)) {
        stopRequested('every child exited');
      }
    });
  }
  log.info('starting cluster', { manager: managerAddress, nodes: settings.nodes, replicas: settings.replicas, shards: settings.shards, dataDir: settings.dataDir });

  const onSignal = (signal: NodeJS.Signals): void => stopRequested(signal);
  const stopListening = onStopSignals(onSignal);

  const readiness = new AbortController();
  void waitUntilReady(managerAddress, readiness.signal, log)
    .then((isReady) => {
      if (isReady && !stopping) {
        ready = true;
        process.stdout.write(`ready manager=${managerAddress}\n`);
        log.info('cluster ready', { manager: managerAddress });
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
  await stopChildren([...children.values()], STOP_GRACE_MS);
  stopListening();
  return STOP_SIGNALS.includes(reason as NodeJS.Signals) ? EXIT.ok : EXIT.unavailable;
}

/** Polls the manager until every shard has a leader; false if aborted first. */
async function waitUntilReady(managerAddress: string, signal: AbortSignal, log: Logger): Promise<boolean> {
  const connection = new ManagerConnection(managerAddress);
  let lastLogAtMs = Date.now();
  try {
    while (!signal.aborted) {
      try {
        const map = await connection.getClusterMap(2000, signal);
        if (everyShardHasLeader(map)) return true;
        if (Date.now() - lastLogAtMs > READY_LOG_INTERVAL_MS) {
          lastLogAtMs = Date.now();
          const led = map.shards.filter((shard) => shard.leaderNodeId !== '').length;
          log.info('waiting for shard leaders', { led, shards: map.shardCount });
        }
      } catch (error) {
        if (!(error instanceof ManagerUnreachableError)) throw error;
      }
      await abortableDelay(READY_POLL_INTERVAL_MS, signal);
    }
    return false;
  } finally {
    connection.close();
  }
}

/** SIGTERM to every live child, SIGKILL to those still alive after `graceMs`; resolves when all exited. */
async function stopChildren(children: ChildProcess[], graceMs: number): Promise<void> {
  const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;
  const exits = children.filter(alive).map((child) => new Promise<void>((resolveExit) => child.once('exit', () => resolveExit())));
  for (const child of children) if (alive(child)) child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolveGrace) => {
    timer = setTimeout(resolveGrace, graceMs);
  });
  await Promise.race([Promise.all(exits), grace]);
  clearTimeout(timer);
  for (const child of children) if (alive(child)) child.kill('SIGKILL');
  await Promise.all(exits);
  for (const child of children) child.stdin?.destroy();
}

/** Copies a child's stdout and stderr to our stderr line by line, so lines of different children never interleave mid-line. */
function forwardLines(child: ChildProcess): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue;
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on('line', (line) => process.stderr.write(`${line}\n`));
  }
  child.stdin?.on('error', () => undefined); // the child may exit first; its pipe then errors on close
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolveDelay) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolveDelay();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
