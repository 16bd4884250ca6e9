/**
 * `kvstore driver --checkout` (issue 18): shoppers add items to carts and sometimes check a cart out —
 * in one transaction the cart `{uN}cart` becomes the order `{uN}order:M` and is emptied. The hash tag
 * `{uN}` puts a cart and its orders in one shard, which a transaction needs.
 *
 * Every unit added has an id, {@link itemId}(shopper, change number), so the end can prove that each
 * added item is in a cart or in exactly one order (checkout-proof.ts). Shoppers only add in this mode:
 * a removal's landing is settled by the cart's `last` marker (cart.ts), which says what item it took
 * but not which unit, so removed ids could not be accounted for.
 *
 * An action is one round or more of: read the cart (its value and version), then either
 * compare-and-set it with one more unit, or run the checkout transaction — compares: the cart still
 * has the version read, the order is absent; success: put the order (the cart's items), put the cart
 * emptied (keeping `last`, so the markers still settle adds whose outcome was unknown); failure: get
 * the order. A failed compare is a conflict and the round starts again, unless the order exists: then
 * an earlier attempt of this action, whose outcome was unknown, did check out. The order number is
 * taken from a per-cart counter once per action and kept across its retries, so no other action ever
 * writes that order, and the final check reads every number taken. The counter starts after the
 * cart's `orders` (cart.ts), the highest number any earlier run used, so old orders are never
 * mistaken for this run's. Two drivers must not run on one cluster at once (as without --checkout).
 *
 * With `--cart-ttl` (cart-expiry.ts) every cart write is a transaction: the same version compare, and
 * a put carrying the TTL (a compare-and-set would clear it); orders never expire. A cart read absent
 * has expired: the next add writes it anew as a new life, whose `orders` starts at the highest order
 * number this run took, and whose markers are empty. So an add whose outcome was unknown and whose
 * cart expired before its retry could look can never be settled: it is *uncertain* (found at most
 * once), and the action ends rather than add the same unit to the new life. Because an expired cart
 * forgets its `orders`, the checkout transaction also writes it to `{uN}orders`, which never
 * expires, and a new run starts after the higher of the two.
 */
import { KVError, MAX_MANY_KEYS, type KVClient, type KVEntry } from '../client/index.js';
import { MAX_VALUE_BYTES, type SeededRandom } from '../common/index.js';
import {
  allLivesOf, applyChange, CATALOGUE, checkoutCartKey, decodeCart, decodeOrder, encodeCart, encodeOrder, idsIn, lastChangeOf, lifeOf, orderCounterKey, orderKey,
  totalsOf, unitsOff, type AppliedChange, type Cart, type CartChange, type Ledger,
} from './cart.js';
import type { CartLives } from './cart-expiry.js';
import { itemId, proveCheckout, type CheckoutProof, type Holding } from './checkout-proof.js';

/** The calls checkout mode makes: a {@link KVClient}, or in tests a store that injects faults. */
export type CheckoutClient = Pick<KVClient, 'getEntry' | 'cas' | 'txn' | 'getMany'>;

/** The share of actions that check a cart out when `--checkout-percent` is not given. */
export const DEFAULT_CHECKOUT_PERCENT = 10;
/**
 * A cart holding this many units is checked out instead of growing. With 64 shoppers' markers the
 * value stays under the 1024-byte limit; an add that would not fit checks out as well.
 */
export const MAX_CART_UNITS = 20;
/** Conflicting rounds before an action gives up with CONFLICT (the driver then retries it). */
const MAX_CONFLICT_ROUNDS = 1000;
/** Longest pause before a round after a conflict (jittered), so hot carts do not livelock. */
const MAX_CONFLICT_BACKOFF_MS = 50;
/** Rounds of reading failed keys again and of re-reading carts that changed (final check), and of emptying a cart (start). */
const SETTLE_ATTEMPTS = 10;
const SETTLE_RETRY_MS = 200;

