/**
 * `kvstore manager`: the manager alone (DESIGN.md §6). Bad flags print one line and
 * exit 2; SIGINT/SIGTERM (or the parent going away under `kvstore cluster`) stop the
 * gRPC server and save the state, then the process exits 0.
 */
import * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { createLogger, isLogLevel, LOG_LEVELS, type LogLevel } from '../common/index.js';
import { watchParent } from '../common/parent-watch.js';
import { Manager, ManagerError, type ManagerOptions } from '../manager/index.js';
import { BadInputError, EXIT, failWith, parseInteger, parseSeconds } from './client-util.js';
import {
  addServerSecurityOptions, loadServerSecurity, parseServerSecurityFlags, reloadOnSighup, warnIfExposed,
  type LoadedServerSecurity, type ServerSecurityFlags, type ServerSecuritySettings,
} from './security-flags.js';

/** Largest shard count the manager accepts. */
export const MAX_SHARDS = 4096;

interface ManagerFlags extends ServerSecurityFlags {
  port: string;
  replicas: string;
  shards: string;
  dataDir: string;
  host: string;
  downAfter: string;
  bootstrapNodes?: string;
  metricsPort?: string;
  logLevel?: string;
}

/** Validated settings of one `kvstore manager` run. */
export interface ManagerSettings {
  options: Omit<ManagerOptions, 'logger' | 'tls' | 'tokens' | 'metricsTls'>;
  security: ServerSecuritySettings;
  logLevel: LogLevel | undefined;
}

/** Registers `manager` on the root program. */
export function registerManagerCommand(program: Command): void {
  addServerSecurityOptions(program
    .command('manager'))
    .description('run the manager: membership, health, shard map, placement and re-replication')
    .requiredOption('--port <port>', 'gRPC port')
    .requiredOption('--replicas <k>', 'replicas per shard (K)')
    .requiredOption('--shards <s>', `shard count (S, 1…${MAX_SHARDS}; fixed when the cluster is created)`)
    .requiredOption('--data-dir <dir>', 'directory for state.json')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--down-after <seconds>', 'how long a silent node is suspect before it is down and re-replicated', '10')
    .option('--bootstrap-nodes <n>', 'place shards once this many nodes have registered (default: K)')
    .option('--metrics-port <port>', 'HTTP port for /metrics, /healthz, /readyz (default: port+1000; 0 disables)')
    .option('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`)
    .action(async (flags: ManagerFlags) => {
      let settings: ManagerSettings;
      try {
        settings = parseManagerFlags(flags);
      } catch (error) {
        if (!(error instanceof BadInputError)) throw error;
        failWith(`error: ${error.message}`, EXIT.badInput);
        return;
      }
      process.exitCode = await runManager(settings);
    });
}

/** Validates the flags; throws {@link BadInputError} with one clear line. */
export function parseManagerFlags(flags: ManagerFlags): ManagerSettings {
  const port = parseInteger(flags.port, '--port', 1, 65535);
  const replicationFactor = parseInteger(flags.replicas, '--replicas', 1, 1000);
  const shardCount = parseInteger(flags.shards, '--shards', 1, MAX_SHARDS);
  if (flags.dataDir.trim() === '') throw new BadInputError('--data-dir wants a directory');
  if (flags.host.trim() === '') throw new BadInputError('--host wants a host name or address');
  const downAfterMs = Math.round(parseSeconds(flags.downAfter, '--down-after') * 1000);
  const bootstrapNodes = flags.bootstrapNodes === undefined
    ? replicationFactor
    : parseInteger(flags.bootstrapNodes, '--bootstrap-nodes', 1, 10_000);
  if (bootstrapNodes < replicationFactor) {
    throw new BadInputError(`--bootstrap-nodes ${bootstrapNodes} is smaller than --replicas ${replicationFactor}: each replica of a shard needs its own node`);
  }
  let metricsPort: number | null = port + 1000 <= 65535 ? port + 1000 : null;
  if (flags.metricsPort !== undefined) {
    const parsed = parseInteger(flags.metricsPort, '--metrics-port', 0, 65535);
    metricsPort = parsed === 0 ? null : parsed;
  }
  if (flags.logLevel !== undefined && !isLogLevel(flags.logLevel)) {
    throw new BadInputError(`--log-level wants one of ${LOG_LEVELS.join(', ')}, got "${flags.logLevel}"`);
  }
  return {
    options: {
      host: flags.host.trim(), port, replicationFactor, shardCount, dataDir: flags.dataDir,
      downAfterMs, bootstrapNodes, metricsPort,
    },
    security: parseServerSecurityFlags(flags),
    logLevel: flags.logLevel,
  };
}

/** Runs the manager until a stop signal; resolves to the exit code. */
export async function runManager(settings: ManagerSettings): Promise<number> {
  const logger = createLogger(settings.logLevel);
  let manager: Manager;
  // grpc-js prints its own line for a failed bind; ours below is the one clear line.
  // Its default verbosity (ERROR) comes back once bound, unless GRPC_VERBOSITY chose another.
  const quietBind = process.env['GRPC_VERBOSITY'] === undefined;
  if (quietBind) grpc.setLogVerbosity(grpc.logVerbosity.NONE);
  let security: LoadedServerSecurity;
  try {
    security = loadServerSecurity(settings.security, logger);
  } catch (error) {
    if (!(error instanceof BadInputError)) throw error;
    failWith(`error: ${error.message}`, EXIT.badInput);
    return EXIT.badInput;
  }
  try {
    manager = await Manager.start({ ...settings.options, logger, ...security });
  } catch (error) {
    if (!(error instanceof ManagerError)) throw error;
    failWith(`error: ${error.message}`, error.code === 'BIND_FAILED' ? EXIT.unavailable : EXIT.badInput);
    return error.code === 'BIND_FAILED' ? EXIT.unavailable : EXIT.badInput;
  } finally {
    if (quietBind) grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
  }
  warnIfExposed(logger.child({ component: 'manager' }), settings.options.host, security, settings.security.insecure);
  const stopReloading = reloadOnSighup(logger.child({ component: 'auth' }), () => manager.security.reload());
  await new Promise<void>((resolve) => {
    let stopWatching: () => void = () => undefined;
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      stopReloading();
      stopWatching();
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    stopWatching = watchParent(stop);
  });
  await manager.close();
  return EXIT.ok;
}
