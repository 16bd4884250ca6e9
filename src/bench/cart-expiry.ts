/**
 * `kvstore driver --cart-ttl` (issue 18): carts that expire. Every cart write carries the TTL, so a
 * cart somebody keeps touching stays; the driver leaves a quarter of the carts alone at a time
 * ({@link isAbandoned}) so that some do expire in an ordinary run. A cart that expired and is written
 * again starts a new *life* (cart.ts `life`), empty and without markers.
 *
 * What a TTL promises (docs/transactions-and-ttl.md): a key never expires earlier than 0.99 × ttl
 * after the put that wrote it was invoked (less a millisecond of rounding); it may expire any time
 * later. So a cart's disappearance excuses its items only if it could have expired: {@link CartLives}
 * records, per life, when each write known to have landed was sent and by when it was answered, and
 * every read of the cart. A read sent after such a write was answered comes after it; if that read
 * finds another life (or nothing), the life ended before the read was answered. It *expired* if that
 * could be 0.99 × ttl after the write was sent; otherwise it *vanished early*, and whatever it held
 * is lost.
 *
 * All times are the driver's `performance.now()`: a write's send time is taken before the call
 * (no later than the store saw it), an answer time after the call returned (no earlier), so both
 * verdicts lean towards "expired" and a store that keeps its promise is never blamed.
 */

/** The share of the TTL before which a key must not expire (the log clock's slew, 1%). */
export const EARLIEST_EXPIRY_SHARE = 0.99;
/**
 * Milliseconds the earliest expiry is moved earlier: log time counts whole milliseconds, so an
 * expiry time may fall up to one early. (Only durations are compared, each on one clock — the
 * driver's, and the leader's log clock for the TTL — so no offset between machines enters.)
 */
export const EXPIRY_ROUNDING_MS = 1;
/** One cart in this many is left alone at a time. */
export const ABANDONED_ONE_IN = 4;
/** Most problems {@link CartLives.examples} names. */
const MAX_EXAMPLES = 3;

/**
 * How long a cart is left alone once abandoned: twice the TTL, and at least the TTL plus a second
 * (a shard with expiring keys may take that long to move its log clock), so it does expire.
 */
export function abandonmentWindowMs(ttlMs: number): number {
  return Math.max(2 * ttlMs, ttlMs + 1000);
}

/**
 * True when shoppers leave cart `cart` alone during window `window` (the run's time divided into
 * {@link abandonmentWindowMs}): one cart in {@link ABANDONED_ONE_IN}, a different one each window.
 */
export function isAbandoned(cart: number, window: number): boolean {
  return (cart + window) % ABANDONED_ONE_IN === 0;
}

/**
 * A cart a shopper may touch in window `window`: drawn at random, drawn again (a few times) while it
 * is abandoned, else the next cart that is not; when every cart is abandoned (one cart), the first draw.
 */
export function pickActiveCart(random: { nextInt(maxExclusive: number): number }, carts: number, window: number): number {
  const first = random.nextInt(carts);
  let cart = first;
  for (let draw = 0; draw < 4 && isAbandoned(cart, window); draw++) cart = random.nextInt(carts);
  for (let step = 0; step < carts && isAbandoned(cart, window); step++) cart = (cart + 1) % carts;
  return isAbandoned(cart, window) ? first : cart;
}

/** How a cart's life ended, as far as the reads show. */
export type LifeEnd = 'live' | 'expired' | 'vanished early';

/** One life of one cart. */
interface Life {
  /** Answer times of its writes known to have landed, ascending. */
  answeredAtMs: number[];
  /** `latestSentMs[i]`: the latest send time among writes 0…i (in answer order). */
  latestSentMs: number[];
  /** How many of its writes (in answer order) {@link CartLives.read} last judged it on; judged again only when more qualify. */
  judgedWrites: number;
  end: LifeEnd;
  /** Why it vanished early, when it did. */
  evidence?: string;
}

/** The lives of every cart in one run, and the verdict on each life that ended. */
export class CartLives {
  private readonly carts = new Map<number, Map<number, Life>>();
  private lastLife = 0;
  /** How long after a write was sent its key may expire, at the earliest. */
  private readonly earliestExpiryAfterMs: number;

  /**
   * @param ttlMs the carts' TTL
   * @param keyOf names a cart in the examples
   */
  constructor(readonly ttlMs: number, private readonly keyOf: (cart: number) => string) {
    this.earliestExpiryAfterMs = EARLIEST_EXPIRY_SHARE * ttlMs - EXPIRY_ROUNDING_MS;
  }