/** One action of a shopper in checkout mode, kept across its retries. */
export interface CheckoutAction {
  cart: number;
  shopper: number;
  opSeq: number;
  /** Drawn once: the action checks the cart out if it holds anything (a full cart is checked out regardless). */
  wantsCheckout: boolean;
  /** The order it checks out into, taken on its first checkout attempt; no other action uses it. */
  orderNumber?: number;
  /** A checkout transaction was sent, and may have applied: later rounds look for the order first. */
  checkoutSent: boolean;
  /** When the action began (`performance.now()`): no attempt of it was sent earlier. */
  startedMs: number;
  /**
   * The adds of this action whose outcome is not known yet: the life and version each compared.
   * A later round that reads another life cannot tell whether one landed (with `--cart-ttl`).
   */
  unknownAdds: { life: number; version: number }[];
}

/** A change still unsettled when the run stopped. */
export interface PendingChange {
  shopper: number;
  cart: number;
  opSeq: number;
}

/** What checkout mode adds to the driver's report. */
export interface CheckoutReport {
  /** The share of actions that chose to check out (`--checkout-percent`). */
  percent: number;
  /** Actions that checked a cart out and knew it (orders whose outcome stayed unknown are not counted). */
  checkouts: number;
  proof: CheckoutProof;
}

/** The final check in checkout mode: the driver's `lost updates` count and the checkout proof. */
export interface CheckoutVerdict {
  /** Carts whose items, counting their orders', differ from the shoppers' ledgers. */
  lostUpdates: number;
  unitsOff: number;
  report: CheckoutReport;
}

/** How a round ended; 'unknown': an add may have landed in a cart that expired since (the action ends). */
type RoundOutcome = AppliedChange | 'checked out' | 'conflict' | 'unknown';

/** Where an acknowledged item was added. */
interface Acknowledged {
  cart: number;
  life: number;
  item: string;
}

/** A cart and its orders as read at one moment. */
interface CartSnapshot {
  cart: Cart;
  orders: { key: string; contents: Pick<Cart, 'items' | 'ids'> }[];
}

/** The state checkout mode shares across shoppers: order numbers taken, acknowledged adds, checkouts. */
export class CheckoutShopping {
  /** cart → the highest order number taken for it by this run (its base if none). */
  private readonly ordersTaken = new Map<number, number>();
  /** cart → the highest order number earlier runs used: this run's orders come after it. */
  private readonly ordersBefore = new Map<number, number>();
  /** Ids of every add known to have landed, and where. */
  private readonly acknowledged = new Map<number, Acknowledged>();
  /** Ids of adds that may have landed in a cart that expired before anyone could tell. */
  private readonly uncertain = new Set<number>();
  private checkouts = 0;

  /**
   * @param percent the share of actions (1…100) that check the cart out when it holds anything.
   * @param lives with `--cart-ttl`: the carts' TTL and lives; every cart write carries the TTL.
   */
  constructor(private readonly percent: number, private readonly lives?: CartLives) {}

  /**
   * Empties every cart for a new run, keeping its `orders` number (or `{uN}orders`, when higher: the
   * cart may have expired) so this run's orders come after every earlier run's. Compare-and-set: a
   * late write of an earlier run cannot slip in between.
   */
  async prepare(client: CheckoutClient, cartCount: number): Promise<void> {
    for (let cart = 0; cart < cartCount; cart++) {
      const key = checkoutCartKey(cart);
      for (let attempt = 1; ; attempt++) {
        const entry = await client.getEntry(key);
        const counter = await client.getEntry(orderCounterKey(cart));
        const before = Math.max(entry === null ? 0 : (decodeCart(entry.value).orders ?? 0), counter === null ? 0 : Number(counter.value) || 0);
        try {
          // Retrying is safe whatever the failed attempt did: it wrote this same empty cart, keeping `orders`.
          if (!(await this.writeEmptyCart(client, cart, entry?.version ?? 0, before))) throw new KVError('CONFLICT', `${key} changed while it was emptied`);
        } catch (error) {
          const retryable = error instanceof KVError && (error.code === 'CONFLICT' || error.retryable);
          if (!retryable || attempt >= SETTLE_ATTEMPTS) throw error;
          continue;
        }
        this.ordersBefore.set(cart, before);
        this.ordersTaken.set(cart, before);
        break;
      }
    }
  }

