/**
 * The proof `kvstore driver --checkout` ends with (src/bench/checkout-proof.ts), on fabricated carts
 * and orders: it passes a clean history, and catches a lost item, a duplicated one (in a cart and an
 * order, in two orders, twice in one cart) and an item nobody added; items whose add had an unknown
 * outcome may be found once or not at all. With `--cart-ttl`: an item whose cart expired (as the
 * TTL allows) is not lost but counted as expired with its cart; one whose cart vanished before the
 * TTL allowed is lost. Also the checkout-mode cart and order values: unit ids round-trip, and a cart
 * without ids still encodes as before. Randomised cases print their seed; `SEED=n` replays one.
 */
import { expect } from 'chai';
import { checkoutCartKey, decodeCart, decodeOrder, emptyCartValue, encodeCart, encodeOrder, idsIn, orderCounterKey, orderKey, type Cart } from '../../src/bench/cart.js';
import { CartLives } from '../../src/bench/cart-expiry.js';
import { checkoutFailed, checkoutLines, describeItemId, itemId, proveCheckout, type Holding } from '../../src/bench/checkout-proof.js';
import { SeededRandom } from '../../src/common/index.js';

const SEED = Number(process.env['SEED'] ?? Date.now() % 100_000);

/** A fabricated run: every id in `acknowledged`, each placed in exactly one of the carts and orders. */
function cleanRun(random: SeededRandom): { carts: Holding[]; orders: Holding[]; acknowledged: Set<number> } {
  const carts = Array.from({ length: 3 }, (_, cart) => ({ place: checkoutCartKey(cart), ids: [] as number[] }));
  const orders = Array.from({ length: 5 }, (_, order) => ({ place: orderKey(order % 3, order + 1), ids: [] as number[] }));
  const acknowledged = new Set<number>();
  for (let shopper = 0; shopper < 4; shopper++) {
    for (let opSeq = 1; opSeq <= 10; opSeq++) {
      const id = itemId(shopper, opSeq);
      acknowledged.add(id);
      const places = [...carts, ...orders];
      const place = places[random.nextInt(places.length)];
      place?.ids.push(id);
    }
  }
  return { carts, orders, acknowledged };
}

