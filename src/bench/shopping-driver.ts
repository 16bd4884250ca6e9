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
 * With `cartTtlMs` (`--cart-ttl`) every cart write carries that TTL — a transaction comparing the
 * version, since update()'s compare-and-set would clear it — and a quarter of the carts is left alone
 * at a time, so some expire; a cart that expired starts a new life (cart-expiry.ts). The ledgers
 * then count per life: the last life is checked as before, a life that expired as the TTL allows
 * took its items with it, and a life read absent before its TTL allowed lost them.
 */
import { KVClient, KVError } from '../client/index.js';
import type { ClientCredentials } from '../cluster/index.js';
import { deriveSeed, SeededRandom } from '../common/index.js';
import { applyChange, CATALOGUE, cartKey, checkoutCartKey, decodeCart, emptyCartValue, encodeCart, lastChangeOf, Ledger, lifeOf, totalsOf, unitsOff, type AppliedChange, type Cart, type CartChange } from './cart.js';
import { abandonmentWindowMs, CartLives, pickActiveCart } from './cart-expiry.js';
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
  /**
   * Every cart write carries this TTL (ms), refreshing it; orders never expire. Shoppers leave a
   * quarter of the carts alone at a time (for twice the TTL, at least the TTL plus 1 s), so some
   * expire. Absent: carts never expire.
   */
  cartTtlMs?: number;
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
  /** Carts whose contents differ from the ledgers (with a TTL: or one of whose lives vanished before the TTL allowed). */
  lostUpdates: number;
  /** Item units by which those carts differ in total. */
  unitsOff: number;
  /** Checkout mode only: the orders and the proof that no item was lost or duplicated. */
  checkout?: CheckoutReport;
  /** With `cartTtlMs` only: the carts that expired. */
  expiry?: ExpiryReport;
}

/** What `--cart-ttl` adds to the report. */
export interface ExpiryReport {
  cartTtlMs: number;
  /** Times a cart expired as its TTL allows (a cart that expired, was filled and expired again counts twice). */
  expiredCarts: number;
  /** Item units that went with them: net units by the ledgers, or in checkout mode items by the proof. */
  unitsExpired: number;
  /** Times a cart was read absent before its TTL allowed it to expire (its cart counts as a lost update). */
  vanishedEarly: number;
  /** A few of those, each with its evidence. */
  examples: string[];
}

/** Delay between retries of a failed change (the client already retried within its deadline). */
const ERROR_RETRY_DELAY_MS = 100;
/** With a TTL: conflicting rounds before a change gives up with CONFLICT (the shopper then retries it), as update()'s maxAttempts. */
const MAX_CONFLICT_ROUNDS = 1000;
/** With a TTL: longest pause before a round after a conflict (jittered), so hot carts do not livelock. */
const MAX_CONFLICT_BACKOFF_MS = 50;
const PROGRESS_INTERVAL_MS = 250;

