/**
 * The shopping driver's data: a cart is a JSON value `{ "items": { name: count }, "last": [...] }`.
 * `last[s]` packs shopper s's last change applied to this cart — its sequence number and what it
 * changed — as `opSeq × 32 + item index × 2 + (1 if a unit was added, 0 if removed)`, 0 for none.
 * It makes a change idempotent: a shopper whose write timed out (outcome unknown, e.g. while a node
 * is killed) retries the same change number, and if the cart already holds it, the ledger records
 * the change that is in the cart. So the ledgers stay exact under failures. Packing keeps a cart of
 * 64 shoppers well under the 1024-byte value limit.
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

/** Encodes a cart; zero counts are dropped so equal contents encode equally. */
export function encodeCart(cart: Cart): string {
  const items: Record<string, number> = {};
  for (const name of Object.keys(cart.items).sort()) {
    const count = cart.items[name] ?? 0;
    if (count !== 0) items[name] = count;
  }
  return JSON.stringify({ items, last: cart.last });
}

/** Decodes a cart value; null (absent) is an empty cart. Throws on a value that is not a cart. */
export function decodeCart(value: string | null): Cart {
  if (value === null) return { items: {}, last: [] };
  const parsed: unknown = JSON.parse(value);
  if (typeof parsed !== 'object' || parsed === null || !('items' in parsed) || !('last' in parsed)) {
    throw new Error('a cart value is not {"items":…,"last":…}');
  }
  const items: Record<string, number> = {};
  if (typeof parsed.items === 'object' && parsed.items !== null) {
    for (const [name, count] of Object.entries(parsed.items)) if (typeof count === 'number') items[name] = count;
  }
  const last = Array.isArray(parsed.last) ? parsed.last.map((n: unknown) => (typeof n === 'number' ? n : 0)) : [];
  return { items, last };
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