  /**
   * Writes cart `cart` empty, keeping `orders`, if its version is `version`; false when it is not.
   * With a TTL, a new life, and `{uN}orders` too.
   */
  private async writeEmptyCart(client: CheckoutClient, cart: number, version: number, orders: number): Promise<boolean> {
    const key = checkoutCartKey(cart);
    if (this.lives === undefined) {
      try {
        await client.cas(key, version, encodeCart({ items: {}, ids: {}, last: [], orders }));
        return true;
      } catch (error) {
        if (error instanceof KVError && error.code === 'CONFLICT') return false;
        throw error;
      }
    }
    const life = this.lives.newLife();
    const sentAtMs = performance.now();
    const result = await client.txn({
      compare: [{ key, version }],
      success: [
        { put: { key, value: encodeCart({ items: {}, ids: {}, last: [], orders, life }), ttlMs: this.lives.ttlMs } },
        { put: { key: orderCounterKey(cart), value: String(orders) } },
      ],
    });
    if (result.succeeded) this.lives.wrote(cart, life, sentAtMs, performance.now());
    return result.succeeded;
  }

  /** A new action of shopper `shopper` on cart `cart`, as its change number `opSeq`. */
  newAction(cart: number, shopper: number, opSeq: number, random: SeededRandom): CheckoutAction {
    return { cart, shopper, opSeq, wantsCheckout: random.nextInt(100) < this.percent, checkoutSent: false, startedMs: performance.now(), unknownAdds: [] };
  }

  /**
   * Runs `action` until it adds a unit (resolves to the change and the cart life it landed in, which
   * the caller records in its ledger), checks the cart out (resolves to null), or finds that an add
   * it sent earlier may have landed in a cart that expired since (null; the item is uncertain).
   * Rejects as the client does; calling it again with the same action continues it safely, whatever
   * the failed attempt did.
   */
  async run(client: CheckoutClient, action: CheckoutAction, random: SeededRandom, totals: { conflictsRetried: number }): Promise<AppliedChange | null> {
    for (let round = 0; ; round++) {
      const outcome = await this.round(client, action, random);
      if (outcome === 'checked out') {
        this.checkouts += 1;
        return null;
      }
      if (outcome === 'unknown') {
        this.uncertain.add(itemId(action.shopper, action.opSeq));
        return null;
      }
      if (outcome !== 'conflict') {
        this.acknowledged.set(itemId(action.shopper, action.opSeq), { cart: action.cart, life: outcome.life, item: outcome.change.item });
        return outcome;
      }
      totals.conflictsRetried += 1;
      if (round + 1 >= MAX_CONFLICT_ROUNDS) throw new KVError('CONFLICT', `cart ${action.cart}: ${MAX_CONFLICT_ROUNDS} conflicting rounds`, { retryable: true });
      const backoffMs = 1 + random.nextInt(Math.min(2 ** (round + 1), MAX_CONFLICT_BACKOFF_MS));
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
    }
  }

  /**
   * Reads every cart and every order number taken, settles the changes still pending with the carts'
   * markers, checks the carts plus their orders against the ledgers, and proves no item was lost or
   * duplicated. With `--cart-ttl`, items acknowledged in a cart life that expired as the TTL allows
   * may be found nowhere (they expired with their cart), and a cart with a life that vanished early
   * counts as a lost update. Call it once the shoppers have stopped.
   */
  async verify(client: CheckoutClient, cartCount: number, pending: readonly PendingChange[], ledgers: readonly Ledger[]): Promise<CheckoutVerdict> {
    const snapshots = await this.readSnapshots(client, cartCount);
    const uncertain = new Set(this.uncertain);
    for (const { shopper, cart, opSeq } of pending) {
      const final = snapshots.get(cart)?.cart ?? decodeCart(null);
      const prior = lastChangeOf(final, shopper);
      if (prior !== null && prior.opSeq === opSeq) {
        ledgers[shopper]?.record(cart, prior.change, lifeOf(final));
        this.acknowledged.set(itemId(shopper, opSeq), { cart, life: lifeOf(final), item: prior.change.item });
      } else {
        uncertain.add(itemId(shopper, opSeq));
      }
    }
    const totals = totalsOf(ledgers);
    const adjustments = this.lives === undefined ? undefined : this.expiryAdjustments(snapshots, uncertain);
    let lostUpdates = 0;
    let off = 0;
    const carts: Holding[] = [];
    const orders: Holding[] = [];
    for (let cart = 0; cart < cartCount; cart++) {
      const snapshot = snapshots.get(cart) ?? { cart: decodeCart(null), orders: [] };
      const held = { ...snapshot.cart.items };
      for (const order of snapshot.orders) {
        for (const [name, count] of Object.entries(order.contents.items)) held[name] = (held[name] ?? 0) + count;
        orders.push({ place: order.key, ids: idsIn(order.contents) });
      }
      carts.push({ place: checkoutCartKey(cart), ids: idsIn(snapshot.cart) });
      const expected = allLivesOf(totals, cart);
      for (const [item, units] of adjustments?.get(cart) ?? []) expected.set(item, (expected.get(item) ?? 0) + units);
      const units = unitsOff({ items: held, last: [] }, expected);
      if (units > 0 || this.lives?.vanishedEarlyIn(cart) === true) lostUpdates += 1;
      off += units;
    }
    const expiredCarts = this.lives === undefined ? undefined : this.idsInExpiredLives();
    const proof = proveCheckout({ carts, orders, acknowledged: new Set(this.acknowledged.keys()), uncertain, ...(expiredCarts === undefined ? {} : { expiredCarts }) });
    return { lostUpdates, unitsOff: off, report: { percent: this.percent, checkouts: this.checkouts, proof } };
  }

