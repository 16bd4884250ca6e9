/**
 * `driver --checkout`'s shoppers (src/bench/checkout.ts) against an in-memory store that fails writes
 * the three ways a real cluster can when the client reports TIMEOUT with an unknown outcome: the write
 * never applied, it applied before the error, or it applies later (its compares judged then) while
 * the shopper is already retrying. A real cluster rarely surfaces these to the driver (the client
 * rides out a failover on its own), so this is where the retry logic meets them: every item must
 * still be in a cart or in exactly one order. A store that ignores the cart's version in the checkout
 * transaction shows that the proof catches what goes wrong. Seeded: SEED=n replays a run.
 */
import { expect } from 'chai';
import { Ledger } from '../../src/bench/cart.js';
import { CheckoutShopping, type CheckoutClient, type CheckoutVerdict, type PendingChange } from '../../src/bench/checkout.js';
import { KVError, type KVEntry, type KVGetManyResult, type KVTxn, type KVTxnOpResult, type KVTxnResult, type KVValue } from '../../src/client/index.js';
import { deriveSeed, SeededRandom } from '../../src/common/index.js';

const SEED = Number(process.env['SEED'] ?? Date.now() % 100_000);
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A key-value store in memory whose writes fail, now and then, with TIMEOUT in one of three ways. */
class FaultyStore implements CheckoutClient {
  readonly faults = { notApplied: 0, appliedThenTimedOut: 0, appliedLate: 0 };
  private readonly data = new Map<string, { value: string; version: number }>();
  private lastVersion = 0;
  private readonly lateWrites: Promise<void>[] = [];

  /**
   * @param faultPercent the share of writes that fail
   * @param ignoreCartVersion a broken store: the checkout transaction's version compares always hold
   */
  constructor(private readonly random: SeededRandom, private readonly faultPercent: number, private readonly ignoreCartVersion = false) {}

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
      const version = this.data.get(key)?.version ?? 0;
      if (version !== expectedVersion) throw new KVError('CONFLICT', `${key} is at version ${version}, not ${expectedVersion}`);
      return this.put(key, value);
    });
  }

  async txn(txn: KVTxn): Promise<KVTxnResult> {
    return this.write(() => {
      const holds = (txn.compare ?? []).every((compare) => {
        const current = this.data.get(compare.key);
        if ('version' in compare) return (this.ignoreCartVersion && compare.version > 0) || (current?.version ?? 0) === compare.version;
        if ('exists' in compare) return (current !== undefined) === compare.exists;
        return current?.value === textOf(compare.value);
      });
      const results = ((holds ? txn.success : txn.failure) ?? []).map((op): KVTxnOpResult => {
        if ('put' in op) return { op: 'put', key: op.put.key, version: this.put(op.put.key, op.put.value) };
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
    if (this.random.nextInt(100) >= this.faultPercent) return apply();
    const applyIgnoringConflict = (): void => {
      try {
        apply();
      } catch (error) {
        if (!(error instanceof KVError && error.code === 'CONFLICT')) throw error;
      }
    };
    switch (this.random.nextInt(3)) {
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

  private put(key: string, value: KVValue): number {
    this.lastVersion += 1;
    this.data.set(key, { value: textOf(value), version: this.lastVersion });
    return this.lastVersion;
  }

  private entryOf(key: string): KVEntry | null {
    const stored = this.data.get(key);
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
async function shop(store: FaultyStore, seed: number, options: { shoppers: number; carts: number; actions: number; checkoutPercent: number }): Promise<{ verdict: CheckoutVerdict; pending: number }> {
  const shopping = new CheckoutShopping(options.checkoutPercent);
  await shopping.prepare(store, options.carts);
  const ledgers = Array.from({ length: options.shoppers }, () => new Ledger());
  const pending: PendingChange[] = [];
  const totals = { conflictsRetried: 0 };
  const shopper = async (index: number): Promise<void> => {
    const random = new SeededRandom(deriveSeed(seed, index));
    for (let opSeq = 1; opSeq <= options.actions; opSeq++) {
      const cart = random.nextInt(options.carts);
      const action = shopping.newAction(cart, index, opSeq, random);
      for (;;) {
        try {
          const applied = await shopping.run(store, action, random, totals);
          if (applied !== null) ledgers[index]?.record(cart, applied);
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
  return { verdict, pending: pending.length };
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
