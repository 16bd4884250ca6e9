/**
 * `driver --checkout`'s shoppers (src/bench/checkout.ts) against an in-memory store that fails writes
 * the three ways a real cluster can when the client reports TIMEOUT with an unknown outcome: the write
 * never applied, it applied before the error, or it applies later (its compares judged then) while
 * the shopper is already retrying. A real cluster rarely surfaces these to the driver (the client
 * rides out a failover on its own), so this is where the retry logic meets them: every item must
 * still be in a cart or in exactly one order. A store that ignores the cart's version in the checkout
 * transaction shows that the proof catches what goes wrong. With `--cart-ttl` the store expires
 * keys too: carts expire and come back as new lives, items go with them, and still nothing is lost or
 * duplicated; a store that expires carts before their TTL allows is caught. Seeded: SEED=n replays a run.
 */
import { expect } from 'chai';
import { checkoutCartKey, Ledger } from '../../src/bench/cart.js';
import { CartLives, pickActiveCart } from '../../src/bench/cart-expiry.js';
import { CheckoutShopping, type CheckoutClient, type CheckoutVerdict, type PendingChange } from '../../src/bench/checkout.js';
import { KVError, type KVEntry, type KVGetManyResult, type KVTxn, type KVTxnOpResult, type KVTxnResult, type KVValue } from '../../src/client/index.js';
import { deriveSeed, SeededRandom } from '../../src/common/index.js';

const SEED = Number(process.env['SEED'] ?? Date.now() % 100_000);
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * A key-value store in memory whose writes fail, now and then, with TIMEOUT in one of three ways. A
 * put with a TTL makes its key expire that long after the put applied (`performance.now()`).
 */
class FaultyStore implements CheckoutClient {
  readonly faults = { notApplied: 0, appliedThenTimedOut: 0, appliedLate: 0 };
  private readonly data = new Map<string, { value: string; version: number; expiresAtMs?: number }>();
  private lastVersion = 0;
  private readonly lateWrites: Promise<void>[] = [];

  /**
   * @param faultPercent the share of writes that fail
   * @param ignoreCartVersion a broken store: the checkout transaction's version compares always hold
   * @param expiryShare a key expires this share of its TTL after its put (below 0.99: a broken store)
   */
  constructor(private readonly random: SeededRandom, private readonly faultPercent: number, private readonly ignoreCartVersion = false, private readonly expiryShare = 1) {}

  /** The next write applies, then fails with TIMEOUT. */
  appliedThenTimedOutNext = false;

  /** Removes `key` at once, as a store that loses a key would. */
  drop(key: string): void {
    this.data.delete(key);
  }

  async getEntry(key: string): Promise<KVEntry | null> {
    await this.pause(3);
    return this.entryOf(key);
  }

  async getMany(keys: readonly string[]): Promise<KVGetManyResult[]> {
    await this.pause(3);
    return keys.map((key) => ({ key, ok: true as const, entry: this.entryOf(key) }));
  }

  async cas(key: string, expectedVersion: number, value: KVValue): Promise<number> {
    return this.write(() => {
      const version = this.current(key)?.version ?? 0;
      if (version !== expectedVersion) throw new KVError('CONFLICT', `${key} is at version ${version}, not ${expectedVersion}`);
      return this.put(key, value);
    });
  }

  async txn(txn: KVTxn): Promise<KVTxnResult> {
    return this.write(() => {
      const holds = (txn.compare ?? []).every((compare) => {
        const current = this.current(compare.key);
        if ('version' in compare) return (this.ignoreCartVersion && compare.version > 0) || (current?.version ?? 0) === compare.version;
        if ('exists' in compare) return (current !== undefined) === compare.exists;
        return current?.value === textOf(compare.value);
      });
      const results = ((holds ? txn.success : txn.failure) ?? []).map((op): KVTxnOpResult => {
        if ('put' in op) return { op: 'put', key: op.put.key, version: this.put(op.put.key, op.put.value, op.put.ttlMs) };
        if ('delete' in op) return { op: 'delete', key: op.delete.key, existed: this.data.delete(op.delete.key) };
        return { op: 'get', key: op.get.key, entry: this.entryOf(op.get.key) };
      });
      return { succeeded: holds, results };
    });
  }

