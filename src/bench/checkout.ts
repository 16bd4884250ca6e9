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
 */
import { KVError, MAX_MANY_KEYS, type KVClient, type KVEntry } from '../client/index.js';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES, type SeededRandom } from '../common/index.js';
import { applyChange, CATALOGUE, decodeCart, decodeItems, encodeCart, encodeItems, lastChangeOf, Ledger, unitsOff, type Cart, type CartChange } from './cart.js';
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

/** The key of cart `cart` in checkout mode: hash-tagged, so its orders share its shard. */
export function checkoutCartKey(cart: number): string {
  return `{u${cart}}cart`;
}

/** The key of order `orderNumber` (≥ 1) of cart `cart`. Throws when it would exceed the key limit. */
export function orderKey(cart: number, orderNumber: number): string {
  const key = `{u${cart}}order:${orderNumber}`;
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new Error(`cart ${cart} ran out of order numbers: ${key} is over the ${MAX_KEY_BYTES}-byte key limit`);
  return key;
}

/** An order's value: the items of the cart it came from, with their unit ids. */
export function encodeOrder(cart: Cart): string {
  return JSON.stringify({ items: encodeItems({ items: cart.items, ids: cart.ids ?? {} }) });
}

/** Decodes an order value. Throws on a value that is not an order. */
export function decodeOrder(value: string): Pick<Cart, 'items' | 'ids'> {
  const parsed: unknown = JSON.parse(value);
  if (typeof parsed !== 'object' || parsed === null || !('items' in parsed)) throw new Error('an order value is not {"items":…}');
  return decodeItems(parsed.items);
}

/** The ids of every unit in a cart or order. */
export function idsIn(contents: Pick<Cart, 'ids'>): number[] {
  return Object.values(contents.ids ?? {}).flat();
}

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

