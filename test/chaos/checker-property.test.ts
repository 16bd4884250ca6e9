/**
 * Property tests of the checker against a naive reference: a sequential execution on two keys of
 * one shard — single-key get, put and cas, and transactions that read both keys or transfer new
 * values to both if their versions match (issue 18) — given random overlapping timings around its
 * linearization points, is always accepted; the same history with one read changed to a value
 * never written, or to a value written only after the read returned, or with a transaction's read
 * of both keys torn (one key shown as it was before the transaction that wrote both) is always
 * rejected. Puts and transfers may carry a TTL (issue 18): the reference removes the key at some
 * time at or after the earliest expiry the checker assumes, while that write's value is current;
 * a read changed to find the key absent before any TTL write could have expired, or the history
 * followed by a read that finds a written key absent and one that finds that write's value again,
 * is always rejected. SEED=n replays a run.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { checkHistory, earliestExpiryMs, possibleWrites, precedes, type GetOperation, type Operation, type TxnOperation, type TxnStepResult } from '../../src/chaos/index.js';

const SEED = process.env['SEED'] === undefined ? Date.now() % 2 ** 31 : Number(process.env['SEED']);

const KEYS = ['{g}a', '{g}b'] as const;

/**
 * A TTL: the key expires `lagMs` after the earliest expiry the checker assumes (but never before
 * the put's linearization point), unless overwritten first.
 */
interface Ttl {
  ttlMs: number;
  lagMs: number;
}

type Step =
  | { kind: 'get' }
  | { kind: 'put'; ttl: Ttl | null }
  | { kind: 'cas'; stale: boolean }
  | { kind: 'lostWrite'; ttl: Ttl | null }
  | { kind: 'readBoth' }
  | { kind: 'transfer'; stale: boolean; ttl: Ttl | null }
  | { kind: 'lostTransfer' };

/** TTLs around the length of a history (tens of ms), so some keys expire and some reads come before the earliest expiry. */
const ttlArbitrary: fc.Arbitrary<Ttl | null> = fc.oneof(
  { arbitrary: fc.constant(null), weight: 2 },
  { arbitrary: fc.record({ ttlMs: fc.integer({ min: 20, max: 150 }), lagMs: fc.integer({ min: 0, max: 40 }) }), weight: 1 },
);

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'get' }),
  ttlArbitrary.map<Step>((ttl) => ({ kind: 'put', ttl })),
  fc.boolean().map<Step>((stale) => ({ kind: 'cas', stale })),
  ttlArbitrary.map<Step>((ttl) => ({ kind: 'lostWrite', ttl })),
  fc.constant<Step>({ kind: 'readBoth' }),
  fc.tuple(fc.boolean(), ttlArbitrary).map<Step>(([stale, ttl]) => ({ kind: 'transfer', stale, ttl })),
  fc.constant<Step>({ kind: 'lostTransfer' }),
);

interface Timing {
  gapMs: number;
  beforeMs: number;
  afterMs: number;
  indeterminate: boolean;
}

const timingArbitrary: fc.Arbitrary<Timing> = fc.record({
  gapMs: fc.integer({ min: 1, max: 5 }),
  beforeMs: fc.integer({ min: 0, max: 20 }),
  afterMs: fc.integer({ min: 0, max: 20 }),
  indeterminate: fc.boolean().chain((maybe) => (maybe ? fc.boolean() : fc.constant(false))),
});

interface Cell {
  value: string | null;
  version: number;
  /** When the reference removes the key (its value came from a put with a TTL). */
  expiresAtMs?: number;
}

/**
 * Runs the steps on a reference store of two keys (versions = one Raft-like index counter for the
 * shard) and gives each operation an interval around its linearization point. `lostWrite` and
 * `lostTransfer` steps are timed-out writes that never took effect; single-key steps pick their key
 * by `keyIndex`. Before each step, keys whose TTL ran out by its linearization point are removed.
 */