  /** Waits for every write still to apply late. */
  async settle(): Promise<void> {
    await Promise.all(this.lateWrites);
  }

  private async write<T>(apply: () => T): Promise<T> {
    await this.pause(3);
    const forced = this.appliedThenTimedOutNext;
    this.appliedThenTimedOutNext = false;
    if (!forced && this.random.nextInt(100) >= this.faultPercent) return apply();
    const applyIgnoringConflict = (): void => {
      try {
        apply();
      } catch (error) {
        if (!(error instanceof KVError && error.code === 'CONFLICT')) throw error;
      }
    };
    switch (forced ? 1 : this.random.nextInt(3)) {
      case 0:
        this.faults.notApplied += 1;
        break;
      case 1:
        this.faults.appliedThenTimedOut += 1;
        applyIgnoringConflict();
        break;
      default:
        this.faults.appliedLate += 1;
        this.lateWrites.push(this.pause(20).then(applyIgnoringConflict));
    }
    throw new KVError('TIMEOUT', 'injected: the outcome is unknown', { outcomeUnknown: true });
  }

  /** A put without a TTL clears one, as the real store's does. */
  private put(key: string, value: KVValue, ttlMs?: number): number {
    this.lastVersion += 1;
    const expiry = ttlMs === undefined ? {} : { expiresAtMs: performance.now() + ttlMs * this.expiryShare };
    this.data.set(key, { value: textOf(value), version: this.lastVersion, ...expiry });
    return this.lastVersion;
  }

  /** The key's stored value, once any expiry due has removed it. */
  private current(key: string): { value: string; version: number } | undefined {
    const stored = this.data.get(key);
    if (stored?.expiresAtMs !== undefined && performance.now() >= stored.expiresAtMs) this.data.delete(key);
    return this.data.get(key);
  }

  private entryOf(key: string): KVEntry | null {
    const stored = this.current(key);
    return stored === undefined ? null : { value: stored.value, bytes: encoder.encode(stored.value), version: stored.version };
  }

