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
 * A ledger holds what one shopper changed: per cart, per item, units added minus units removed.
 */

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

/** Encodes a cart; zero counts (empty id lists) are dropped so equal contents encode equally. */
export function encodeCart(cart: Cart): string {
  return JSON.stringify(cart.orders === undefined ? { items: encodeItems(cart), last: cart.last } : { items: encodeItems(cart), last: cart.last, orders: cart.orders });
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
  return { ...decodeItems(parsed.items), last, ...orders };
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

/** What one shopper changed: cart index → item → net units. */
export class Ledger {
  private readonly carts = new Map<number, Map<string, number>>();

  /** Records a change that is known to be in the cart. */
  record(cart: number, change: CartChange): void {
    let items = this.carts.get(cart);
    if (items === undefined) {
      items = new Map();
      this.carts.set(cart, items);
    }
    items.set(change.item, (items.get(change.item) ?? 0) + change.delta);
  }

  /** Adds this ledger into `totals` (cart → item → units). */
  addInto(totals: Map<number, Map<string, number>>): void {
    for (const [cart, items] of this.carts) {
      let total = totals.get(cart);
      if (total === undefined) {
        total = new Map();
        totals.set(cart, total);
      }
      for (const [item, units] of items) total.set(item, (total.get(item) ?? 0) + units);
    }
  }
}

/** Units by which a cart's contents differ from what the ledgers expect (0 = it matches). */
export function unitsOff(actual: Cart, expected: Map<string, number> | undefined): number {
  const names = new Set([...Object.keys(actual.items), ...(expected?.keys() ?? [])]);
  let off = 0;
  for (const name of names) off += Math.abs((actual.items[name] ?? 0) - (expected?.get(name) ?? 0));
  return off;
}