function sequentialHistory(steps: readonly { step: Step; timing: Timing; keyIndex: number }[]): Operation[] {
  const store = new Map<string, Cell>(KEYS.map((key) => [key, { value: null, version: 0 }]));
  const cell = (key: string): Cell => store.get(key) as Cell;
  let index = 0;
  let pointMs = 100;
  const history: Operation[] = [];
  steps.forEach(({ step, timing, keyIndex }, id) => {
    pointMs += timing.gapMs;
    for (const name of KEYS) if ((cell(name).expiresAtMs ?? Infinity) <= pointMs) store.set(name, { value: null, version: 0 });
    const key = KEYS[keyIndex % KEYS.length] as string;
    const span = { id, client: id % 4, key, invokedAtMs: pointMs - timing.beforeMs, completedAtMs: pointMs + timing.afterMs };
    const ttlFields = (ttl: Ttl | null): { ttlMs?: number } => (ttl === null ? {} : { ttlMs: ttl.ttlMs });
    const expiry = (ttl: Ttl | null): { expiresAtMs?: number } =>
      ttl === null ? {} : { expiresAtMs: Math.max(earliestExpiryMs(span.invokedAtMs, ttl.ttlMs) + ttl.lagMs, pointMs + 0.5) };
    const current = cell(key);
    const written = `v${id}`;
    switch (step.kind) {
      case 'get':
        history.push({ ...span, type: 'get', status: 'ok', value: current.value, version: current.version });
        return;
      case 'put':
        index += 1 + (id % 3);
        store.set(key, { value: written, version: index, ...expiry(step.ttl) });
        history.push({ ...span, type: 'put', value: written, status: timing.indeterminate ? 'unknown' : 'ok', ...ttlFields(step.ttl) });
        return;
      case 'cas': {
        const expectedVersion = step.stale && current.version > 0 ? current.version - 1 : current.version;
        if (expectedVersion !== current.version) {
          history.push({ ...span, type: 'cas', expectedVersion, value: written, status: 'conflict', currentVersion: current.version });
          return;
        }
        index += 1;
        store.set(key, { value: written, version: index });
        history.push(
          timing.indeterminate
            ? { ...span, type: 'cas', expectedVersion, value: written, status: 'unknown' }
            : { ...span, type: 'cas', expectedVersion, value: written, status: 'ok', version: index },
        );
        return;
      }
      case 'lostWrite':
        history.push({ ...span, type: 'put', value: written, status: 'unknown', ...ttlFields(step.ttl) });
        return;
      case 'readBoth': {
        const results = KEYS.map((name): TxnStepResult => ({ op: 'get', key: name, value: cell(name).value, version: cell(name).version }));
        history.push({ ...span, key: KEYS[0], type: 'txn', compare: [], success: KEYS.map((name) => ({ op: 'get', key: name })), failure: [], status: 'ok', succeeded: true, results });
        return;
      }
      case 'transfer':
      case 'lostTransfer': {
        const versions = KEYS.map((name) => cell(name).version);
        const compare = KEYS.map((name, i) => ({ key: name, version: step.kind === 'transfer' && step.stale && i === keyIndex % 2 && (versions[i] ?? 0) > 0 ? (versions[i] ?? 0) - 1 : (versions[i] ?? 0) }));
        const base = {
          ...span,
          key: KEYS[0],
          type: 'txn' as const,
          compare,
          success: KEYS.map((name) => ({ op: 'put' as const, key: name, value: `${written}${name.slice(-1)}`, ...ttlFields(step.kind === 'transfer' ? step.ttl : null) })),
          failure: KEYS.map((name) => ({ op: 'get' as const, key: name })),
        };
        if (step.kind === 'lostTransfer') {
          history.push({ ...base, status: 'unknown' });
          return;
        }
        const succeeded = compare.every((compared, i) => compared.version === versions[i]);
        let results: TxnStepResult[];
        if (succeeded) {
          index += 1;
          for (const name of KEYS) store.set(name, { value: `${written}${name.slice(-1)}`, version: index, ...expiry(step.ttl) });
          results = KEYS.map((name) => ({ op: 'put', key: name, version: index }));
        } else {
          results = KEYS.map((name) => ({ op: 'get', key: name, value: cell(name).value, version: cell(name).version }));
        }
        history.push(timing.indeterminate ? { ...base, status: 'unknown' } : { ...base, status: 'ok', succeeded, results });
        return;
      }
    }
  });
  // A cas may name a version only an unknown write produced; keep such histories, they exercise the permissive path.
  return history;
}

const historyArbitrary = fc
  .array(fc.record({ step: stepArbitrary, timing: timingArbitrary, keyIndex: fc.integer({ min: 0, max: 1 }) }), { minLength: 1, maxLength: 40 })
  .map(sequentialHistory);

/**
 * Reads of both keys whose values were both written by one transfer, with what the second key held
 * before that transfer: showing it instead is a torn read no order can explain.
 */