describe('driver --checkout: the proof', () => {
  let random: SeededRandom;
  beforeEach(() => {
    random = new SeededRandom(SEED);
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`checkout proof test failed with SEED=${SEED}\n`);
  });

  it('passes when every acknowledged item is in exactly one cart or order', () => {
    const run = cleanRun(random);
    const proof = proveCheckout({ ...run, uncertain: new Set() });
    expect(proof).to.include({ orders: 5, itemsFound: 40, lost: 0, duplicated: 0, unexpected: 0 });
    expect(proof.examples).to.deep.equal([]);
    expect(checkoutFailed(proof)).to.equal(false);
    expect(checkoutLines(proof)).to.deep.equal(['checkout: 5 orders, 0 lost, 0 duplicated']);
  });

  it('catches a lost item and names it', () => {
    const run = cleanRun(random);
    const holding = [...run.carts, ...run.orders].find((place) => place.ids.length > 0);
    const victim = holding?.ids[0];
    if (holding === undefined || victim === undefined) throw new Error('the fabricated run placed no item');
    const emptied = (place: Holding): Holding => (place === holding ? { ...place, ids: place.ids.slice(1) } : place);
    const proof = proveCheckout({ carts: run.carts.map(emptied), orders: run.orders.map(emptied), acknowledged: run.acknowledged, uncertain: new Set() });
    expect(proof).to.include({ lost: 1, duplicated: 0, unexpected: 0 });
    expect(checkoutFailed(proof)).to.equal(true);
    expect(proof.examples).to.deep.equal([`lost: ${describeItemId(victim)} was added and is in no cart and no order`]);
    expect(checkoutLines(proof)).to.deep.equal(['checkout: 5 orders, 1 lost, 0 duplicated']);
  });

  it('catches an item in a cart and in an order, in two orders, or twice in one cart', () => {
    const id = itemId(7, 3);
    const acknowledged = new Set([id]);
    const cases: { carts: Holding[]; orders: Holding[]; where: string }[] = [
      { carts: [{ place: '{u1}cart', ids: [id] }], orders: [{ place: '{u1}order:1', ids: [id] }], where: '{u1}cart and {u1}order:1' },
      { carts: [{ place: '{u1}cart', ids: [] }], orders: [{ place: '{u1}order:1', ids: [id] }, { place: '{u1}order:2', ids: [id] }], where: '{u1}order:1 and {u1}order:2' },
      { carts: [{ place: '{u1}cart', ids: [id, id] }], orders: [], where: '{u1}cart and {u1}cart' },
    ];
    for (const { carts, orders, where } of cases) {
      const proof = proveCheckout({ carts, orders, acknowledged, uncertain: new Set() });
      expect(proof, where).to.include({ lost: 0, duplicated: 1, unexpected: 0 });
      expect(proof.examples).to.deep.equal([`duplicated: ${describeItemId(id)} is in ${where}`]);
      expect(checkoutFailed(proof)).to.equal(true);
    }
  });

  it('catches a duplicated item among many, and counts it once however many copies', () => {
    const run = cleanRun(random);
    const ids = [...run.acknowledged];
    const copied = ids[random.nextInt(ids.length)] ?? 0;
    const orders = [...run.orders, { place: orderKey(0, 6), ids: [copied] }, { place: orderKey(0, 7), ids: [copied] }];
    const proof = proveCheckout({ carts: run.carts, orders, acknowledged: run.acknowledged, uncertain: new Set() });
    expect(proof).to.include({ orders: 7, lost: 0, duplicated: 1, unexpected: 0 });
    expect(checkoutLines(proof)).to.deep.equal(['checkout: 7 orders, 0 lost, 1 duplicated']);
  });

  it('lets an item whose add had an unknown outcome be absent or found once, not twice', () => {
    const uncertain = new Set([itemId(2, 9)]);
    const absent = proveCheckout({ carts: [{ place: '{u0}cart', ids: [] }], orders: [], acknowledged: new Set(), uncertain });
    expect(absent).to.include({ lost: 0, duplicated: 0, unexpected: 0 });
    const once = proveCheckout({ carts: [{ place: '{u0}cart', ids: [itemId(2, 9)] }], orders: [], acknowledged: new Set(), uncertain });
    expect(once).to.include({ lost: 0, duplicated: 0, unexpected: 0 });
    const twice = proveCheckout({ carts: [{ place: '{u0}cart', ids: [itemId(2, 9)] }], orders: [{ place: '{u0}order:1', ids: [itemId(2, 9)] }], acknowledged: new Set(), uncertain });
    expect(twice).to.include({ lost: 0, duplicated: 1, unexpected: 0 });
  });

  it('catches an item no shopper added, on a line of its own', () => {
    const proof = proveCheckout({ carts: [{ place: '{u0}cart', ids: [itemId(1, 1)] }], orders: [], acknowledged: new Set(), uncertain: new Set() });
    expect(proof).to.include({ lost: 0, duplicated: 0, unexpected: 1 });
    expect(checkoutFailed(proof)).to.equal(true);
    expect(checkoutLines(proof)).to.deep.equal(['checkout: 0 orders, 0 lost, 0 duplicated', 'checkout: 1 unexpected items']);
  });

  describe('with --cart-ttl', () => {
    it('an item found nowhere whose cart expired is not lost: it expired with its cart', () => {
      const [inCart, inOrder, expired] = [itemId(0, 1), itemId(1, 1), itemId(2, 1)];
      const proof = proveCheckout({
        carts: [{ place: '{u0}cart', ids: [inCart] }],
        orders: [{ place: '{u0}order:1', ids: [inOrder] }],
        acknowledged: new Set([inCart, inOrder, expired]),
        uncertain: new Set(),
        expiredCarts: new Set([inOrder, expired]), // inOrder was checked out before its cart expired
      });
      expect(proof).to.include({ orders: 1, itemsFound: 2, lost: 0, duplicated: 0, unexpected: 0, expiredWithCart: 1 });
      expect(proof.examples).to.deep.equal([]);
      expect(checkoutFailed(proof)).to.equal(false);
      expect(checkoutLines(proof)).to.deep.equal(['checkout: 1 orders, 0 lost, 0 duplicated, 1 expired with their cart']);
    });

    it('an item whose cart vanished before its TTL allowed is lost; the lives decide which is which', () => {
      // Two carts, each written at 0 ms with a TTL of 1 s: {u0}cart is read absent at 1000 ms (it may
      // have expired), {u1}cart at 300 ms (it may not).
      const lives = new CartLives(1000, checkoutCartKey);
      lives.wrote(0, 1, 0, 5);
      lives.wrote(1, 2, 0, 5);
      lives.read(0, null, 10, 1000);
      lives.read(1, null, 10, 300);
      const added = [{ id: itemId(0, 1), cart: 0, life: 1 }, { id: itemId(1, 1), cart: 1, life: 2 }];
      const expiredCarts = new Set(added.filter(({ cart, life }) => lives.endOf(cart, life) === 'expired').map(({ id }) => id));
      expect([...expiredCarts]).to.deep.equal([itemId(0, 1)]);
      const proof = proveCheckout({ carts: [{ place: '{u0}cart', ids: [] }, { place: '{u1}cart', ids: [] }], orders: [], acknowledged: new Set(added.map(({ id }) => id)), uncertain: new Set(), expiredCarts });
      expect(proof).to.include({ lost: 1, duplicated: 0, expiredWithCart: 1 });
      expect(proof.examples).to.deep.equal([`lost: ${describeItemId(itemId(1, 1))} was added and is in no cart and no order`]);
      expect(checkoutFailed(proof)).to.equal(true);
      expect(checkoutLines(proof)).to.deep.equal(['checkout: 0 orders, 1 lost, 0 duplicated, 1 expired with their cart']);
      expect(lives.examples()).to.deep.equal(['vanished early: {u1}cart (life 2) was read absent 300 ms after a write to it was sent; with a TTL of 1000 ms it cannot expire before 989 ms']);
    });

    it('an item of a cart that expired is still duplicated when found twice', () => {
      const id = itemId(4, 2);
      const proof = proveCheckout({ carts: [], orders: [{ place: '{u0}order:1', ids: [id] }, { place: '{u0}order:2', ids: [id] }], acknowledged: new Set([id]), uncertain: new Set(), expiredCarts: new Set([id]) });
      expect(proof).to.include({ lost: 0, duplicated: 1, expiredWithCart: 0 });
      expect(checkoutFailed(proof)).to.equal(true);
    });

    it('a clean run with no expired cart prints 0 expired on the same line', () => {
      const run = cleanRun(random);
      const proof = proveCheckout({ ...run, uncertain: new Set(), expiredCarts: new Set() });
      expect(checkoutLines(proof)).to.deep.equal(['checkout: 5 orders, 0 lost, 0 duplicated, 0 expired with their cart']);
    });
  });

  it('item ids are unique per shopper and change, and name both', () => {
    const seen = new Set<number>();
    for (let shopper = 0; shopper < 64; shopper++) for (let opSeq = 1; opSeq <= 50; opSeq++) seen.add(itemId(shopper, opSeq));
    expect(seen.size).to.equal(64 * 50);
    expect(describeItemId(itemId(5, 17))).to.equal(`item ${17 * 64 + 5} (shopper 5, change 17)`);
  });
});

