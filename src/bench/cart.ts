/**
 * The shopping driver's data: a cart is a JSON value `{ "items": { name: count }, "last": [...] }`.
 * `last[s]` packs shopper s's last change applied to this cart — its sequence number and what it
 * changed — as `opSeq × 32 + item index × 2 + (1 if a unit was added, 0 if removed)`, 0 for none.
 * It makes a change idempotent: a shopper whose write timed out (outcome unknown, e.g. while a node
 * is killed) retries the same change number, and if the cart already holds it, the ledger records
 * the change that is in the cart. So the ledgers stay exact under failures. Packing keeps a cart of
 * 64 shoppers well under the 1024-byte value limit.
 * With `driver --checkout` (checkout.ts) every unit has an id, and a cart's `items` maps each name to
 * the ids of its units instead of their count, and `orders` is the highest order number used:
 * `{ "items": { "tea": [130, 67] }, "last": [...], "orders": 4 }`.
 * With `driver --cart-ttl` (cart-expiry.ts) a cart also says which of its lives it is, `"life": 17`:
 * a cart that expired and is filled again is a new life, with no items and no markers.
 * An order (`driver --checkout`, key `{uN}order:M`) is `{ "items": { "tea": [130, 67] } }`.
 * A ledger holds what one shopper changed: per cart, per life, per item, units added minus units removed.
 */

import { MAX_KEY_BYTES } from '../common/index.js';

/** The items a shopper picks from. */
export const CATALOGUE = ['apple', 'bread', 'milk', 'eggs', 'tea', 'rice', 'soap', 'jam', 'salt', 'oats', 'figs', 'corn'] as const;

/** A decoded cart. */
export interface Cart {
  /** item → units in the cart (absent = 0). */
  items: Record<string, number>;
  /** shopper index → its last change applied to this cart, packed as described above (absent = 0). */
  last: number[];
  /**
   * With `driver --checkout` only: item → the ids of its units (`items[name]` is their count). When
   * present, the value stores these lists in place of the counts.
   */
  ids?: Record<string, number[]>;
  /**
   * With `driver --checkout` only: the highest order number a checkout of this cart has used. The
   * transaction that creates an order also writes its cart, so every order key of the cart is at
   * most this; a new run numbers its orders after it, clear of every earlier run's.
   */
  orders?: number;
  /**
   * With `driver --cart-ttl` only: which life of the cart this is, a number unique in the run. The
   * write that creates a cart where there was none gives it a new life; every other write keeps it.
   * A life ends only when the cart expires, so items and markers are accounted per life.
   */
  life?: number;
}

/** Most shoppers a cart can track (keeps the value under the 1024-byte limit). */
export const MAX_SHOPPERS = 64;

/** One change a shopper makes: `delta` units (+1 or −1) of `item`. */
export interface CartChange {
  item: string;
  delta: number;
}

/** The key of cart number `index` (well within the 20-byte key limit). */
export function cartKey(index: number): string {
  return `cart:${index}`;
}

/** An empty cart's value. */
export function emptyCartValue(): string {
  return encodeCart({ items: {}, last: [] });
}

/** The key of cart `cart` in checkout mode: hash-tagged, so its orders share its shard. */
export function checkoutCartKey(cart: number): string {
  return `{u${cart}}cart`;
}

/**
 * The key that keeps cart `cart`'s highest order number with `driver --cart-ttl`, where the cart's
 * own `orders` expires with it. It never expires.
 */