function tearableReads(history: readonly Operation[]): { read: TxnOperation; before: { value: string | null; version: number } }[] {
  const found: { read: TxnOperation; before: { value: string | null; version: number } }[] = [];
  for (const read of history) {
    if (read.type !== 'txn' || read.compare.length > 0 || read.results === undefined) continue;
    const [first, second] = read.results;
    if (first?.op !== 'get' || second?.op !== 'get' || first.value === null || second.value === null) continue;
    const writer = history.find(
      (operation) => operation.type === 'txn' && operation.success.some((put) => put.op === 'put' && put.key === first.key && put.value === first.value),
    );
    if (writer?.type !== 'txn' || !writer.success.some((put) => put.op === 'put' && put.key === second.key && put.value === second.value)) continue;
    // What the second key held just before the writer: the latest value read of it, at a lower version, by a read that ended before the writer began.
    const earlier = history
      .flatMap((operation) => observedValues(operation, second.key))
      .filter((seen) => seen.version < second.version && seen.completedAtMs < writer.invokedAtMs)
      .sort((a, b) => b.version - a.version)[0];
    // Absent is no tear when a TTL write of the key may have expired after the transfer.
    const mayExpire = history.some((operation) => possibleWrites(operation).some((write) => write.key === second.key && write.ttlMs !== undefined));
    if (earlier !== undefined && !(earlier.value === null && mayExpire)) found.push({ read, before: { value: earlier.value, version: earlier.version } });
  }
  return found;
}

function observedValues(operation: Operation, key: string): { value: string | null; version: number; completedAtMs: number }[] {
  if (operation.type === 'get' && operation.key === key && operation.status === 'ok') {
    return [{ value: operation.value ?? null, version: operation.version ?? 0, completedAtMs: operation.completedAtMs }];
  }
  if (operation.type !== 'txn') return [];
  return (operation.results ?? []).flatMap((result) =>
    result.op === 'get' && result.key === key ? [{ value: result.value, version: result.version, completedAtMs: operation.completedAtMs }] : [],
  );
}

/** The write that put `value` on `key` (values are unique). */
function writerOf(history: readonly Operation[], key: string, value: string): Operation | undefined {
  return history.find((operation) => possibleWrites(operation).some((write) => write.key === key && write.value === value));
}

/**
 * Reads that found a value whose determinate write returned before they began, and that returned
 * before every TTL write of the key that might be current then (any but those that returned before
 * that write began) could have expired: finding the key absent instead has no explanation (the
 * generator never deletes).
 */
function tooEarlyForAbsence(history: readonly Operation[]): GetOperation[] {
  return history.filter((read): read is GetOperation => {
    if (read.type !== 'get' || typeof read.value !== 'string') return false;
    const writer = writerOf(history, read.key, read.value);
    if (writer === undefined || !precedes(writer, read)) return false;
    return history.every((other) =>
      possibleWrites(other).every(
        (write) => write.key !== read.key || write.ttlMs === undefined || precedes(other, writer) || earliestExpiryMs(other.invokedAtMs, write.ttlMs) > read.completedAtMs,
      ),
    );
  });
}

/**
 * The values whose determinate write returned, with their keys: once every operation has returned,
 * a read that finds such a key absent and a later read that finds the value again have no
 * explanation — the value "came back".
 */
function cameBackCandidates(history: readonly Operation[]): { key: string; value: string }[] {
  return history.flatMap((write) =>
    write.status === 'ok' ? possibleWrites(write).flatMap((put) => (put.value === null ? [] : [{ key: put.key, value: put.value }])) : [],
  );
}

/** The version the history tied to `value` on `key`: a read of it, a cas that wrote it, a transfer's put of it. */
function versionOf(history: readonly Operation[], key: string, value: string): number | undefined {
  for (const operation of history) {
    if (operation.type === 'get' && operation.key === key && operation.value === value) return operation.version;
    if (operation.type === 'cas' && operation.key === key && operation.value === value && operation.status === 'ok') return operation.version;
    if (operation.type !== 'txn' || operation.status !== 'ok') continue;
    const seen = (operation.results ?? []).find((result) => result.op === 'get' && result.key === key && result.value === value);
    if (seen?.op === 'get') return seen.version;
    const index = operation.success.findIndex((write) => write.op === 'put' && write.key === key && write.value === value);
    const result = operation.succeeded === true ? operation.results?.[index] : undefined;
    if (index >= 0 && result?.op === 'put') return result.version;
  }
  return undefined;
}

