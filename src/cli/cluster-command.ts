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
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import {
  certsDir, launchCluster, localClusterSecurity, managerAddress, portRange, STOP_GRACE_MS, waitForLeaders,
  type ClusterSecurity, type ClusterSpec, type LocalSecurityOptions, type ServerSecurityFiles,
} from '../cluster/index.js';
import { createLogger, isLogLevel, LOG_LEVELS, type LogLevel } from '../common/index.js';
import { CertificateError } from '../security/certificates.js';
import { TokenFileError } from '../security/index.js';
import { BadInputError, EXIT, failWith, onStopSignals, parseInteger, parseSeconds, reportError, STOP_SIGNALS } from './client-util.js';

interface ClusterFlags {
  nodes: string;
  replicas: string;
  shards: string;
  port: string;
  dataDir: string;
  downAfter: string;
  logLevel?: string;
  logStdout?: boolean;
  leaseReads: boolean;
  metricsPerShard?: boolean;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  authTokenFile?: string;
  metricsTls?: boolean;
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
  /** TLS and tokens for every process (`--tls`, `--tls-*`, `--auth-token-file`, `--metrics-tls`). */
  security: LocalSecurityOptions;
  /** `--log-stdout`: the JSON logs on the terminal even when it is one (default: files under DATA_DIR/logs there). */
  logStdout?: boolean;
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
    .option('--log-stdout', 'on a terminal, print the JSON logs there instead of a summary (they go to <dir>/logs/ otherwise; off a terminal they always go to stderr)')
    .option('--no-lease-reads', 'start every node with --no-lease-reads: each read batch is confirmed by a ReadIndex round')
    .option('--metrics-per-shard', 'start every node with --metrics-per-shard: per-shard series on /metrics')
    .option('--tls', 'mutual TLS between every process and for clients, with a CA and certificates made in <dir>/certs (kept for later runs)')
    .option('--tls-ca <file>', 'cluster CA certificate instead of --tls\'s (with --tls-cert and --tls-key)')
    .option('--tls-cert <file>', 'the certificate every process presents (PEM), signed by --tls-ca')
    .option('--tls-key <file>', 'its private key (PEM)')
    .option('--auth-token-file <file>', 'bearer tokens clients must present (one per line; edit the file to rotate them)')
    .option('--metrics-tls', 'serve /metrics, /healthz and /readyz over HTTPS (needs --tls or --tls-*)')
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
  const tlsFiles = [flags.tlsCa, flags.tlsCert, flags.tlsKey].filter((file) => file !== undefined).length;
  if (tlsFiles !== 0 && tlsFiles !== 3) throw new BadInputError('--tls-ca, --tls-cert and --tls-key go together');
  if (tlsFiles === 3 && flags.tls === true) throw new BadInputError('give --tls (certificates made in <dir>/certs) or --tls-ca/--tls-cert/--tls-key, not both');
  if (flags.metricsTls === true && tlsFiles === 0 && flags.tls !== true) throw new BadInputError('--metrics-tls needs --tls or --tls-ca/--tls-cert/--tls-key');
  const security: LocalSecurityOptions = {
    tls: flags.tls === true,
    files: tlsFiles === 3 ? { tlsCa: resolve(flags.tlsCa ?? ''), tlsCert: resolve(flags.tlsCert ?? ''), tlsKey: resolve(flags.tlsKey ?? '') } : undefined,
    authTokenFile: flags.authTokenFile === undefined ? undefined : resolve(flags.authTokenFile),
    metricsTls: flags.metricsTls === true,
  };
  return {
    security,
    logStdout: flags.logStdout === true,
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
export function clusterSpec(settings: ClusterSettings, mainScript?: string, security?: ServerSecurityFiles): ClusterSpec {
  return {
    ...(security === undefined ? {} : { security }),
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
  mkdirSync(settings.dataDir, { recursive: true });
  // On a terminal, a person reads: a short summary there, the JSON logs in files. Scripts (no
  // terminal) and --log-stdout get the JSON lines on stderr as always; stdout is the ready line.
  const logsDir = process.stderr.isTTY === true && settings.logStdout !== true ? join(settings.dataDir, 'logs') : undefined;
  if (logsDir !== undefined) mkdirSync(logsDir, { recursive: true });
  const say = (line: string): void => {
    if (logsDir !== undefined) process.stderr.write(`${line}\n`);
  };
  const log = createLogger(settings.logLevel, { component: 'cluster' }, logsDir === undefined ? undefined : join(logsDir, 'cluster.log'));
  let security: ClusterSecurity;
  try {
    security = await localClusterSecurity(settings.dataDir, settings.security);
  } catch (error) {
    if (!(error instanceof CertificateError || error instanceof TokenFileError)) throw error;
    failWith(`error: ${error.message}`, EXIT.badInput);
    return EXIT.badInput;
  }
  const spec = clusterSpec(settings, undefined, security.server);
  const manager = managerAddress(spec);
  if (settings.security.tls === true) {
    const dir = certsDir(settings.dataDir);
    const flags = `--tls-ca ${join(dir, 'ca.crt')} --cert ${join(dir, 'client.crt')} --key ${join(dir, 'client.key')}`;
    log.info('TLS on: clients need the cluster CA and a client certificate (or a token)', { flags });
  }
  if (logsDir !== undefined) say(summary(settings, spec, logsDir));
  const startedAtMs = performance.now();

  let stopping = false;
  let ready = false;
  let stopRequested: (reason: string) => void = () => undefined;
  const stopped = new Promise<string>((resolvePromise) => {
    stopRequested = resolvePromise;
  });

  const launcher = launchCluster(spec, {
    env: settings.logLevel === undefined ? {} : { KVSTORE_LOG_LEVEL: settings.logLevel },
    onError: (name, error) => {
      log.error('child failed to start', { child: name, error: error.message });
      say(`${name} failed to start: ${error.message}`);
    },
    ...(logsDir === undefined ? {} : { logFile: (name: string) => join(logsDir, `${name}.log`) }),
    onUnexpectedExit: (name, code, signal) => {
      log.warn('child exited', { child: name, code, signal });
      say(`${name} exited (${signal ?? `code ${String(code)}`}); its log: ${join(logsDir ?? '', `${name}.log`)}`);
      if (!ready) stopRequested(`${name} exited before the cluster was ready`);
      else if (launcher.all().every((child) => !child.running)) stopRequested('every child exited');
    },
  });
  log.info('starting cluster', { manager, nodes: settings.nodes, replicas: settings.replicas, shards: settings.shards, dataDir: settings.dataDir });

  const onSignal = (signal: NodeJS.Signals): void => stopRequested(signal);
  const stopListening = onStopSignals(onSignal);

  const readiness = new AbortController();
  void waitForLeaders({ address: manager, credentials: security.client }, { signal: readiness.signal, logger: log })
    .then((outcome) => {
      if (outcome.ready && !stopping) {
        ready = true;
        process.stdout.write(`ready manager=${manager}\n`);
        log.info('cluster ready', { manager });
        say(`ready: every shard has a leader (${((performance.now() - startedAtMs) / 1000).toFixed(1)} s). Ctrl-C stops the cluster.`);
      } else if (!outcome.ready && outcome.reason === 'refused') {
        log.error('the manager refused this process\'s credentials', { error: outcome.lastError?.message });
        stopRequested('readiness check refused');
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
  say(`stopping (${reason})…`);
  await launcher.stop(STOP_GRACE_MS);
  say('stopped.');
  stopListening();
  return STOP_SIGNALS.includes(reason as NodeJS.Signals) ? EXIT.ok : EXIT.unavailable;
}

/** What `kvstore cluster` prints on a terminal before it waits for leaders. */
function summary(settings: ClusterSettings, spec: ClusterSpec, logsDir: string): string {
  const tls = settings.security.tls === true || settings.security.files !== undefined;
  const lines = [
    `kvstore cluster: ${settings.nodes} node${settings.nodes === 1 ? '' : 's'}, ${settings.replicas} replica${settings.replicas === 1 ? '' : 's'} per shard, `
      + `${settings.shards} shards${tls ? ', mutual TLS' : ''}${settings.security.authTokenFile === undefined ? '' : ', tokens required'}; data in ${settings.dataDir}`,
    `  ${'manager'.padEnd(9)}${managerAddress(spec)}  metrics http${settings.security.metricsTls === true ? 's' : ''}://127.0.0.1:${spec.manager.metricsPort ?? spec.manager.port + 1000}/metrics`,
  ];
  for (let index = 1; index <= settings.nodes; index++) {
    const endpoint = spec.node(index);
    lines.push(`  ${`n${index}`.padEnd(9)}127.0.0.1:${endpoint.port}  metrics :${endpoint.metricsPort ?? endpoint.port + 1000}`);
  }
  lines.push(`  logs     ${logsDir}/ (JSON lines, one file per process; --log-stdout prints them here instead)`);
  if (settings.security.tls === true) {
    const dir = certsDir(settings.dataDir);
    lines.push(`  clients  --tls-ca ${join(dir, 'ca.crt')} --cert ${join(dir, 'client.crt')} --key ${join(dir, 'client.key')}`);
  }
  lines.push('waiting for every shard to have a leader…');
  return lines.join('\n');
}
