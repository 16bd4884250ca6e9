/**
 * `kvstore driver`: the shopping demo (issue 6). Shoppers read a cart, add or remove an item and write
 * it back — with update() (safe), or with `--unsafe` as plain get + put — then every cart is checked
 * against the shoppers' ledgers and `lost updates: N` is printed. Without `--manager` it runs against
 * its own local 3-node cluster and stops it after. Exit 0, or 1 when safe mode lost an update
 * (unsafe mode exits 0: losing updates is what it demonstrates); 2 bad input; 3 cluster unavailable.
 */
import type { Command } from 'commander';
import { MAX_SHOPPERS } from '../bench/cart.js';
import { LocalCluster } from '../bench/local-cluster.js';
import type { DriverReport } from '../bench/shopping-driver.js';
import { exitCodeForLoadError } from './load-errors.js';
import { BadInputError, checkAddress, EXIT, onStopSignals, parseInteger, parseSeconds, reportError } from './client-util.js';
import { addClientSecurityOptions, clientSecurityFromFlags, type ClientSecurity, type ClientSecurityFlags } from './security-flags.js';

/** The local cluster the driver starts without `--manager`: small, so it is up in seconds. */
const LOCAL_CLUSTER = { nodes: 3, replicas: 3, shards: 16 } as const;
/** Run length when neither `--ops` nor `--duration` is given. */
const DEFAULT_DURATION_SECONDS = 10;

interface DriverFlags extends ClientSecurityFlags {
  manager?: string;
  shoppers: string;
  carts: string;
  duration?: string;
  ops?: string;
  unsafe?: boolean;
  seed: string;
}

interface DriverSettings {
  manager: string | undefined;
  /** What the shoppers' client presents to the cluster at `manager` (TLS, a token). */
  credentials: ClientSecurity;
  shoppers: number;
  carts: number;
  ops: number | undefined;
  durationSeconds: number | undefined;
  unsafe: boolean;
  seed: number;
}

/** Registers `driver` on the root program. */
export function registerDriverCommand(program: Command): void {
  addClientSecurityOptions(program
    .command('driver'))
    .description('shoppers update shared carts, then every cart is checked against their ledgers ("lost updates: N")')
    .option('--manager <host:port>', 'the cluster to drive (default: start a local 3-node cluster and stop it after)')
    .option('--shoppers <n>', `concurrent shoppers (1…${MAX_SHOPPERS})`, '8')
    .option('--carts <n>', 'carts they share (fewer carts = hotter carts)', '100')
    .option('--duration <seconds>', `how long to run (default ${DEFAULT_DURATION_SECONDS} s unless --ops)`)
    .option('--ops <n>', 'cart changes in total (instead of --duration)')
    .option('--unsafe', 'use plain get + put instead of update(): shows lost updates on hot carts')
    .option('--seed <n>', 'seed of the shoppers\' choices', '1')
    .action(async (flags: DriverFlags) => {
      let settings: DriverSettings;
      try {
        settings = parseDriverFlags(flags);
      } catch (error) {
        reportError(error);
        return;
      }
      process.exitCode = await runDriverCommand(settings);
    });
}

function parseDriverFlags(flags: DriverFlags): DriverSettings {
  if (flags.ops !== undefined && flags.duration !== undefined) throw new BadInputError('give --ops or --duration, not both');
  const ops = flags.ops === undefined ? undefined : parseInteger(flags.ops, '--ops', 1);
  return {
    manager: flags.manager === undefined ? undefined : checkAddress(flags.manager, '--manager'),
    credentials: flags.manager === undefined ? noCredentials(flags) : clientSecurityFromFlags(flags),
    shoppers: parseInteger(flags.shoppers, '--shoppers', 1, MAX_SHOPPERS),
    carts: parseInteger(flags.carts, '--carts', 1, 1_000_000),
    ops,
    durationSeconds: flags.duration !== undefined ? parseSeconds(flags.duration, '--duration') : ops === undefined ? DEFAULT_DURATION_SECONDS : undefined,
    unsafe: flags.unsafe === true,
    seed: parseInteger(flags.seed, '--seed', 0, 2 ** 32 - 1),
  };
}

async function runDriverCommand(settings: DriverSettings): Promise<number> {
  const interrupt = new AbortController();
  const onSignal = (): void => interrupt.abort();
  const stopListening = onStopSignals(onSignal);
  let cluster: LocalCluster | undefined;
  try {
    let manager = settings.manager;
    if (manager === undefined) {
      process.stderr.write(`starting a local cluster: ${LOCAL_CLUSTER.nodes} nodes, ${LOCAL_CLUSTER.replicas} replicas, ${LOCAL_CLUSTER.shards} shards\n`);
      cluster = await LocalCluster.start(LOCAL_CLUSTER, interrupt.signal);
      manager = cluster.managerAddress;
      process.stderr.write(`local cluster ready: manager ${manager}\n`);
    }
    const { describeDriverReport, runDriver } = await import('../bench/shopping-driver.js'); // not at start-up: see bench-command.ts
    const report: DriverReport = await runDriver({
      manager,
      credentials: settings.credentials,
      shoppers: settings.shoppers,
      carts: settings.carts,
      ...(settings.ops === undefined ? {} : { ops: settings.ops }),
      ...(settings.durationSeconds === undefined ? {} : { durationMs: settings.durationSeconds * 1000 }),
      unsafe: settings.unsafe,
      seed: settings.seed,
      progress: process.stderr.isTTY,
      signal: interrupt.signal,
    });
    process.stdout.write(`${describeDriverReport(report)}\nlost updates: ${report.lostUpdates}\n`);
    return report.lostUpdates > 0 && report.mode === 'safe' ? 1 : EXIT.ok;
  } catch (error) {
    return exitCodeForLoadError(error);
  } finally {
    stopListening();
    await cluster?.stop();
  }
}

/** The local cluster the driver starts is plaintext: security flags there are a mistake. */
function noCredentials(flags: DriverFlags): ClientSecurity {
  if (flags.tlsCa !== undefined || flags.cert !== undefined || flags.token !== undefined) {
    throw new BadInputError('--tls-ca, --cert, --key and --token are for --manager (the local cluster the driver starts is plaintext)');
  }
  return {};
}
