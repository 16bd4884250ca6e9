/**
 * `kvstore node --id ID --port P --manager ADDR --data-dir D [--advertise HOST:PORT]
 * [--host H] [--metrics-port P] [--log-level L]`: one storage node. Bad flags print
 * one line and exit 2; SIGINT/SIGTERM stop it cleanly (streams closed, WAL synced)
 * with exit 0.
 */
import { registerDrainCommand } from './drain-command.js';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { watchParent } from '../common/parent-watch.js';
import { createLogger, isLogLevel, LOG_LEVELS, splitHostPort, type LogLevel } from '../common/index.js';
import { StorageNode } from '../node/index.js';
import { BadInputError } from './client-util.js';
import {
  addServerSecurityOptions, isLoopback, loadServerSecurity, parseServerSecurityFlags, reloadOnSighup, warnIfExposed,
  type LoadedServerSecurity, type ServerSecurityFlags,
} from './security-flags.js';

interface NodeFlags extends ServerSecurityFlags {
  id: string;
  port: number;
  manager: string;
  dataDir: string;
  advertise?: string;
  host?: string;
  metricsPort?: number;
  logLevel?: LogLevel;
  unsafeStaleReads?: boolean;
  metricsPerShard?: boolean;
  leaseReads: boolean;
}

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) throw new InvalidArgumentError('expected a port number 1-65535.');
  return port;
}

function parseNodeId(value: string): string {
  if (!NODE_ID.test(value)) throw new InvalidArgumentError('expected 1-64 letters, digits, ".", "_" or "-".');
  return value;
}

function parseHostPort(value: string): string {
  const match = /^(.+):(\d+)$/.exec(value);
  const port = Number(match?.[2]);
  if (match === null || port < 1 || port > 65535) throw new InvalidArgumentError('expected HOST:PORT.');
  return value;
}

function parseLogLevel(value: string): LogLevel {
  if (!isLogLevel(value)) throw new InvalidArgumentError(`expected one of ${LOG_LEVELS.join(', ')}.`);
  return value;
}

/**
 * The options a node cannot start without. Not commander's `requiredOption`: commander checks a
 * command's required options for its subcommands too, and `kvstore node drain ID` needs none.
 */
const REQUIRED_NODE_OPTIONS = [['--id <id>', 'id'], ['--port <port>', 'port'], ['--manager <host:port>', 'manager'], ['--data-dir <dir>', 'dataDir']] as const;

/** Registers `kvstore node` (and `kvstore node drain`) on the root program. */
export function registerNodeCommand(program: Command): void {
  const node = addServerSecurityOptions(program
    .command('node'))
    .description('run one storage node (or: node drain ID)')
    .option('--id <id>', 'node id, unique in the cluster (required)', parseNodeId)
    .option('--port <port>', 'gRPC port for clients and peers (required)', parsePort)
    .option('--manager <host:port>', 'the manager to register with (required)', parseHostPort)
    .option('--data-dir <dir>', 'where the node keeps its WAL, snapshots and peer list (required)')
    .option('--advertise <host:port>', 'address peers and clients use (default HOST:PORT)', parseHostPort)
    .addOption(new Option('--host <host>', 'interface to listen on (default 127.0.0.1; with --advertise naming another host, every interface)').argParser(parseHost))
    .addOption(new Option('--metrics-port <port>', 'HTTP port for /metrics, /healthz, /readyz (default PORT+1000)').argParser(parsePort))
    .addOption(new Option('--log-level <level>', 'error, warn, info or debug').argParser(parseLogLevel))
    .option('--metrics-per-shard', 'also export per-shard series on /metrics (term, commit, applied, leader, epoch and leader changes by {shard}); a node hosting thousands of replicas then serves thousands of lines per series')
    .option('--no-lease-reads', 'confirm every read batch with a ReadIndex round instead of answering under the leader\'s lease (slower; no read then depends on clocks)')
    .addOption(new Option('--unsafe-stale-reads', 'test only: serve reads without ReadIndex (needs KVSTORE_ALLOW_UNSAFE_TESTING=1)').hideHelp())
    .action(async (flags: Partial<NodeFlags>) => {
      const missing = REQUIRED_NODE_OPTIONS.find(([, key]) => flags[key] === undefined);
      if (missing !== undefined) {
        // As commander words it for a required option.
        process.stderr.write(`error: required option '${missing[0]}' not specified\n`);
        process.exitCode = 1;
        return;
      }
      await runNode(flags as NodeFlags);
    });
  // Options after `drain` are drain's: `--manager` there is the manager to ask, not the node's.
  node.enablePositionalOptions();
  registerDrainCommand(node);
}