  /** A new life number, unique in this run: the value of a cart written where there was none. */
  newLife(): number {
    this.lastLife += 1;
    return this.lastLife;
  }

  /**
   * Records a write to life `life` of `cart` known to have landed: sent at `sentAtMs` (or later),
   * answered — or seen landed — by `answeredAtMs`. Record it BEFORE any read sent after `answeredAtMs`.
   */
  wrote(cart: number, life: number, sentAtMs: number, answeredAtMs: number): void {
    const record = this.lifeOf(cart, life);
    let at = record.answeredAtMs.length;
    while (at > 0 && (record.answeredAtMs[at - 1] ?? 0) > answeredAtMs) at -= 1; // answers arrive nearly in order
    record.answeredAtMs.splice(at, 0, answeredAtMs);
    record.latestSentMs.splice(at, 0, sentAtMs);
    for (let i = at; i < record.latestSentMs.length; i++) {
      record.latestSentMs[i] = Math.max(record.latestSentMs[i] ?? 0, i > 0 ? (record.latestSentMs[i - 1] ?? 0) : 0);
    }
    if (at < record.answeredAtMs.length - 1) record.judgedWrites = 0; // an earlier write: judge again
  }

  /**
   * Records a linearizable read of `cart`, sent at `sentAtMs`, answered at `answeredAtMs`, that found
   * life `found` (null: no cart). Every other life with a write answered before the read was sent has
   * ended by `answeredAtMs`: it expired if the latest such write was sent at least 0.99 × ttl earlier,
   * else it vanished early.
   */
  read(cart: number, found: number | null, sentAtMs: number, answeredAtMs: number): void {
    for (const [life, record] of this.carts.get(cart) ?? []) {
      if (life === found || record.end === 'vanished early' || (record.end === 'expired' && record.judgedWrites === record.answeredAtMs.length)) continue;
      const before = countAtMost(record.answeredAtMs, sentAtMs);
      if (before === 0) continue; // the read may have come before the life began
      record.judgedWrites = before;
      const latestSentMs = record.latestSentMs[before - 1] ?? 0;
      const earliestExpiryMs = latestSentMs + this.earliestExpiryAfterMs;
      if (answeredAtMs >= earliestExpiryMs) {
        record.end = 'expired';
        continue;
      }
      record.end = 'vanished early';
      record.evidence = `${this.keyOf(cart)} (life ${life}) was read ${found === null ? 'absent' : `as life ${found}`} ` +
        `${Math.round(answeredAtMs - latestSentMs)} ms after a write to it was sent; with a TTL of ${this.ttlMs} ms it cannot ` +
        `expire before ${Math.round(this.earliestExpiryAfterMs)} ms`;
    }
  }

  /** How life `life` of `cart` ended: 'live' when no read showed it gone (or it had no write recorded). */
  endOf(cart: number, life: number): LifeEnd {
    return this.carts.get(cart)?.get(life)?.end ?? 'live';
  }

  /** Lives that ended as the TTL allows. */
  get expired(): number {
    return this.count('expired');
  }

  /** Lives that ended before the TTL allowed. */
  get vanishedEarly(): number {
    return this.count('vanished early');
  }

  /** True when a life of `cart` vanished early. */
  vanishedEarlyIn(cart: number): boolean {
    return [...(this.carts.get(cart)?.values() ?? [])].some((record) => record.end === 'vanished early');
  }

  /** A few lives that vanished early, each with its evidence. */
  examples(): string[] {
    const examples: string[] = [];
    for (const lives of this.carts.values()) {
      for (const record of lives.values()) {
        if (record.evidence !== undefined && examples.length < MAX_EXAMPLES) examples.push(`vanished early: ${record.evidence}`);
      }
    }
    return examples;
  }

  private count(end: LifeEnd): number {
    let count = 0;
    for (const lives of this.carts.values()) for (const record of lives.values()) if (record.end === end) count += 1;
    return count;
  }

  private lifeOf(cart: number, life: number): Life {
    let lives = this.carts.get(cart);
    if (lives === undefined) {
      lives = new Map();
      this.carts.set(cart, lives);
    }
    let record = lives.get(life);
    if (record === undefined) {
      record = { answeredAtMs: [], latestSentMs: [], judgedWrites: 0, end: 'live' };
      lives.set(life, record);
    }
    return record;
  }
}

/** How many of the ascending `values` are at most `limit` (binary search). */
function countAtMost(values: readonly number[], limit: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((values[middle] ?? Infinity) <= limit) low = middle + 1;
    else high = middle;
  }
  return low;
}
