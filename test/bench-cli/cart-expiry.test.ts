/**
 * `driver --cart-ttl`'s verdict on each cart life (src/bench/cart-expiry.ts), on fabricated times: a
 * life read gone at least 0.99 × ttl − 1 ms after its latest write was sent expired; read gone earlier, it
 * vanished early; a read sent before any write of the life was answered says nothing about it. And
 * the abandonment schedule: a quarter of the carts is left alone at a time, never all of them.
 */
import { expect } from 'chai';
import { cartKey } from '../../src/bench/cart.js';
import { ABANDONED_ONE_IN, abandonmentWindowMs, CartLives, isAbandoned, pickActiveCart } from '../../src/bench/cart-expiry.js';
import { SeededRandom } from '../../src/common/index.js';

const SEED = Number(process.env['SEED'] ?? Date.now() % 100_000);
const TTL_MS = 1000;

describe('driver --cart-ttl: cart lives', () => {
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`cart expiry test failed with SEED=${SEED}\n`);
  });

  it('a life read absent 0.99 × ttl (less a millisecond of rounding) after its last write was sent expired', () => {
    const lives = new CartLives(TTL_MS, cartKey);
    lives.wrote(0, 1, 0, 10);
    lives.read(0, null, 20, 989);
    expect(lives.endOf(0, 1)).to.equal('expired');
    expect({ expired: lives.expired, vanishedEarly: lives.vanishedEarly }).to.deep.equal({ expired: 1, vanishedEarly: 0 });
    expect(lives.examples()).to.deep.equal([]);

    const sooner = new CartLives(TTL_MS, cartKey);
    sooner.wrote(0, 1, 0, 10);
    sooner.read(0, null, 20, 988.5);
    expect(sooner.endOf(0, 1)).to.equal('vanished early');
  });

  it('a life read absent (or as another life) earlier vanished early, and says so', () => {
    const absent = new CartLives(TTL_MS, cartKey);
    absent.wrote(3, 7, 100, 110);
    absent.read(3, null, 120, 600);
    expect(absent.endOf(3, 7)).to.equal('vanished early');
    expect(absent.vanishedEarlyIn(3)).to.equal(true);
    expect(absent.vanishedEarlyIn(2)).to.equal(false);
    expect(absent.examples()).to.deep.equal(['vanished early: cart:3 (life 7) was read absent 500 ms after a write to it was sent; with a TTL of 1000 ms it cannot expire before 989 ms']);

    const replaced = new CartLives(TTL_MS, cartKey);
    replaced.wrote(3, 7, 100, 110);
    replaced.read(3, 8, 120, 600);
    expect(replaced.endOf(3, 7)).to.equal('vanished early');
    expect(replaced.endOf(3, 8), 'the life read is not judged').to.equal('live');
  });

  it('the latest write the read came after counts, whatever order the answers arrived in', () => {
    const lives = new CartLives(TTL_MS, cartKey);
    lives.wrote(0, 1, 600, 640);
    lives.wrote(0, 1, 0, 630); // sent first, answered a little earlier, recorded later
    lives.read(0, null, 650, 1200);
    expect(lives.endOf(0, 1), 'the write sent at 600 keeps the cart until 1590').to.equal('vanished early');

    const later = new CartLives(TTL_MS, cartKey);
    later.wrote(0, 1, 0, 10);
    later.wrote(0, 1, 600, 610);
    later.read(0, null, 620, 1590);
    expect(later.endOf(0, 1)).to.equal('expired');
  });

  it('a read sent before any write of the life was answered may have come before the life: no verdict', () => {
    const lives = new CartLives(TTL_MS, cartKey);
    lives.wrote(0, 2, 0, 100);
    lives.read(0, null, 50, 120);
    expect(lives.endOf(0, 2)).to.equal('live');
    lives.read(0, 2, 150, 160);
    expect(lives.endOf(0, 2), 'found: still live').to.equal('live');
    lives.read(0, null, 200, 300);
    expect(lives.endOf(0, 2)).to.equal('vanished early');
  });

  it('an expired life is judged again when a later write of it qualifies for a later read', () => {
    const lives = new CartLives(TTL_MS, cartKey);
    lives.wrote(0, 1, 0, 10);
    lives.read(0, null, 20, 2000);
    expect(lives.endOf(0, 1)).to.equal('expired');
    // A write sent at 1500 and answered at 1990 landed in life 1 (after the read was sent): the
    // read after it that finds another life shows life 1 gone by 2100, before 1500 + 990.
    lives.wrote(0, 1, 1500, 1990);
    lives.read(0, 2, 2000, 2100);
    expect(lives.endOf(0, 1)).to.equal('vanished early');
    expect(lives.expired).to.equal(0);
  });

  it('life numbers are unique; lives of other carts are not judged by this cart\'s reads', () => {
    const lives = new CartLives(TTL_MS, cartKey);
    const numbers = Array.from({ length: 50 }, () => lives.newLife());
    expect(new Set(numbers).size).to.equal(50);
    lives.wrote(1, 5, 0, 10);
    lives.read(2, null, 20, 30);
    expect(lives.endOf(1, 5)).to.equal('live');
  });

  it('abandonment: one cart in four at a time, for twice the TTL and at least the TTL + 1 s', () => {
    expect(abandonmentWindowMs(1000)).to.equal(2000);
    expect(abandonmentWindowMs(300)).to.equal(1300);
    expect(abandonmentWindowMs(600_000)).to.equal(1_200_000);
    for (let window = 0; window < 8; window++) {
      const abandoned = Array.from({ length: 40 }, (_, cart) => cart).filter((cart) => isAbandoned(cart, window));
      expect(abandoned, `window ${window}`).to.have.length(40 / ABANDONED_ONE_IN);
    }
    const random = new SeededRandom(SEED);
    for (const carts of [2, 3, 5, 8, 100]) {
      for (let window = 0; window < 8; window++) {
        const picked = new Set(Array.from({ length: 400 }, () => pickActiveCart(random, carts, window)));
        const active = Array.from({ length: carts }, (_, cart) => cart).filter((cart) => !isAbandoned(cart, window));
        expect([...picked].every((cart) => !isAbandoned(cart, window)), `${carts} carts, window ${window}: picked an abandoned cart`).to.equal(true);
        if (carts <= 8) expect([...picked].sort((a, b) => a - b), `${carts} carts, window ${window}`).to.deep.equal(active);
      }
    }
    expect(pickActiveCart(random, 1, 0), 'a lone cart is used even in its abandoned window').to.equal(0);
  });
});