async function runNode(flags: NodeFlags): Promise<void> {
  if (flags.unsafeStaleReads === true && process.env['KVSTORE_ALLOW_UNSAFE_TESTING'] !== '1') {
    process.stderr.write('error: --unsafe-stale-reads is for tests only and needs KVSTORE_ALLOW_UNSAFE_TESTING=1\n');
    process.exitCode = 2;
    return;
  }
  const logger = createLogger(flags.logLevel);
  const host = listenHost(flags.host, flags.advertise);
  if (flags.host === undefined && host !== '127.0.0.1') {
    logger.info('listening on every interface: --advertise names another host than this one\'s loopback, and no --host was given', {
      component: 'node', node: flags.id, advertise: flags.advertise, host,
    });
  }
  const metricsPort = flags.metricsPort ?? flags.port + 1000;
  if (metricsPort > 65535) {
    process.stderr.write(`error: default metrics port ${metricsPort} is out of range; pass --metrics-port\n`);
    process.exitCode = 2;
    return;
  }
  let security: LoadedServerSecurity;
  try {
    security = loadServerSecurity(parseServerSecurityFlags(flags), logger);
  } catch (error) {
    if (!(error instanceof BadInputError)) throw error;
    process.stderr.write(`error: ${error.message}\n`);
    process.exitCode = 2;
    return;
  }
  let node: StorageNode;
  try {
    node = await StorageNode.start({
      ...security,
      nodeId: flags.id,
      host,
      port: flags.port,
      ...(flags.advertise === undefined ? {} : { advertise: flags.advertise }),
      managerAddress: flags.manager,
      dataDir: resolve(flags.dataDir),
      metricsPort,
      logger,
      ...(flags.unsafeStaleReads === true ? { unsafeStaleReads: true } : {}),
      leaseReads: flags.leaseReads,
      ...(flags.metricsPerShard === true ? { metricsPerShard: true } : {}),
      onFatal: () => {
        // Logged by the node; a failed fsync or broken invariant cannot be retried.
        process.exit(1);
      },
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`error: cannot start node ${flags.id}: ${message.split('\n')[0]}\n`);
    process.exitCode = 1;
    return;
  }
  warnIfExposed(logger.child({ component: 'node', node: flags.id }), host, security, flags.insecure === true);
  const stopReloading = reloadOnSighup(logger.child({ component: 'auth', node: flags.id }), () => node.security.reload());
  await new Promise<void>((resolveStop) => {
    let stopWatching: () => void = () => undefined;
    const stop = (signal: NodeJS.Signals | 'parent exited'): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      stopReloading();
      stopWatching();
      logger.info('stopping node', { component: 'node', node: flags.id, signal });
      node.close().then(
        () => resolveStop(),
        (error: unknown) => {
          logger.error('node did not stop cleanly', { component: 'node', node: flags.id, error: String(error) });
          process.exitCode = 1;
          resolveStop();
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    // Under `kvstore cluster` (or a test harness), exit with the parent even if it was SIGKILLed.
    stopWatching = watchParent(() => stop('parent exited'));
  });
  // Flush the logger before the process exits on its own.
  await new Promise<void>((resolveFlush) => {
    logger.on('finish', () => resolveFlush());
    logger.end();
  });
}

/** `--host`: an address or a name to listen on; empty says nothing (every interface is 0.0.0.0 or ::). */
function parseHost(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('expected an address or host name to listen on (every interface: 0.0.0.0 or ::).');
  return value;
}

/**
 * Where the node listens: `--host` if given; else loopback, unless `--advertise` names another host
 * — then every interface, so the peers it tells to call it there can (DESIGN.md §6: never on
 * loopback only while advertising another address).
 */
export function listenHost(host: string | undefined, advertise: string | undefined): string {
  if (host !== undefined) return host;
  if (advertise === undefined) return '127.0.0.1';
  const advertised = splitHostPort(advertise).host;
  const ipv6 = isIP(advertised) === 6;
  if (isLoopback(advertised)) return ipv6 ? '::1' : '127.0.0.1';
  return ipv6 ? '::' : '0.0.0.0';
}
