/**
 * The shopping driver (`kvstore driver`): shoppers repeatedly pick a cart, read it, add or remove an
 * item and write it back — safely with `update()` (read, change, compare-and-set, retry on conflict),
 * or with `--unsafe` as the naive get + put, which loses updates when shoppers meet on a hot cart.
 * Each shopper keeps a ledger of the changes it made; at the end every cart is read and compared with
 * the sum of the ledgers. A change whose write failed with an unknown outcome is retried under the
 * same change number, and the cart's `last` marker (cart.ts) says whether it landed, so the ledgers
 * stay exact while nodes are killed.
 * With `checkoutPercent` (`--checkout`) shoppers only add items, and sometimes check a cart out into
 * an order in one transaction; the end then also proves that every item added is in a cart or in
 * exactly one order (checkout.ts).
 */
import { KVClient, KVError } from '../client/index.js';
import type { ClientCredentials } from '../cluster/index.js';
import { deriveSeed, SeededRandom } from '../common/index.js';
import { applyChange, CATALOGUE, cartKey, decodeCart, emptyCartValue, encodeCart, lastChangeOf, Ledger, unitsOff, type Cart, type CartChange } from './cart.js';
import { CheckoutShopping, type CheckoutReport, type PendingChange } from './checkout.js';
import { newLatencyHistogram, percentilesOf, recordMillis, type LatencyPercentiles } from './histogram.js';
import { createProgress } from './progress.js';

/** What the driver runs. Give `ops` or `durationMs`. */
export interface DriverOptions {
  /** The manager of the cluster. */
  manager: string;
  /** What the client presents (TLS, a token); none for a plaintext, open cluster. */
  credentials?: ClientCredentials;
  /** Concurrent shoppers (1…64). */
  shoppers: number;
  /** Carts they share; few carts = hot carts = many conflicts. */
  carts: number;
  /** Cart changes in total, or how long to run. */
  ops?: number;
  durationMs?: number;
  /** Plain get + put instead of update(): demonstrates lost updates. */
  unsafe: boolean;
  /**
   * Checkout mode (not with `unsafe`): the share of actions (1…100) that check a non-empty cart out
   * into an order, in one transaction; the others add an item. Absent: carts change as usual.
   */
  checkoutPercent?: number;
  seed: number;
  /** Show a progress bar (only meaningful on a TTY). */
  progress: boolean;
  /** Aborting stops the shoppers; the carts are still checked. */
  signal?: AbortSignal;
}

/** What the driver measured and found. */
export interface DriverReport {
  mode: 'safe' | 'unsafe';
  shoppers: number;
  carts: number;
  /** Cart changes completed (and recorded in a ledger). */
  ops: number;
  elapsedSeconds: number;
  opsPerSec: number;
  /** Latency of one cart change, including its conflict and error retries. */
  latency: LatencyPercentiles;
  /** Extra read–cas rounds update() made because another shopper wrote first (safe mode). */
  conflictsRetried: number;
  /** Attempts that failed with an error (unavailable, timeout) and were retried. */
  errorsRetried: number;
  /** Changes whose outcome was settled only by the final check (the run stopped while they were retried). */
  settledAtEnd: number;
  /** Carts whose contents differ from the ledgers. */
  lostUpdates: number;
  /** Item units by which those carts differ in total. */
  unitsOff: number;
  /** Checkout mode only: the orders and the proof that no item was lost or duplicated. */
  checkout?: CheckoutReport;
}

/** Delay between retries of a failed change (the client already retried within its deadline). */
const ERROR_RETRY_DELAY_MS = 100;
const PROGRESS_INTERVAL_MS = 250;

