/**
 * `kvstore driver`: the shopping demo (issue 6). Shoppers read a cart, add or remove an item and write
 * it back — with update() (safe), or with `--unsafe` as plain get + put — then every cart is checked
 * against the shoppers' ledgers and `lost updates: N` is printed. Without `--manager` it runs against
 * its own local 3-node cluster and stops it after. With `--checkout` (issue 18) shoppers add items and
 * sometimes check a cart out into an order in one transaction, and the end proves every item added is
 * in a cart or in exactly one order (`checkout: N orders, L lost, D duplicated`). With `--cart-ttl`
 * (issue 18) every cart write carries that TTL, a quarter of the carts is left alone at a time so some
 * expire, and the checks account for them (`expired carts: E`; `…, X expired with their cart`). Exit 0,
 * or 1 when safe mode lost an update, a cart vanished before its TTL allowed, or the checkout proof
 * failed (unsafe mode exits 0: losing updates is what it demonstrates); 2 bad input; 3 cluster
 * unavailable.
 */
import type { Command } from 'commander';
import { MAX_SHOPPERS } from '../bench/cart.js';
import { DEFAULT_CHECKOUT_PERCENT, MAX_CART_UNITS } from '../bench/checkout.js';
import { LocalCluster } from '../bench/local-cluster.js';
import { checkoutFailed, checkoutLines } from '../bench/checkout-proof.js';
import type { DriverReport } from '../bench/shopping-driver.js';
import { MAX_TTL_MS } from '../common/index.js';
import { exitCodeForLoadError } from './load-errors.js';
import { BadInputError, checkAddress, EXIT, onStopSignals, parseDuration, parseInteger, parseSeconds, reportError } from './client-util.js';
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
  checkout?: boolean;
  checkoutPercent?: string;
  cartTtl?: string;
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
  /** With `--checkout`: the share of actions that check a cart out; undefined without it. */
  checkoutPercent: number | undefined;
  /** With `--cart-ttl`: every cart write's TTL in ms; undefined without it. */
  cartTtlMs: number | undefined;
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
    .option('--checkout', 'shoppers add items and also check carts out: one transaction turns cart {uN}cart into order ' +
      '{uN}order:M and empties the cart; at the end every item added must be in a cart or in exactly one order ' +
      '("checkout: N orders, L lost, D duplicated"; exit 1 unless both are 0)')
    .option('--checkout-percent <n>', `with --checkout: the share of actions (1…100) that check out the cart they pick, if it holds anything (default ${DEFAULT_CHECKOUT_PERCENT}; a cart of ${MAX_CART_UNITS} items is always checked out)`)
    .option('--cart-ttl <duration>', 'every cart write carries this TTL (500ms, 30s, 10m …), so a cart nobody touches for that ' +
      'long disappears; a quarter of the carts is left alone at a time (for twice the TTL, at least the TTL + 1 s) so some do. ' +
      'A cart\'s items go with it only if it could have expired (its last write sent ≥ 0.99 × TTL before it was read absent); ' +
      'otherwise they are lost. Prints "expired carts: E", and with --checkout ", X expired with their cart" on the checkout line; ' +
      'orders never expire')
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
  if (flags.checkoutPercent !== undefined && flags.checkout !== true) throw new BadInputError('--checkout-percent needs --checkout');
  if (flags.checkout === true && flags.unsafe === true) throw new BadInputError('give --checkout or --unsafe, not both (checkout needs the safe loop)');
  return {
    manager: flags.manager === undefined ? undefined : checkAddress(flags.manager, '--manager'),
    credentials: flags.manager === undefined ? noCredentials(flags) : clientSecurityFromFlags(flags),
    shoppers: parseInteger(flags.shoppers, '--shoppers', 1, MAX_SHOPPERS),
    carts: parseInteger(flags.carts, '--carts', 1, 1_000_000),
    ops,
    durationSeconds: flags.duration !== undefined ? parseSeconds(flags.duration, '--duration') : ops === undefined ? DEFAULT_DURATION_SECONDS : undefined,
    unsafe: flags.unsafe === true,
    checkoutPercent: flags.checkout !== true ? undefined : flags.checkoutPercent === undefined ? DEFAULT_CHECKOUT_PERCENT : parseInteger(flags.checkoutPercent, '--checkout-percent', 1, 100),
    cartTtlMs: flags.cartTtl === undefined ? undefined : parseCartTtl(flags.cartTtl),
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
      ...(settings.checkoutPercent === undefined ? {} : { checkoutPercent: settings.checkoutPercent }),
      ...(settings.cartTtlMs === undefined ? {} : { cartTtlMs: settings.cartTtlMs }),
      seed: settings.seed,
      progress: process.stderr.isTTY,
      signal: interrupt.signal,
    });
    process.stdout.write(`${describeDriverReport(report)}\nlost updates: ${report.lostUpdates}\n`);
    if (report.expiry !== undefined) {
      process.stdout.write(`expired carts: ${report.expiry.expiredCarts}\n`);
      if (report.expiry.vanishedEarly > 0) process.stdout.write(`vanished carts: ${report.expiry.vanishedEarly} (gone before their TTL allowed them to expire)\n`);
      for (const example of report.expiry.examples) process.stderr.write(`${example} (seed ${settings.seed})\n`);
    }
    if (report.checkout !== undefined) {
      process.stdout.write(checkoutLines(report.checkout.proof).map((line) => `${line}\n`).join(''));
      for (const example of report.checkout.proof.examples) process.stderr.write(`${example} (seed ${settings.seed})\n`);
    }
    const checkoutProblem = report.checkout !== undefined && checkoutFailed(report.checkout.proof);
    const vanished = report.expiry !== undefined && report.expiry.vanishedEarly > 0;
    return ((report.lostUpdates > 0 || vanished) && report.mode === 'safe') || checkoutProblem ? 1 : EXIT.ok;
  } catch (error) {
    return exitCodeForLoadError(error);
  } finally {
    stopListening();
    await cluster?.stop();
  }
}

/** `--cart-ttl`: a duration the store accepts as a TTL (1 ms to 365 days). */
function parseCartTtl(text: string): number {
  const ttlMs = parseDuration(text, '--cart-ttl');
  if (ttlMs > MAX_TTL_MS) throw new BadInputError(`--cart-ttl wants at most 365 days, got "${text}"`);
  return ttlMs;
}

/** The local cluster the driver starts is plaintext: security flags there are a mistake. */
function noCredentials(flags: DriverFlags): ClientSecurity {
  if (flags.tlsCa !== undefined || flags.cert !== undefined || flags.token !== undefined) {
    throw new BadInputError('--tls-ca, --cert, --key and --token are for --manager (the local cluster the driver starts is plaintext)');
  }
  return {};
}