  /** Acknowledged ids added to a cart life that expired as the TTL allows. */
  private idsInExpiredLives(): Set<number> {
    const ids = new Set<number>();
    for (const [id, where] of this.acknowledged) if (this.lives?.endOf(where.cart, where.life) === 'expired') ids.add(id);
    return ids;
  }

  /**
   * With `--cart-ttl`, what the ledgers expect of a cart plus its orders changes: cart → item → units
   * to add. Minus each acknowledged item that expired with its cart (found nowhere, its life expired);
   * plus each uncertain item found (it did land, though no ledger has it).
   */
  private expiryAdjustments(snapshots: ReadonlyMap<number, CartSnapshot>, uncertain: ReadonlySet<number>): Map<number, Map<string, number>> {
    const adjustments = new Map<number, Map<string, number>>();
    const adjust = (cart: number, item: string, units: number): void => {
      const items = adjustments.get(cart) ?? new Map<string, number>();
      items.set(item, (items.get(item) ?? 0) + units);
      adjustments.set(cart, items);
    };
    const found = new Set<number>();
    for (const [cart, snapshot] of snapshots) {
      for (const contents of [snapshot.cart, ...snapshot.orders.map((order) => order.contents)]) {
        for (const [item, ids] of Object.entries(contents.ids ?? {})) {
          for (const id of ids) {
            if (uncertain.has(id) && !found.has(id)) adjust(cart, item, 1);
            found.add(id);
          }
        }
      }
    }
    for (const [id, where] of this.acknowledged) {
      if (!found.has(id) && this.lives?.endOf(where.cart, where.life) === 'expired') adjust(where.cart, where.item, -1);
    }
    return adjustments;
  }

  private async round(client: CheckoutClient, action: CheckoutAction, random: SeededRandom): Promise<RoundOutcome> {
    const key = checkoutCartKey(action.cart);
    const sentAtMs = performance.now();
    const entry = await client.getEntry(key);
    const answeredAtMs = performance.now();
    if (entry === null && this.lives === undefined) throw new Error(`${key} is missing (the driver creates every cart and never deletes one)`);
    // Absent: the cart expired, and the next write starts a new life.
    const cart = entry === null ? this.newLifeCart(action.cart) : decodeCart(entry.value);
    this.lives?.read(action.cart, entry === null ? null : lifeOf(cart), sentAtMs, answeredAtMs);
    // Read the order AFTER the cart: if an earlier attempt applies later still, it needed the cart at
    // the version just read, so the compare below fails and its failure branch finds the order.
    if (action.checkoutSent && action.orderNumber !== undefined && (await client.getEntry(orderKey(action.cart, action.orderNumber))) !== null) {
      return 'checked out';
    }
    const prior = entry === null ? null : lastChangeOf(cart, action.shopper);
    if (prior !== null && prior.opSeq >= action.opSeq) {
      // An earlier attempt landed in this life: sent after the action began, seen by this read.
      this.lives?.wrote(action.cart, lifeOf(cart), action.startedMs, answeredAtMs);
      return { change: prior.change, life: lifeOf(cart) };
    }
    // An add sent to another life (or to a cart that now is gone) may have landed there before it
    // expired: its markers went with it, so nothing can tell. Adding the unit again could duplicate it.
    const version = entry?.version ?? 0;
    // One sent to this life at another version never lands: it landed before (the marker would say) or never.
    action.unknownAdds = action.unknownAdds.filter((sent) => entry === null || sent.life !== lifeOf(cart) || sent.version === version);
    if (action.unknownAdds.some((sent) => sent.version !== 0 ? sent.life !== (entry === null ? null : lifeOf(cart)) : entry !== null && sent.life !== lifeOf(cart))) {
      return 'unknown';
    }
    const units = Object.values(cart.items).reduce((sum, count) => sum + count, 0);
    if (units === 0 || (!action.wantsCheckout && units < MAX_CART_UNITS)) {
      const change: CartChange = { item: CATALOGUE[random.nextInt(CATALOGUE.length)] ?? 'apple', delta: 1 };
      const value = encodeCart(withUnit(cart, change, action.shopper, action.opSeq));
      if (Buffer.byteLength(value) <= MAX_VALUE_BYTES) return this.addUnit(client, action, { key, version, life: lifeOf(cart) }, value, change);
      if (units === 0) throw new Error(`${key}: an empty cart has no room for one item (${Buffer.byteLength(value)} bytes)`);
    }
    if (entry === null) throw new Error(`${key}: an absent cart holds no item to check out`);
    return this.checkOut(client, action, key, entry, cart);
  }