/** Runs the driver against the cluster at `options.manager` and checks every cart. */
export async function runDriver(options: DriverOptions): Promise<DriverReport> {
  const client = new KVClient({ manager: options.manager, ...(options.credentials ?? {}) });
  try {
    await client.init();
    if (options.checkoutPercent !== undefined && options.unsafe) throw new Error('checkout mode needs the safe loop, not unsafe');
    const checkout = options.checkoutPercent === undefined ? undefined : new CheckoutShopping(options.checkoutPercent);
    if (checkout !== undefined) await checkout.prepare(client, options.carts);
    else for (let cart = 0; cart < options.carts; cart++) await client.put(cartKey(cart), emptyCartValue());

    const histogram = newLatencyHistogram();
    const ledgers = Array.from({ length: options.shoppers }, () => new Ledger());
    const pending: PendingChange[] = [];
    const totals = { ops: 0, conflictsRetried: 0, errorsRetried: 0 };
    let issued = 0;
    const started = performance.now();
    const deadline = options.durationMs === undefined ? Infinity : started + options.durationMs;
    const stopped = (): boolean => options.signal?.aborted === true || performance.now() >= deadline;
    const mayIssue = (): boolean => !stopped() && (options.ops === undefined || issued < options.ops);

    const progressTotal = options.ops ?? Math.ceil((options.durationMs ?? 0) / 1000);
    const progress = createProgress(options.unsafe ? 'driver (unsafe)' : 'driver', progressTotal, options.ops !== undefined ? 'ops' : 's', options.progress);
    const ticker = setInterval(() => {
      const value = options.ops !== undefined ? totals.ops : (performance.now() - started) / 1000;
      progress.update(value, totals.ops, totals.errorsRetried);
    }, PROGRESS_INTERVAL_MS);

    const shopper = async (index: number): Promise<void> => {
      const random = new SeededRandom(deriveSeed(options.seed, index));
      const ledger = ledgers[index] ?? new Ledger();
      for (let opSeq = 1; mayIssue(); opSeq++) {
        issued += 1;
        const cart = random.nextInt(options.carts);
        const action = checkout?.newAction(cart, index, opSeq, random);
        const t0 = performance.now();
        for (;;) {
          try {
            const applied = options.unsafe
              ? await changeUnsafely(client, cart, index, opSeq, random)
              : checkout !== undefined && action !== undefined
                ? await checkout.run(client, action, random, totals)
                : await changeSafely(client, cart, index, opSeq, random, totals);
            if (applied !== null) ledger.record(cart, applied);
            totals.ops += 1;
            recordMillis(histogram, performance.now() - t0);
            break;
          } catch (error) {
            if (!(error instanceof KVError) || error.code === 'INVALID_ARGUMENT' || error.code === 'CLOSED') throw error;
            if (error.code !== 'CONFLICT') totals.errorsRetried += 1;
            if (stopped()) {
              pending.push({ shopper: index, cart, opSeq });
              return;
            }
            if (error.code !== 'CONFLICT') await new Promise((resolve) => setTimeout(resolve, ERROR_RETRY_DELAY_MS));
          }
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: options.shoppers }, (_, index) => shopper(index)));
    } finally {
      clearInterval(ticker);
      progress.stop();
    }
    const elapsedSeconds = (performance.now() - started) / 1000;
    const verdict: { lostUpdates: number; unitsOff: number; report?: CheckoutReport } = checkout === undefined
      ? await checkCarts(client, options.carts, pending, ledgers)
      : await checkout.verify(client, options.carts, pending, ledgers);
    return {
      mode: options.unsafe ? 'unsafe' : 'safe',
      shoppers: options.shoppers,
      carts: options.carts,
      ops: totals.ops,
      elapsedSeconds: Math.round(elapsedSeconds * 100) / 100,
      opsPerSec: elapsedSeconds > 0 ? Math.round(totals.ops / elapsedSeconds) : 0,
      latency: percentilesOf(histogram),
      conflictsRetried: totals.conflictsRetried,
      errorsRetried: totals.errorsRetried,
      settledAtEnd: pending.length,
      lostUpdates: verdict.lostUpdates,
      unitsOff: verdict.unitsOff,
      ...(verdict.report === undefined ? {} : { checkout: verdict.report }),
    };
  } finally {
    await client.finalize();
  }
}

/** Settles the changes still pending when the run stopped, then compares every cart with the ledgers. */
async function checkCarts(client: KVClient, carts: number, pending: readonly PendingChange[], ledgers: readonly Ledger[]): Promise<{ lostUpdates: number; unitsOff: number }> {
  // Changes still unsettled when the run stopped: the cart's marker says whether they landed.
  for (const { shopper: index, cart, opSeq } of pending) {
    const prior = lastChangeOf(decodeCart(await client.get(cartKey(cart))), index);
    if (prior !== null && prior.opSeq === opSeq) ledgers[index]?.record(cart, prior.change);
  }

  const expected = new Map<number, Map<string, number>>();
  for (const ledger of ledgers) ledger.addInto(expected);
  let lostUpdates = 0;
  let off = 0;
  for (let cart = 0; cart < carts; cart++) {
    const units = unitsOff(decodeCart(await client.get(cartKey(cart))), expected.get(cart));
    if (units > 0) lostUpdates += 1;
    off += units;
  }
  return { lostUpdates, unitsOff: off };
}

/**
 * Picks this shopper's change for a cart: remove a unit of an item in it 40% of the time (when there is
 * one), else add a unit of a random item.
 */