export function orderCounterKey(cart: number): string {
  return `{u${cart}}orders`;
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

/** Encodes a cart; zero counts (empty id lists) are dropped so equal contents encode equally. */
export function encodeCart(cart: Cart): string {
  return JSON.stringify({
    items: encodeItems(cart),
    last: cart.last,
    ...(cart.orders === undefined ? {} : { orders: cart.orders }),
    ...(cart.life === undefined ? {} : { life: cart.life }),
  });
}

/** A cart's `items` as stored: name → count, or name → unit ids when the cart has {@link Cart.ids}. */
export function encodeItems(cart: Pick<Cart, 'items' | 'ids'>): Record<string, number | number[]> {
  const items: Record<string, number | number[]> = {};
  if (cart.ids !== undefined) {
    for (const name of Object.keys(cart.ids).sort()) {
      const ids = cart.ids[name] ?? [];
      if (ids.length > 0) items[name] = ids;
    }
    return items;
  }
  for (const name of Object.keys(cart.items).sort()) {
    const count = cart.items[name] ?? 0;
    if (count !== 0) items[name] = count;
  }
  return items;
}

/** Decodes a cart value; null (absent) is an empty cart. Throws on a value that is not a cart. */
export function decodeCart(value: string | null): Cart {
  if (value === null) return { items: {}, last: [] };
  const parsed: unknown = JSON.parse(value);
  if (typeof parsed !== 'object' || parsed === null || !('items' in parsed) || !('last' in parsed)) {
    throw new Error('a cart value is not {"items":…,"last":…}');
  }
  const last = Array.isArray(parsed.last) ? parsed.last.map((n: unknown) => (typeof n === 'number' ? n : 0)) : [];
  const orders = 'orders' in parsed && typeof parsed.orders === 'number' ? { orders: parsed.orders } : {};
  const life = 'life' in parsed && typeof parsed.life === 'number' ? { life: parsed.life } : {};
  return { ...decodeItems(parsed.items), last, ...orders, ...life };
}

/**
 * Decodes stored `items` (see {@link encodeItems}): counts, and the unit ids of names stored as id
 * lists (`ids` is present when any name is).
 */
export function decodeItems(stored: unknown): Pick<Cart, 'items' | 'ids'> {
  const items: Record<string, number> = {};
  let ids: Record<string, number[]> | undefined;
  if (typeof stored === 'object' && stored !== null) {
    for (const [name, count] of Object.entries(stored)) {
      if (typeof count === 'number') {
        items[name] = count;
      } else if (Array.isArray(count)) {
        const unitIds = count.filter((id: unknown): id is number => typeof id === 'number');
        items[name] = unitIds.length;
        ids ??= {};
        ids[name] = unitIds;
      }
    }
  }
  return ids === undefined ? { items } : { items, ids };
}

/** Shopper `shopper`'s last change in the cart and its sequence number, or null if it never changed it. */
export function lastChangeOf(cart: Cart, shopper: number): { opSeq: number; change: CartChange } | null {
  const packed = cart.last[shopper] ?? 0;
  if (packed <= 0) return null;
  const opSeq = Math.floor(packed / 32);
  const itemIndex = Math.floor((packed % 32) / 2);
  return { opSeq, change: { item: CATALOGUE[itemIndex] ?? 'unknown', delta: packed % 2 === 1 ? 1 : -1 } };
}

/** The cart after applying `change` as shopper `shopper`'s change number `opSeq` (≥ 1). */
export function applyChange(cart: Cart, change: CartChange, shopper: number, opSeq: number): Cart {
  const items = { ...cart.items, [change.item]: (cart.items[change.item] ?? 0) + change.delta };
  const last = [...cart.last];
  while (last.length <= shopper) last.push(0);
  const itemIndex = CATALOGUE.indexOf(change.item as (typeof CATALOGUE)[number]);
  if (itemIndex < 0) throw new Error(`item ${change.item} is not in the catalogue`);
  last[shopper] = opSeq * 32 + itemIndex * 2 + (change.delta > 0 ? 1 : 0);
  return { items, last };
}

/** A change that landed, and the life of the cart it landed in (0 without `--cart-ttl`). */
export interface AppliedChange {
  change: CartChange;
  life: number;
}

/** The life a cart value belongs to: its `life`, or 0 for a cart without one (no `--cart-ttl`). */
export function lifeOf(cart: Cart): number {
  return cart.life ?? 0;
}

/** Units per item: cart index → life → item → net units. */
export type CartTotals = Map<number, Map<number, Map<string, number>>>;

/** What one shopper changed: cart index → life → item → net units. */
export class Ledger {
  private readonly carts: CartTotals = new Map();

  /** Records a change that is known to be in life `life` of the cart (0 without `--cart-ttl`). */
  record(cart: number, change: CartChange, life = 0): void {
    let lives = this.carts.get(cart);
    if (lives === undefined) {
      lives = new Map();
      this.carts.set(cart, lives);
    }
    let items = lives.get(life);
    if (items === undefined) {
      items = new Map();
      lives.set(life, items);
    }
    items.set(change.item, (items.get(change.item) ?? 0) + change.delta);
  }

  /** Adds this ledger into `totals`. */
  addInto(totals: CartTotals): void {
    for (const [cart, lives] of this.carts) {
      let totalLives = totals.get(cart);
      if (totalLives === undefined) {
        totalLives = new Map();
        totals.set(cart, totalLives);
      }
      for (const [life, items] of lives) {
        let total = totalLives.get(life);
        if (total === undefined) {
          total = new Map();
          totalLives.set(life, total);
        }
        for (const [item, units] of items) total.set(item, (total.get(item) ?? 0) + units);
      }
    }
  }
}

/** The sum of every ledger: what each cart (each life of it) should hold. */
export function totalsOf(ledgers: readonly Ledger[]): CartTotals {
  const totals: CartTotals = new Map();
  for (const ledger of ledgers) ledger.addInto(totals);
  return totals;
}

/** Item → units over every life of a cart (what a cart plus its orders should hold, if none expired). */
export function allLivesOf(totals: CartTotals, cart: number): Map<string, number> {
  const sum = new Map<string, number>();
  for (const items of totals.get(cart)?.values() ?? []) {
    for (const [item, units] of items) sum.set(item, (sum.get(item) ?? 0) + units);
  }
  return sum;
}

/** Units by which a cart's contents differ from what the ledgers expect (0 = it matches). */
export function unitsOff(actual: Cart, expected: Map<string, number> | undefined): number {
  const names = new Set([...Object.keys(actual.items), ...(expected?.keys() ?? [])]);
  let off = 0;
  for (const name of names) off += Math.abs((actual.items[name] ?? 0) - (expected?.get(name) ?? 0));
  return off;
}