  private pause(maxMs: number): Promise<void> {
    const ms = this.random.nextInt(maxMs + 1);
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
}

function textOf(value: KVValue): string {
  return typeof value === 'string' ? value : decoder.decode(value);
}

/**
 * Shoppers as the driver runs them (shopping-driver.ts): each action retried on TIMEOUT until it
 * settles; a shopper's last action may instead be left pending, as when the run stops. Then the
 * driver's final check.
 */
async function shop(store: FaultyStore, seed: number, options: { shoppers: number; carts: number; actions: number; checkoutPercent: number; ttlMs?: number }): Promise<{ verdict: CheckoutVerdict; pending: number; lives?: CartLives }> {
  const lives = options.ttlMs === undefined ? undefined : new CartLives(options.ttlMs, checkoutCartKey);
  const shopping = new CheckoutShopping(options.checkoutPercent, lives);
  await shopping.prepare(store, options.carts);
  const started = performance.now();
  const ledgers = Array.from({ length: options.shoppers }, () => new Ledger());
  const pending: PendingChange[] = [];
  const totals = { conflictsRetried: 0 };
  const shopper = async (index: number): Promise<void> => {
    const random = new SeededRandom(deriveSeed(seed, index));
    for (let opSeq = 1; opSeq <= options.actions; opSeq++) {
      // With a TTL, as the driver: a quarter of the carts is left alone at a time, for twice the TTL.
      const cart = options.ttlMs === undefined ? random.nextInt(options.carts) : pickActiveCart(random, options.carts, Math.floor((performance.now() - started) / (2 * options.ttlMs)));
      const action = shopping.newAction(cart, index, opSeq, random);
      for (;;) {
        try {
          const applied = await shopping.run(store, action, random, totals);
          if (applied !== null) ledgers[index]?.record(cart, applied.change, applied.life);
          break;
        } catch (error) {
          if (!(error instanceof KVError) || error.code !== 'TIMEOUT') throw error;
          if (opSeq === options.actions && random.nextInt(2) === 0) {
            pending.push({ shopper: index, cart, opSeq });
            return;
          }
        }
      }
    }
  };
  await Promise.all(Array.from({ length: options.shoppers }, (_, index) => shopper(index)));
  const verdict = await shopping.verify(store, options.carts, pending, ledgers);
  return { verdict, pending: pending.length, ...(lives === undefined ? {} : { lives }) };
}

describe('driver --checkout: shoppers under writes of unknown outcome', function () {
  this.timeout(60_000);
  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`checkout faults test failed with SEED=${SEED}\n`);
  });

  it('loses and duplicates nothing when writes fail before, after or long after applying', async () => {
    const store = new FaultyStore(new SeededRandom(SEED), 15);
    const { verdict, pending } = await shop(store, SEED, { shoppers: 8, carts: 3, actions: 60, checkoutPercent: 25 });
    await store.settle();
    const { proof, checkouts } = verdict.report;
    expect(store.faults.notApplied, 'faults injected').to.be.greaterThan(0);
    expect(store.faults.appliedThenTimedOut, 'faults injected').to.be.greaterThan(0);
    expect(store.faults.appliedLate, 'faults injected').to.be.greaterThan(0);
    expect(proof.orders, 'orders created').to.be.greaterThan(0);
    expect(proof.examples).to.deep.equal([]);
    expect(proof).to.include({ lost: 0, duplicated: 0, unexpected: 0 });
    expect(verdict.lostUpdates, 'carts with their orders against the ledgers').to.equal(0);
    // A shopper knows of every order it made, unless the run stopped it while the outcome was unknown.
    expect(proof.orders - checkouts, `${proof.orders} orders, ${checkouts} known to the shoppers, ${pending} actions pending`).to.be.within(0, pending);
  });

  it('a second run on the same store numbers its orders after the first run\'s', async () => {
    const store = new FaultyStore(new SeededRandom(SEED), 10);
    const first = await shop(store, SEED, { shoppers: 4, carts: 2, actions: 40, checkoutPercent: 30 });
    await store.settle();
    const second = await shop(store, SEED + 1, { shoppers: 4, carts: 2, actions: 40, checkoutPercent: 30 });
    await store.settle();
    expect(first.verdict.report.proof).to.include({ lost: 0, duplicated: 0, unexpected: 0 });
    expect(second.verdict.report.proof.examples).to.deep.equal([]);
    expect(second.verdict.report.proof).to.include({ lost: 0, duplicated: 0, unexpected: 0 });
    expect(second.verdict.report.proof.orders, 'the second run counts only its own orders').to.be.greaterThan(0);
  });

  it('with --cart-ttl: carts expire and come back; nothing lost or duplicated under the same faults', async () => {
    const store = new FaultyStore(new SeededRandom(SEED), 15);
    const { verdict, lives } = await shop(store, SEED, { shoppers: 4, carts: 6, actions: 80, checkoutPercent: 25, ttlMs: 40 });
    await store.settle();
    const { proof } = verdict.report;
    expect(store.faults.notApplied + store.faults.appliedThenTimedOut + store.faults.appliedLate, 'faults injected').to.be.greaterThan(0);
    expect(lives?.expired, 'carts that expired').to.be.greaterThan(0);
    expect(lives?.examples()).to.deep.equal([]);
    expect(lives?.vanishedEarly).to.equal(0);
    expect(proof.orders, 'orders created').to.be.greaterThan(0);
    expect(proof.examples).to.deep.equal([]);
    expect(proof).to.include({ lost: 0, duplicated: 0, unexpected: 0 });
    expect(proof.expiredWithCart, 'items that expired with their cart').to.be.greaterThan(0);
    expect(verdict.lostUpdates, 'carts with their orders against the ledgers').to.equal(0);
  });

  it('with --cart-ttl: an item whose cart expired is not lost; one whose cart vanished early is', async () => {
    const addOne = async (ttlMs: number, afterAdd: (store: FaultyStore) => Promise<void>): Promise<{ verdict: CheckoutVerdict; lives: CartLives }> => {
      const store = new FaultyStore(new SeededRandom(SEED), 0);
      const lives = new CartLives(ttlMs, checkoutCartKey);
      const shopping = new CheckoutShopping(1, lives);
      await shopping.prepare(store, 1);
      const random = new SeededRandom(SEED);
      const ledger = new Ledger();
      const action = { ...shopping.newAction(0, 0, 1, random), wantsCheckout: false };
      const applied = await shopping.run(store, action, random, { conflictsRetried: 0 });
      if (applied === null) throw new Error('the add did not land');
      ledger.record(0, applied.change, applied.life);
      await afterAdd(store);
      return { verdict: await shopping.verify(store, 1, [], [ledger]), lives };
    };
    // A TTL well above the store's pauses, so only the wait lets the cart expire, even on a busy machine.
    const expired = await addOne(250, () => new Promise((resolve) => setTimeout(resolve, 500)));
    expect(expired.verdict.report.proof).to.include({ lost: 0, duplicated: 0, expiredWithCart: 1 });
    expect({ expired: expired.lives.expired, vanishedEarly: expired.lives.vanishedEarly, lostUpdates: expired.verdict.lostUpdates }).to.deep.equal({ expired: 1, vanishedEarly: 0, lostUpdates: 0 });

    const vanished = await addOne(60_000, (store) => {
      store.drop(checkoutCartKey(0));
      return Promise.resolve();
    });
    expect(vanished.verdict.report.proof).to.include({ lost: 1, duplicated: 0, expiredWithCart: 0 });
    expect({ expired: vanished.lives.expired, vanishedEarly: vanished.lives.vanishedEarly, lostUpdates: vanished.verdict.lostUpdates }).to.deep.equal({ expired: 0, vanishedEarly: 1, lostUpdates: 1 });
    expect(vanished.lives.examples()[0]).to.match(/^vanished early: \{u0\}cart \(life \d+\) was read absent \d+ ms after a write to it was sent/);
  });

  it('with --cart-ttl: an add of unknown outcome whose cart expired before its retry is uncertain, not added again', async () => {
    // The add lands but times out; another shopper checks the cart out (the item goes into the
    // order); the cart expires; the retry finds no cart and no marker. Adding the unit to a new cart
    // would put it in two places: the action must end, its item uncertain.
    const store = new FaultyStore(new SeededRandom(SEED), 0);
    const lives = new CartLives(250, checkoutCartKey); // well above the store's pauses, even on a busy machine
    const shopping = new CheckoutShopping(100, lives);
    await shopping.prepare(store, 1);
    const random = new SeededRandom(SEED);
    const totals = { conflictsRetried: 0 };
    const add = { ...shopping.newAction(0, 0, 1, random), wantsCheckout: false };
    store.appliedThenTimedOutNext = true;
    const failed = await shopping.run(store, add, random, totals).then(() => 'resolved', (error: unknown) => error);
    expect(failed).to.be.instanceOf(KVError).with.property('code', 'TIMEOUT');
    expect(await shopping.run(store, { ...shopping.newAction(0, 1, 1, random), wantsCheckout: true }, random, totals), 'checked out').to.equal(null);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await shopping.run(store, add, random, totals), 'the retry ends the action').to.equal(null);
    const verdict = await shopping.verify(store, 1, [], [new Ledger(), new Ledger()]);
    expect(verdict.report.proof).to.include({ orders: 1, itemsFound: 1, lost: 0, duplicated: 0, unexpected: 0 });
    expect(lives.expired).to.equal(1);
    expect(verdict.lostUpdates).to.equal(0);
  });

  it('with --cart-ttl: the checks catch a store whose carts expire at a third of their TTL', async () => {
    const store = new FaultyStore(new SeededRandom(SEED), 0, false, 0.3);
    const { verdict, lives } = await shop(store, SEED, { shoppers: 2, carts: 8, actions: 60, checkoutPercent: 25, ttlMs: 100 });
    if (lives === undefined || lives.vanishedEarly === 0) {
      expect.fail(`no cart was read absent between 30 ms and 99 ms after its last write (SEED=${SEED}): nothing to catch`);
    }
    expect(lives.examples().length).to.be.greaterThan(0);
    expect(verdict.lostUpdates, 'carts with a life that vanished early count as lost updates').to.be.greaterThan(0);
  });

  it('the proof catches a store whose checkout ignores the cart\'s version', async () => {
    const store = new FaultyStore(new SeededRandom(SEED), 0, true);
    const { verdict } = await shop(store, SEED, { shoppers: 8, carts: 2, actions: 60, checkoutPercent: 30 });
    const { proof } = verdict.report;
    if (proof.lost + proof.duplicated === 0) {
      expect.fail(`a checkout from a stale cart read never overlapped an add or another checkout (SEED=${SEED}): nothing to catch`);
    }
    expect(proof.examples.length).to.be.greaterThan(0);
  });
});