  /** An empty cart of a new life: what an add writes where the cart expired. */
  private newLifeCart(cart: number): Cart {
    return { items: {}, ids: {}, last: [], orders: this.ordersTaken.get(cart) ?? 0, life: this.lives?.newLife() ?? 0 };
  }

  /** Writes the cart with its new unit if nobody wrote it since it was read (and it did not expire). */
  private async addUnit(client: CheckoutClient, action: CheckoutAction, target: { key: string; version: number; life: number }, value: string, change: CartChange): Promise<RoundOutcome> {
    const sent = { life: target.life, version: target.version };
    action.unknownAdds.push(sent); // until the answer says what became of it
    const sentAtMs = performance.now();
    let landed: boolean;
    if (this.lives === undefined) {
      try {
        await client.cas(target.key, target.version, value);
        landed = true;
      } catch (error) {
        if (!(error instanceof KVError && error.code === 'CONFLICT')) throw error;
        landed = false;
      }
    } else {
      const result = await client.txn({ compare: [{ key: target.key, version: target.version }], success: [{ put: { key: target.key, value, ttlMs: this.lives.ttlMs } }] });
      landed = result.succeeded;
    }
    action.unknownAdds.splice(action.unknownAdds.indexOf(sent), 1);
    if (!landed) return 'conflict';
    this.lives?.wrote(action.cart, target.life, sentAtMs, performance.now());
    return { change, life: target.life };
  }

  private async checkOut(client: CheckoutClient, action: CheckoutAction, key: string, entry: KVEntry, cart: Cart): Promise<RoundOutcome> {
    action.orderNumber ??= this.takeOrderNumber(action.cart);
    const order = orderKey(action.cart, action.orderNumber);
    const orders = Math.max(cart.orders ?? 0, action.orderNumber);
    const emptied = encodeCart({ items: {}, ids: {}, last: cart.last, orders, ...(cart.life === undefined ? {} : { life: cart.life }) });
    action.checkoutSent = true;
    const sentAtMs = performance.now();
    const result = await client.txn({
      compare: [{ key, version: entry.version }, { key: order, version: 0 }],
      success: [
        { put: { key: order, value: encodeOrder(cart) } },
        this.lives === undefined ? { put: { key, value: emptied } } : { put: { key, value: emptied, ttlMs: this.lives.ttlMs } },
        // An expired cart forgets `orders`: keep it where it does not expire (orders are never reused).
        ...(this.lives === undefined ? [] : [{ put: { key: orderCounterKey(action.cart), value: String(orders) } }]),
      ],
      failure: [{ get: { key: order } }],
    });
    if (result.succeeded) {
      this.lives?.wrote(action.cart, lifeOf(cart), sentAtMs, performance.now());
      return 'checked out';
    }
    const found = result.results[0];
    return found?.op === 'get' && found.entry !== null ? 'checked out' : 'conflict';
  }

