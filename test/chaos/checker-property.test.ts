/**
 * Property tests of the checker against a naive reference: a sequential execution on two keys of
 * one shard — single-key get, put and cas, and transactions that read both keys or transfer new
 * values to both if their versions match (issue 18) — given random overlapping timings around its
 * linearization points, is always accepted; the same history with one read changed to a value
 * never written, or to a value written only after the read returned, or with a transaction's read
 * of both keys torn (one key shown as it was before the transaction that wrote both) is always
 * rejected. SEED=n replays a run.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { checkHistory, type Operation, type TxnOperation, type TxnStepResult } from '../../src/chaos/index.js';

const SEED = process.env['SEED'] === undefined ? Date.now() % 2 ** 31 : Number(process.env['SEED']);

const KEYS = ['{g}a', '{g}b'] as const;

type Step =
  | { kind: 'get' }
  | { kind: 'put' }
  | { kind: 'cas'; stale: boolean }
  | { kind: 'lostWrite' }
  | { kind: 'readBoth' }
  | { kind: 'transfer'; stale: boolean }
  | { kind: 'lostTransfer' };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'get' }),
  fc.constant<Step>({ kind: 'put' }),
  fc.boolean().map<Step>((stale) => ({ kind: 'cas', stale })),
  fc.constant<Step>({ kind: 'lostWrite' }),
  fc.constant<Step>({ kind: 'readBoth' }),
  fc.boolean().map<Step>((stale) => ({ kind: 'transfer', stale })),
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
}

/**
 * Runs the steps on a reference store of two keys (versions = one Raft-like index counter for the
 * shard) and gives each operation an interval around its linearization point. `lostWrite` and
 * `lostTransfer` steps are timed-out writes that never took effect; single-key steps pick their key
 * by `keyIndex`.
 */
function sequentialHistory(steps: readonly { step: Step; timing: Timing; keyIndex: number }[]): Operation[] {
  const store = new Map<string, Cell>(KEYS.map((key) => [key, { value: null, version: 0 }]));
  const cell = (key: string): Cell => store.get(key) as Cell;
  let index = 0;
  let pointMs = 100;
  const history: Operation[] = [];
  steps.forEach(({ step, timing, keyIndex }, id) => {
    pointMs += timing.gapMs;
    const key = KEYS[keyIndex % KEYS.length] as string;
    const span = { id, client: id % 4, key, invokedAtMs: pointMs - timing.beforeMs, completedAtMs: pointMs + timing.afterMs };
    const current = cell(key);
    const written = `v${id}`;
    switch (step.kind) {
      case 'get':
        history.push({ ...span, type: 'get', status: 'ok', value: current.value, version: current.version });
        return;
      case 'put':
        index += 1 + (id % 3);
        store.set(key, { value: written, version: index });
        history.push({ ...span, type: 'put', value: written, status: timing.indeterminate ? 'unknown' : 'ok' });
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
        history.push({ ...span, type: 'put', value: written, status: 'unknown' });
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
          success: KEYS.map((name) => ({ op: 'put' as const, key: name, value: `${written}${name.slice(-1)}` })),
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
          for (const name of KEYS) store.set(name, { value: `${written}${name.slice(-1)}`, version: index });
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
    if (earlier !== undefined) found.push({ read, before: { value: earlier.value, version: earlier.version } });
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
});