describe('driver --checkout: carts and orders', () => {
  it('a cart with unit ids round-trips, and its order holds the same items', () => {
    const cart: Cart = { items: { tea: 2, jam: 1 }, ids: { tea: [130, 67], jam: [200] }, last: [0, 4097] };
    const value = encodeCart(cart);
    expect(value).to.equal('{"items":{"jam":[200],"tea":[130,67]},"last":[0,4097]}');
    expect(decodeCart(value)).to.deep.equal({ items: { jam: 1, tea: 2 }, ids: { jam: [200], tea: [130, 67] }, last: [0, 4097] });
    const order = decodeOrder(encodeOrder(decodeCart(value)));
    expect(order).to.deep.equal({ items: { jam: 1, tea: 2 }, ids: { jam: [200], tea: [130, 67] } });
    expect(idsIn(order).sort((a, b) => a - b)).to.deep.equal([67, 130, 200]);
  });

  it('a checkout-mode cart keeps the highest order number used, emptied or not', () => {
    const emptied = encodeCart({ items: {}, ids: {}, last: [65], orders: 12 });
    expect(emptied).to.equal('{"items":{},"last":[65],"orders":12}');
    expect(decodeCart(emptied)).to.deep.equal({ items: {}, last: [65], orders: 12 });
  });

  it('a cart without ids encodes as before (counts), so the driver without --checkout is unchanged', () => {
    expect(encodeCart({ items: { tea: 2, milk: 0 }, last: [33] })).to.equal('{"items":{"tea":2},"last":[33]}');
    expect(decodeCart('{"items":{"tea":2},"last":[33]}')).to.deep.equal({ items: { tea: 2 }, last: [33] });
    expect(emptyCartValue()).to.equal('{"items":{},"last":[]}');
  });

  it('with --cart-ttl a cart carries its life, after its other fields', () => {
    const value = encodeCart({ items: {}, ids: { tea: [67] }, last: [], orders: 3, life: 17 });
    expect(value).to.equal('{"items":{"tea":[67]},"last":[],"orders":3,"life":17}');
    expect(decodeCart(value)).to.deep.equal({ items: { tea: 1 }, ids: { tea: [67] }, last: [], orders: 3, life: 17 });
    expect(encodeCart({ items: { tea: 1 }, last: [], life: 2 })).to.equal('{"items":{"tea":1},"last":[],"life":2}');
  });

  it('cart and order keys share a hash tag and stay within the 20-byte key limit', () => {
    expect(checkoutCartKey(42)).to.equal('{u42}cart');
    expect(orderKey(42, 7)).to.equal('{u42}order:7');
    expect(orderCounterKey(42)).to.equal('{u42}orders');
    expect(Buffer.byteLength(orderCounterKey(999_999))).to.be.at.most(20);
    expect(Buffer.byteLength(orderKey(999_999, 99_999))).to.equal(20);
    expect(() => orderKey(999_999, 100_000)).to.throw(/ran out of order numbers/);
  });
});