  private takeOrderNumber(cart: number): number {
    const next = (this.ordersTaken.get(cart) ?? 0) + 1;
    this.ordersTaken.set(cart, next);
    return next;
  }

  /** The keys of every order number this run took for `cart`. */
  private orderKeysOf(cart: number): string[] {
    const before = this.ordersBefore.get(cart) ?? 0;
    return Array.from({ length: (this.ordersTaken.get(cart) ?? before) - before }, (_, i) => orderKey(cart, before + i + 1));
  }

  /**
   * Every cart with its orders, each pair consistent: a cart is read, then its orders, then the cart
   * again, and kept only if its version did not move. Every order is created by a transaction that
   * also writes its cart, so an unmoved cart means its orders were read as they were then. Carts that
   * moved (a write whose outcome was unknown applying late) are read again.
   */
  private async readSnapshots(client: CheckoutClient, cartCount: number): Promise<Map<number, CartSnapshot>> {
    const snapshots = new Map<number, CartSnapshot>();
    let unsettled = Array.from({ length: cartCount }, (_, cart) => cart);
    for (let attempt = 1; unsettled.length > 0; attempt++) {
      if (attempt > SETTLE_ATTEMPTS) throw new Error(`${unsettled.length} carts kept changing while the final check read them`);
      if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, SETTLE_RETRY_MS));
      const before = await this.readCarts(client, unsettled);
      const orders = await readEntries(client, unsettled.flatMap((cart) => this.orderKeysOf(cart)));
      const after = await this.readCarts(client, unsettled);
      const moved: number[] = [];
      for (const cart of unsettled) {
        const key = checkoutCartKey(cart);
        const first = before.get(key) ?? null;
        const second = after.get(key) ?? null;
        if (first?.version !== second?.version) {
          moved.push(cart);
          continue;
        }
        snapshots.set(cart, {
          cart: decodeCart(second?.value ?? null),
          orders: this.orderKeysOf(cart).flatMap((orderKeyRead) => {
            const order = orders.get(orderKeyRead) ?? null;
            return order === null ? [] : [{ key: orderKeyRead, contents: decodeOrder(order.value) }];
          }),
        });
      }
      unsettled = moved;
    }
    return snapshots;
  }

  /** Reads carts `carts`; with `--cart-ttl` each read is evidence of which lives ended. */
  private async readCarts(client: CheckoutClient, carts: readonly number[]): Promise<Map<string, KVEntry | null>> {
    const sentAtMs = performance.now();
    const entries = await readEntries(client, carts.map(checkoutCartKey));
    const answeredAtMs = performance.now();
    for (const cart of carts) {
      const entry = entries.get(checkoutCartKey(cart)) ?? null;
      this.lives?.read(cart, entry === null ? null : lifeOf(decodeCart(entry.value)), sentAtMs, answeredAtMs);
    }
    return entries;
  }
}

/** The cart with one more unit of `change.item`, whose id is {@link itemId}(shopper, opSeq). */
function withUnit(cart: Cart, change: CartChange, shopper: number, opSeq: number): Cart {
  const ids = { ...(cart.ids ?? {}) };
  ids[change.item] = [...(ids[change.item] ?? []), itemId(shopper, opSeq)];
  return { ...cart, ...applyChange(cart, change, shopper, opSeq), ids };
}

/** Reads `keys` (any number) in batches; keys that fail are read again, a few times, before giving up. */
async function readEntries(client: CheckoutClient, keys: readonly string[]): Promise<Map<string, KVEntry | null>> {
  const entries = new Map<string, KVEntry | null>();
  let remaining = [...keys];
  for (let attempt = 1; remaining.length > 0; attempt++) {
    if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, SETTLE_RETRY_MS));
    const failed: string[] = [];
    let lastError: KVError | undefined;
    for (let start = 0; start < remaining.length; start += MAX_MANY_KEYS) {
      for (const result of await client.getMany(remaining.slice(start, start + MAX_MANY_KEYS))) {
        if (result.ok) {
          entries.set(result.key, result.entry);
        } else {
          failed.push(result.key);
          lastError = result.error;
        }
      }
    }
    if (lastError !== undefined && attempt >= SETTLE_ATTEMPTS) throw lastError;
    remaining = failed;
  }
  return entries;
}