describe('chaos checker: properties', function () {
  this.timeout(120_000);

  it(`accepts every history of a sequential register with overlapping timings (SEED=${SEED})`, () => {
    fc.assert(
      fc.property(historyArbitrary, (history) => {
        expect(checkHistory(history).verdict).to.equal('linearizable');
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it(`rejects the same history with one read changed to a value never written (SEED=${SEED})`, () => {
    const withRead = historyArbitrary.filter((history) => history.some((operation) => operation.type === 'get'));
    fc.assert(
      fc.property(withRead, fc.nat(), (history, pick) => {
        const reads = history.filter((operation) => operation.type === 'get');
        const target = reads[pick % reads.length] as Operation;
        const mutated = history.map((operation) => (operation === target ? { ...operation, value: 'never-written', version: 999_999 } : operation));
        expect(checkHistory(mutated).verdict).to.equal('violation');
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it(`rejects the same history with one read changed to a value written only after it returned (SEED=${SEED})`, () => {
    const future = (history: Operation[]): [Operation, Operation][] =>
      history.flatMap((read) =>
        read.type !== 'get'
          ? []
          : history
              .filter((write) => (write.type === 'put' || write.type === 'cas') && write.key === read.key && write.invokedAtMs > read.completedAtMs)
              .map((write): [Operation, Operation] => [read, write]),
      );
    fc.assert(
      fc.property(
        historyArbitrary.filter((history) => future(history).length > 0),
        fc.nat(),
        (history, pick) => {
          const pairs = future(history);
          const [read, write] = pairs[pick % pairs.length] as [Operation, Operation];
          if (write.type !== 'put' && write.type !== 'cas') throw new Error('unreachable');
          const mutated = history.map((operation) => (operation === read ? { ...operation, value: write.value, version: 999_999 } : operation));
          expect(checkHistory(mutated).verdict).to.equal('violation');
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it(`rejects the same history with a read of both keys torn across a transfer (SEED=${SEED})`, () => {
    fc.assert(
      fc.property(
        historyArbitrary.filter((history) => tearableReads(history).length > 0),
        fc.nat(),
        (history, pick) => {
          const candidates = tearableReads(history);
          const { read, before } = candidates[pick % candidates.length] as (typeof candidates)[number];
          const [first, second] = read.results ?? [];
          if (first === undefined || second?.op !== 'get') throw new Error('unreachable');
          const torn: TxnOperation = { ...read, results: [first, { ...second, value: before.value, version: before.version }] };
          expect(checkHistory(history.map((operation) => (operation === read ? torn : operation))).verdict).to.equal('violation');
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it(`rejects the same history with a read changed to find its key absent before any TTL could run out (SEED=${SEED})`, () => {
    fc.assert(
      fc.property(
        historyArbitrary.filter((history) => tooEarlyForAbsence(history).length > 0),
        fc.nat(),
        (history, pick) => {
          const reads = tooEarlyForAbsence(history);
          const target = reads[pick % reads.length] as GetOperation;
          const mutated = history.map((operation) => (operation === target ? { ...target, value: null, version: 0 } : operation));
          expect(checkHistory(mutated).verdict).to.equal('violation');
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it(`rejects the same history followed by a read that finds a written key absent and one that finds its value again ("came back", SEED=${SEED})`, () => {
    fc.assert(
      fc.property(
        historyArbitrary.filter((history) => cameBackCandidates(history).length > 0),
        fc.nat(),
        (history, pick) => {
          const candidates = cameBackCandidates(history);
          const { key, value } = candidates[pick % candidates.length] as (typeof candidates)[number];
          const endMs = Math.max(...history.map((operation) => operation.completedAtMs));
          const read = { key, client: 9, type: 'get' as const, status: 'ok' as const };
          // The value's version as the history tied it, so the only contradiction is the order.
          const mutated: Operation[] = [
            ...history,
            { ...read, id: history.length, invokedAtMs: endMs + 1, completedAtMs: endMs + 2, value: null, version: 0 },
            { ...read, id: history.length + 1, invokedAtMs: endMs + 3, completedAtMs: endMs + 4, value, version: versionOf(history, key, value) ?? 888_888 },
          ];
          const check = checkHistory(mutated);
          expect(check.verdict).to.equal('violation');
          expect(check.keys.find((key) => key.verdict === 'violation')?.reason).to.match(/came back/);
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});
