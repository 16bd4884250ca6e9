/**
 * The proof `kvstore driver --checkout` ends with: every item a shopper added is either still in a
 * cart or in exactly one order — nothing lost, nothing counted twice. With `--cart-ttl` an item may
 * also have gone with its cart when the cart expired (cart-expiry.ts), but only when the TTL allowed
 * it to expire: an item whose cart vanished earlier is lost. Items have ids (checkout.ts); this file
 * only counts them, so it can be tested on fabricated carts and orders.
 */
import { MAX_SHOPPERS } from './cart.js';

/** A cart or an order as read at the end: where it is, and the ids of the units it holds. */
export interface Holding {
  /** Its key, e.g. `{u3}cart` or `{u3}order:7`, to name it in a problem. */
  place: string;
  ids: readonly number[];
}

/** What the proof is given. */
export interface CheckoutEvidence {
  /** Every cart, as read at the end. */
  carts: readonly Holding[];
  /** Every order that exists (absent ones are left out), read consistently with its cart. */
  orders: readonly Holding[];
  /** Ids of adds known to have landed: each must be found exactly once. */
  acknowledged: ReadonlySet<number>;
  /**
   * Ids of adds whose outcome is unknown (the run stopped while they were retried, or the cart they
   * were sent to expired before the retry could tell): found at most once.
   */
  uncertain: ReadonlySet<number>;
  /**
   * With `--cart-ttl` only: the acknowledged ids added to a cart life that later expired as the TTL
   * allows (not one that vanished early). Found once, or nowhere — then it expired with its cart.
   */
  expiredCarts?: ReadonlySet<number>;
}

/** What the proof found. The run passes when `lost`, `duplicated` and `unexpected` are all 0. */
export interface CheckoutProof {
  /** Orders that exist. */
  orders: number;
  /** Distinct items found in carts and orders together. */
  itemsFound: number;
  /** Acknowledged items found nowhere. */
  lost: number;
  /** Items found more than once (in two places, or twice in one). */
  duplicated: number;
  /** Items found that no shopper added (neither acknowledged nor uncertain). */
  unexpected: number;
  /** With `--cart-ttl` only: acknowledged items found nowhere because their cart expired. */
  expiredWithCart?: number;
  /** A few of the problems, each naming the item and where it was (or was not) found. */
  examples: string[];
}

/** Most problems of each kind {@link CheckoutProof.examples} names. */
const EXAMPLES_PER_KIND = 3;

/** The id of the unit shopper `shopper` (0…63) adds as its change `opSeq` (≥ 1): unique per add. */
export function itemId(shopper: number, opSeq: number): number {
  return opSeq * MAX_SHOPPERS + shopper;
}

/** Names an item id for a person: `item 1090 (shopper 2, change 17)`. */
export function describeItemId(id: number): string {
  return `item ${id} (shopper ${id % MAX_SHOPPERS}, change ${Math.floor(id / MAX_SHOPPERS)})`;
}

/** Counts where every item is and checks it against what the shoppers added. */
export function proveCheckout(evidence: CheckoutEvidence): CheckoutProof {
  const placesOf = new Map<number, string[]>();
  for (const holding of [...evidence.carts, ...evidence.orders]) {
    for (const id of holding.ids) {
      const places = placesOf.get(id);
      if (places === undefined) placesOf.set(id, [holding.place]);
      else places.push(holding.place);
    }
  }
  const lostExamples: string[] = [];
  const duplicatedExamples: string[] = [];
  const unexpectedExamples: string[] = [];
  const note = (list: string[], text: string): void => {
    if (list.length < EXAMPLES_PER_KIND) list.push(text);
  };
  let lost = 0;
  let expiredWithCart = 0;
  for (const id of [...evidence.acknowledged].sort((a, b) => a - b)) {
    if (placesOf.has(id)) continue;
    if (evidence.expiredCarts?.has(id) === true) {
      expiredWithCart += 1;
      continue;
    }
    lost += 1;
    note(lostExamples, `lost: ${describeItemId(id)} was added and is in no cart and no order`);
  }
  let duplicated = 0;
  let unexpected = 0;
  for (const [id, places] of [...placesOf].sort(([a], [b]) => a - b)) {
    if (places.length > 1) {
      duplicated += 1;
      note(duplicatedExamples, `duplicated: ${describeItemId(id)} is in ${places.join(' and ')}`);
    }
    if (!evidence.acknowledged.has(id) && !evidence.uncertain.has(id)) {
      unexpected += 1;
      note(unexpectedExamples, `unexpected: ${describeItemId(id)} is in ${places.join(' and ')}, but no shopper added it`);
    }
  }
  return {
    orders: evidence.orders.length,
    itemsFound: placesOf.size,
    lost,
    duplicated,
    unexpected,
    ...(evidence.expiredCarts === undefined ? {} : { expiredWithCart }),
    examples: [...lostExamples, ...duplicatedExamples, ...unexpectedExamples],
  };
}

/** True when the proof found a problem (the driver then exits 1). */
export function checkoutFailed(proof: CheckoutProof): boolean {
  return proof.lost > 0 || proof.duplicated > 0 || proof.unexpected > 0;
}

/**
 * The lines the driver prints: `checkout: N orders, L lost, D duplicated` (DESIGN.md §6; scripts
 * parse it) — with `--cart-ttl` followed on the same line by `, X expired with their cart` — and
 * `checkout: U unexpected items` only when there are some.
 */
export function checkoutLines(proof: CheckoutProof): string[] {
  const expired = proof.expiredWithCart === undefined ? '' : `, ${proof.expiredWithCart} expired with their cart`;
  const lines = [`checkout: ${proof.orders} orders, ${proof.lost} lost, ${proof.duplicated} duplicated${expired}`];
  if (proof.unexpected > 0) lines.push(`checkout: ${proof.unexpected} unexpected items`);
  return lines;
}