/** Runs the driver against the cluster at `options.manager` and checks every cart. */
export async function runDriver(options: DriverOptions): Promise<DriverReport> {
  const client = new KVClient({ manager: options.manager, ...(options.credentials ?? {}) });
  try {
    await client.init();
    if (options.checkoutPercent !== undefined && options.unsafe) throw new Error('checkout mode needs the safe loop, not unsafe');
    const lives = options.cartTtlMs === undefined ? undefined : new CartLives(options.cartTtlMs, options.checkoutPercent === undefined ? cartKey : checkoutCartKey);
    const checkout = options.checkoutPercent === undefined ? undefined : new CheckoutShopping(options.checkoutPercent, lives);
    if (checkout !== undefined) await checkout.prepare(client, options.carts);
    else await prepareCarts(client, options.carts, lives);

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
        const cart = lives === undefined
          ? random.nextInt(options.carts)
          : pickActiveCart(random, options.carts, Math.floor((performance.now() - started) / abandonmentWindowMs(lives.ttlMs)));
        const action = checkout?.newAction(cart, index, opSeq, random);
        const t0 = performance.now();
        for (;;) {
          try {
            const applied: AppliedChange | null = options.unsafe
              ? await changeUnsafely(client, cart, index, opSeq, random, lives)
              : checkout !== undefined && action !== undefined
                ? await checkout.run(client, action, random, totals)
                : lives !== undefined
                  ? await changeWithTtl(client, { cart, shopper: index, opSeq, startedMs: t0 }, random, totals, lives)
                  : { change: await changeSafely(client, cart, index, opSeq, random, totals), life: 0 };
            if (applied !== null) ledger.record(cart, applied.change, applied.life);
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
    const verdict: { lostUpdates: number; unitsOff: number; unitsExpired?: number; report?: CheckoutReport } = checkout === undefined
      ? await checkCarts(client, options.carts, pending, ledgers, lives)
      : await checkout.verify(client, options.carts, pending, ledgers);
    const expiry: ExpiryReport | undefined = lives === undefined ? undefined : {
      cartTtlMs: lives.ttlMs,
      expiredCarts: lives.expired,
      unitsExpired: verdict.report?.proof.expiredWithCart ?? verdict.unitsExpired ?? 0,
      vanishedEarly: lives.vanishedEarly,
      examples: lives.examples(),
    };
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
      ...(expiry === undefined ? {} : { expiry }),
    };
  } finally {
    await client.finalize();
  }
}

/** Writes every cart empty; with `lives`, as a new life carrying the TTL. */
async function prepareCarts(client: KVClient, carts: number, lives: CartLives | undefined): Promise<void> {
  for (let cart = 0; cart < carts; cart++) {
    if (lives === undefined) {
      await client.put(cartKey(cart), emptyCartValue());
      continue;
    }
    const life = lives.newLife();
    const sentAtMs = performance.now();
    await client.put(cartKey(cart), encodeCart({ items: {}, last: [], life }), { ttlMs: lives.ttlMs });
    lives.wrote(cart, life, sentAtMs, performance.now());
  }
}

/** Reads cart `cart`; with `lives`, the read is evidence of which of its lives ended. */
async function readCart(client: KVClient, cart: number, lives: CartLives | undefined): Promise<{ value: string | null; cart: Cart }> {
  const sentAtMs = performance.now();
  const value = await client.get(cartKey(cart));
  const answeredAtMs = performance.now();
  const decoded = decodeCart(value);
  lives?.read(cart, value === null ? null : lifeOf(decoded), sentAtMs, answeredAtMs);
  return { value, cart: decoded };
}

/**
 * Settles the changes still pending when the run stopped, then compares every cart with the ledgers.
 * With `lives`, each cart's last life is compared; a cart also differs when one of its lives vanished
 * before its TTL allowed (its units count as off), and the units of lives that expired are counted.
 */
async function checkCarts(client: KVClient, carts: number, pending: readonly PendingChange[], ledgers: readonly Ledger[], lives: CartLives | undefined): Promise<{ lostUpdates: number; unitsOff: number; unitsExpired: number }> {
  // Changes still unsettled when the run stopped: the cart's marker says whether they landed (in its current life).
  for (const { shopper: index, cart, opSeq } of pending) {
    const read = await readCart(client, cart, lives);
    const prior = lastChangeOf(read.cart, index);
    if (prior !== null && prior.opSeq === opSeq) ledgers[index]?.record(cart, prior.change, lifeOf(read.cart));
  }

  const totals = totalsOf(ledgers);
  let lostUpdates = 0;
  let off = 0;
  let unitsExpired = 0;
  for (let cart = 0; cart < carts; cart++) {
    const final = await readCart(client, cart, lives);
    const finalLife = final.value === null ? null : lifeOf(final.cart);
    let units = unitsOff(final.cart, finalLife === null ? undefined : totals.get(cart)?.get(finalLife));
    for (const [life, items] of totals.get(cart) ?? []) {
      if (life === finalLife) continue;
      const net = [...items.values()];
      // Without a TTL every change is in the one life read last; a life with no read showing it end is as bad as one that vanished.
      if (lives?.endOf(cart, life) === 'expired') unitsExpired += net.reduce((sum, n) => sum + Math.max(0, n), 0);
      else units += net.reduce((sum, n) => sum + Math.abs(n), 0);
    }
    if (units > 0 || lives?.vanishedEarlyIn(cart) === true) lostUpdates += 1;
    off += units;
  }
  return { lostUpdates, unitsOff: off, unitsExpired };
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
 * (an earlier attempt whose outcome was unknown did land), that change, the unchanged value and
 * `landed`; otherwise a new change and the new value. With `newLife` (a TTL), an absent cart is
 * written as a new life, and every value keeps its life.
 */
function decideChange(current: string | null, shopper: number, opSeq: number, random: SeededRandom, newLife?: () => number): { change: CartChange; value: string; life: number; landed: boolean } {
  const cart = decodeCart(current);
  const life = current === null && newLife !== undefined ? newLife() : lifeOf(cart);
  const prior = lastChangeOf(cart, shopper);
  if (prior !== null && prior.opSeq >= opSeq) return { change: prior.change, value: current ?? emptyCartValue(), life, landed: true };
  const change = pickChange(cart, random);
  const changed = applyChange(cart, change, shopper, opSeq);
  return { change, value: encodeCart(newLife === undefined ? changed : { ...changed, life }), life, landed: false };
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

/** One cart change of a shopper, kept across its retries. */
interface ChangeAction {
  cart: number;
  shopper: number;
  opSeq: number;
  /** When it began (`performance.now()`): no attempt of it was sent earlier. */
  startedMs: number;
}

/**
 * The safe loop with a TTL: read the cart, apply the change, and write it back with a transaction
 * that compares the version read (0: still absent) and puts the cart with its TTL; retry on conflict.
 * update() cannot do it: its compare-and-set would clear the TTL.
 */
async function changeWithTtl(client: KVClient, action: ChangeAction, random: SeededRandom, totals: { conflictsRetried: number }, lives: CartLives): Promise<AppliedChange> {
  const key = cartKey(action.cart);
  for (let round = 0; ; round++) {
    const sentAtMs = performance.now();
    const entry = await client.getEntry(key);
    const answeredAtMs = performance.now();
    lives.read(action.cart, entry === null ? null : lifeOf(decodeCart(entry.value)), sentAtMs, answeredAtMs);
    const decided = decideChange(entry?.value ?? null, action.shopper, action.opSeq, random, () => lives.newLife());
    if (decided.landed) {
      lives.wrote(action.cart, decided.life, action.startedMs, answeredAtMs);
      return { change: decided.change, life: decided.life };
    }
    const writeSentAtMs = performance.now();
    const result = await client.txn({
      compare: [{ key, version: entry?.version ?? 0 }],
      success: [{ put: { key, value: decided.value, ttlMs: lives.ttlMs } }],
    });
    if (result.succeeded) {
      lives.wrote(action.cart, decided.life, writeSentAtMs, performance.now());
      return { change: decided.change, life: decided.life };
    }
    totals.conflictsRetried += 1;
    if (round + 1 >= MAX_CONFLICT_ROUNDS) throw new KVError('CONFLICT', `${key}: ${MAX_CONFLICT_ROUNDS} conflicting rounds`, { retryable: true });
    await new Promise((resolve) => setTimeout(resolve, 1 + random.nextInt(Math.min(2 ** (round + 1), MAX_CONFLICT_BACKOFF_MS))));
  }
}

/**
 * The naive loop: get, change, put — a concurrent shopper's write in between is overwritten. With
 * `lives` the put carries the TTL.
 */
async function changeUnsafely(client: KVClient, cart: number, shopper: number, opSeq: number, random: SeededRandom, lives: CartLives | undefined): Promise<AppliedChange> {
  const read = await readCart(client, cart, lives);
  const decided = decideChange(read.value, shopper, opSeq, random, lives === undefined ? undefined : () => lives.newLife());
  const sentAtMs = performance.now();
  await client.put(cartKey(cart), decided.value, lives === undefined ? {} : { ttlMs: lives.ttlMs });
  lives?.wrote(cart, decided.life, sentAtMs, performance.now());
  return { change: decided.change, life: decided.life };
}

/**
 * The one-paragraph summary printed at the end (followed by the `lost updates: N` line, with a TTL
 * by `expired carts: E`, and in checkout mode by the lines of checkout-proof.ts `checkoutLines`).
 */
export function describeDriverReport(report: DriverReport): string {
  const ttl = report.expiry !== undefined;
  const how = report.checkout !== undefined
    ? `Checkout mode (read the cart, then ${ttl ? 'add one more item with a transaction that compares its version and refreshes its TTL' : 'compare-and-set one more item'}, ` +
      `or in ${report.checkout.percent}% of actions one transaction that turns the cart into an order and empties it; retry on conflict)`
    : report.mode === 'safe'
      ? ttl
        ? 'Safe mode (read, change, then a transaction that compares the version and puts the cart with its TTL; retry on conflict)'
        : 'Safe mode (update(): read, change, compare-and-set, retry on conflict)'
      : `Unsafe mode (plain get + put${ttl ? ' with the TTL' : ''}, no conflict detection)`;
  const n = (value: number): string => value.toLocaleString('en-US');
  const retries = report.mode !== 'safe'
    ? 'no conflicts were detected, because get + put cannot see them'
    : `${n(report.conflictsRetried)} conflicts were retried${report.checkout !== undefined || ttl ? '' : ' by update()'}`;
  const errors = report.errorsRetried === 0 ? 'no call failed' : `${n(report.errorsRetried)} failed calls were retried`;
  const settled = report.settledAtEnd === 0 ? '' : `, ${n(report.settledAtEnd)} interrupted changes were settled by the final check`;
  const checkedOut = report.checkout === undefined ? '' : ` (${n(report.checkout.checkouts)} of them checkouts)`;
  const expiry = report.expiry === undefined ? '' : describeExpiry(report.expiry, report.checkout !== undefined);
  const verdict = report.lostUpdates === 0
    ? report.checkout === undefined ? `Every cart matches the shoppers' ledgers.` : `Every cart, with its orders, matches the shoppers' ledgers.`
    : `${n(report.lostUpdates)} of ${n(report.carts)} carts differ from the shoppers' ledgers by ${n(report.unitsOff)} item units in total: ` +
      (report.mode === 'unsafe' ? 'concurrent shoppers overwrote each other (use update()).' : 'updates were lost.');
  return `${how}: ${n(report.shoppers)} shoppers made ${n(report.ops)} cart changes${checkedOut} on ${n(report.carts)} carts in ` +
    `${report.elapsedSeconds.toFixed(1)} s (${n(report.opsPerSec)} ops/s); latency per change p50 ${report.latency.p50.toFixed(1)} ms, ` +
    `p99 ${report.latency.p99.toFixed(1)} ms; ${retries}; ${errors}${settled}.${expiry} ${verdict}`;
}

/** The sentence about expired carts (with a leading space). */
function describeExpiry(expiry: ExpiryReport, checkout: boolean): string {
  const n = (value: number): string => value.toLocaleString('en-US');
  const ttl = expiry.cartTtlMs < 1000 ? `${expiry.cartTtlMs} ms` : `${n(expiry.cartTtlMs / 1000)} s`;
  const what = checkout ? 'items' : 'item units';
  const vanished = expiry.vanishedEarly === 0 ? '' : ` ${n(expiry.vanishedEarly)} times a cart was gone before its TTL allowed it to expire: what it held is lost.`;
  return ` Carts expire ${ttl} after their last write, and a quarter of them is left alone at a time: a cart expired ${n(expiry.expiredCarts)} times, ` +
    `taking ${n(expiry.unitsExpired)} ${what} with it.${vanished}`;
}