function pickChange(cart: Cart, random: SeededRandom): CartChange {
  const present = Object.keys(cart.items).filter((name) => (cart.items[name] ?? 0) > 0).sort();
  if (present.length > 0 && random.nextInt(100) < 40) return { item: present[random.nextInt(present.length)] ?? 'apple', delta: -1 };
  return { item: CATALOGUE[random.nextInt(CATALOGUE.length)] ?? 'apple', delta: 1 };
}

/**
 * The change to make given the cart as read: if the cart already holds this shopper's change `opSeq`
 * (an earlier attempt whose outcome was unknown did land), that change and the unchanged value;
 * otherwise a new change and the new value.
 */
function decideChange(current: string | null, shopper: number, opSeq: number, random: SeededRandom): { change: CartChange; value: string } {
  const cart = decodeCart(current);
  const prior = lastChangeOf(cart, shopper);
  if (prior !== null && prior.opSeq >= opSeq) return { change: prior.change, value: current ?? emptyCartValue() };
  const change = pickChange(cart, random);
  return { change, value: encodeCart(applyChange(cart, change, shopper, opSeq)) };
}

/** The safe loop: update() reads, applies the change, and writes back with compare-and-set. */
async function changeSafely(client: KVClient, cart: number, shopper: number, opSeq: number, random: SeededRandom, totals: { conflictsRetried: number }): Promise<CartChange> {
  let change: CartChange | undefined;
  let rounds = 0;
  try {
    await client.update(cartKey(cart), (current) => {
      rounds += 1;
      const decided = decideChange(current, shopper, opSeq, random);
      change = decided.change;
      return decided.value;
    }, { maxAttempts: 1000 });
  } finally {
    totals.conflictsRetried += Math.max(0, rounds - 1);
  }
  if (change === undefined) throw new Error('update() resolved without calling its function');
  return change;
}

/** The naive loop: get, change, put — a concurrent shopper's write in between is overwritten. */
async function changeUnsafely(client: KVClient, cart: number, shopper: number, opSeq: number, random: SeededRandom): Promise<CartChange> {
  const decided = decideChange(await client.get(cartKey(cart)), shopper, opSeq, random);
  await client.put(cartKey(cart), decided.value);
  return decided.change;
}

/**
 * The one-paragraph summary printed at the end (followed by the `lost updates: N` line, and in
 * checkout mode by the lines of checkout-proof.ts `checkoutLines`).
 */
export function describeDriverReport(report: DriverReport): string {
  const how = report.checkout !== undefined
    ? `Checkout mode (read the cart, then compare-and-set one more item, or in ${report.checkout.percent}% of actions one transaction ` +
      'that turns the cart into an order and empties it; retry on conflict)'
    : report.mode === 'safe'
      ? 'Safe mode (update(): read, change, compare-and-set, retry on conflict)'
      : 'Unsafe mode (plain get + put, no conflict detection)';
  const n = (value: number): string => value.toLocaleString('en-US');
  const retries = report.checkout !== undefined
    ? `${n(report.conflictsRetried)} conflicts were retried`
    : report.mode === 'safe'
      ? `${n(report.conflictsRetried)} conflicts were retried by update()`
      : 'no conflicts were detected, because get + put cannot see them';
  const errors = report.errorsRetried === 0 ? 'no call failed' : `${n(report.errorsRetried)} failed calls were retried`;
  const settled = report.settledAtEnd === 0 ? '' : `, ${n(report.settledAtEnd)} interrupted changes were settled by the final check`;
  const checkedOut = report.checkout === undefined ? '' : ` (${n(report.checkout.checkouts)} of them checkouts)`;
  const verdict = report.lostUpdates === 0
    ? report.checkout === undefined ? `Every cart matches the shoppers' ledgers.` : `Every cart, with its orders, matches the shoppers' ledgers.`
    : `${n(report.lostUpdates)} of ${n(report.carts)} carts differ from the shoppers' ledgers by ${n(report.unitsOff)} item units in total: ` +
      (report.mode === 'unsafe' ? 'concurrent shoppers overwrote each other (use update()).' : 'updates were lost.');
  return `${how}: ${n(report.shoppers)} shoppers made ${n(report.ops)} cart changes${checkedOut} on ${n(report.carts)} carts in ` +
    `${report.elapsedSeconds.toFixed(1)} s (${n(report.opsPerSec)} ops/s); latency per change p50 ${report.latency.p50.toFixed(1)} ms, ` +
    `p99 ${report.latency.p99.toFixed(1)} ms; ${retries}; ${errors}${settled}. ${verdict}`;
}