type RoundOutcome = CartChange | 'checked out' | 'conflict';

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
  /** Ids of every add known to have landed. */
  private readonly acknowledged = new Set<number>();
  private checkouts = 0;

  /** @param percent the share of actions (1…100) that check the cart out when it holds anything. */
  constructor(private readonly percent: number) {}

  /**
   * Empties every cart for a new run, keeping its `orders` number so this run's orders come after
   * every earlier run's. Compare-and-set: a late write of an earlier run cannot slip in between.
   */
  async prepare(client: CheckoutClient, cartCount: number): Promise<void> {
    for (let cart = 0; cart < cartCount; cart++) {
      const key = checkoutCartKey(cart);
      for (let attempt = 1; ; attempt++) {
        const entry = await client.getEntry(key);
        const before = entry === null ? 0 : (decodeCart(entry.value).orders ?? 0);
        try {
          await client.cas(key, entry?.version ?? 0, encodeCart({ items: {}, ids: {}, last: [], orders: before }));
        } catch (error) {
          // Retrying is safe whatever the failed attempt did: it wrote this same empty cart, keeping `orders`.
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

  /** A new action of shopper `shopper` on cart `cart`, as its change number `opSeq`. */
  newAction(cart: number, shopper: number, opSeq: number, random: SeededRandom): CheckoutAction {
    return { cart, shopper, opSeq, wantsCheckout: random.nextInt(100) < this.percent, checkoutSent: false };
  }

  /**
   * Runs `action` until it adds a unit (resolves to the change, which the caller records in its
   * ledger) or checks the cart out (resolves to null). Rejects as the client does; calling it again
   * with the same action continues it safely, whatever the failed attempt did.
   */
  async run(client: CheckoutClient, action: CheckoutAction, random: SeededRandom, totals: { conflictsRetried: number }): Promise<CartChange | null> {
    for (let round = 0; ; round++) {
      const outcome = await this.round(client, action, random);
      if (outcome === 'checked out') {
        this.checkouts += 1;
        return null;
      }
      if (outcome !== 'conflict') {
        this.acknowledged.add(itemId(action.shopper, action.opSeq));
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
   * duplicated. Call it once the shoppers have stopped.
   */
  async verify(client: CheckoutClient, cartCount: number, pending: readonly PendingChange[], ledgers: readonly Ledger[]): Promise<CheckoutVerdict> {
    const snapshots = await this.readSnapshots(client, cartCount);
    const uncertain = new Set<number>();
    for (const { shopper, cart, opSeq } of pending) {
      const prior = lastChangeOf(snapshots.get(cart)?.cart ?? decodeCart(null), shopper);
      if (prior !== null && prior.opSeq === opSeq) {
        ledgers[shopper]?.record(cart, prior.change);
        this.acknowledged.add(itemId(shopper, opSeq));
      } else {
        uncertain.add(itemId(shopper, opSeq));
      }
    }
    const expected = new Map<number, Map<string, number>>();
    for (const ledger of ledgers) ledger.addInto(expected);
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
      const units = unitsOff({ items: held, last: [] }, expected.get(cart));
      if (units > 0) lostUpdates += 1;
      off += units;
    }
    const proof = proveCheckout({ carts, orders, acknowledged: this.acknowledged, uncertain });
    return { lostUpdates, unitsOff: off, report: { percent: this.percent, checkouts: this.checkouts, proof } };
  }

  private async round(client: CheckoutClient, action: CheckoutAction, random: SeededRandom): Promise<RoundOutcome> {
    const key = checkoutCartKey(action.cart);
    const entry = await client.getEntry(key);
    // Read the order AFTER the cart: if an earlier attempt applies later still, it needed the cart at
    // the version just read, so the compare below fails and its failure branch finds the order.
    if (action.checkoutSent && action.orderNumber !== undefined && (await client.getEntry(orderKey(action.cart, action.orderNumber))) !== null) {
      return 'checked out';
    }
    if (entry === null) throw new Error(`${key} is missing (the driver creates every cart and never deletes one)`);
    const cart = decodeCart(entry.value);
    const prior = lastChangeOf(cart, action.shopper);
    if (prior !== null && prior.opSeq >= action.opSeq) return prior.change; // an earlier attempt landed
    const units = Object.values(cart.items).reduce((sum, count) => sum + count, 0);
    if (units === 0 || (!action.wantsCheckout && units < MAX_CART_UNITS)) {
      const change: CartChange = { item: CATALOGUE[random.nextInt(CATALOGUE.length)] ?? 'apple', delta: 1 };
      const value = encodeCart(withUnit(cart, change, action.shopper, action.opSeq));
      if (Buffer.byteLength(value) <= MAX_VALUE_BYTES) return addUnit(client, key, entry, value, change);
      if (units === 0) throw new Error(`${key}: an empty cart has no room for one item (${Buffer.byteLength(value)} bytes)`);
    }
    return this.checkOut(client, action, key, entry, cart);
  }

  private async checkOut(client: CheckoutClient, action: CheckoutAction, key: string, entry: KVEntry, cart: Cart): Promise<RoundOutcome> {
    action.orderNumber ??= this.takeOrderNumber(action.cart);
    const order = orderKey(action.cart, action.orderNumber);
    action.checkoutSent = true;
    const result = await client.txn({
      compare: [{ key, version: entry.version }, { key: order, version: 0 }],
      success: [
        { put: { key: order, value: encodeOrder(cart) } },
        { put: { key, value: encodeCart({ items: {}, ids: {}, last: cart.last, orders: Math.max(cart.orders ?? 0, action.orderNumber) }) } },
      ],
      failure: [{ get: { key: order } }],
    });
    if (result.succeeded) return 'checked out';
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
      const cartKeys = unsettled.map(checkoutCartKey);
      const before = await readEntries(client, cartKeys);
      const orders = await readEntries(client, unsettled.flatMap((cart) => this.orderKeysOf(cart)));
      const after = await readEntries(client, cartKeys);
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
}

/** The cart with one more unit of `change.item`, whose id is {@link itemId}(shopper, opSeq). */
function withUnit(cart: Cart, change: CartChange, shopper: number, opSeq: number): Cart {
  const ids = { ...(cart.ids ?? {}) };
  ids[change.item] = [...(ids[change.item] ?? []), itemId(shopper, opSeq)];
  return { ...cart, ...applyChange(cart, change, shopper, opSeq), ids };
}

/** Writes the cart with its new unit if nobody wrote it since it was read. */
async function addUnit(client: CheckoutClient, key: string, entry: KVEntry, value: string, change: CartChange): Promise<RoundOutcome> {
  try {
    await client.cas(key, entry.version, value);
    return change;
  } catch (error) {
    if (error instanceof KVError && error.code === 'CONFLICT') return 'conflict';
    throw error;
  }
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
