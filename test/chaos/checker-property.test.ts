/**
 * Property tests of the checker against a naive reference: a sequential register execution, given
 * random overlapping timings around its linearization points, is always accepted; the same history
 * with one read changed to a value never written, or to a value written only after the read
 * returned, is always rejected. SEED=n replays a run.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { checkHistory, type Operation } from '../../src/chaos/index.js';

const SEED = process.env['SEED'] === undefined ? Date.now() % 2 ** 31 : Number(process.env['SEED']);

type Step = { kind: 'get' } | { kind: 'put' } | { kind: 'cas'; stale: boolean } | { kind: 'lostWrite' };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'get' }),
  fc.constant<Step>({ kind: 'put' }),
  fc.boolean().map<Step>((stale) => ({ kind: 'cas', stale })),
  fc.constant<Step>({ kind: 'lostWrite' }),
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

/**
 * Runs the steps on a reference register (versions = a Raft-like index counter) and gives each
 * operation an interval around its linearization point. `lostWrite` steps are timed-out writes that
 * never took effect.
 */
function sequentialHistory(steps: readonly { step: Step; timing: Timing }[]): Operation[] {
  let value: string | null = null;
  let version = 0;
  let index = 0;
  let pointMs = 100;
  const history: Operation[] = [];
  steps.forEach(({ step, timing }, id) => {
    pointMs += timing.gapMs;
    const span = { id, client: id % 4, key: 'k', invokedAtMs: pointMs - timing.beforeMs, completedAtMs: pointMs + timing.afterMs };
    const written = `v${id}`;
    switch (step.kind) {
      case 'get':
        history.push({ ...span, type: 'get', status: 'ok', value, version });
        return;
      case 'put':
        index += 1 + (id % 3);
        value = written;
        version = index;
        history.push({ ...span, type: 'put', value: written, status: timing.indeterminate ? 'unknown' : 'ok' });
        return;
      case 'cas': {
        const expectedVersion = step.stale && version > 0 ? version - 1 : version;
        if (expectedVersion !== version) {
          history.push({ ...span, type: 'cas', expectedVersion, value: written, status: 'conflict', currentVersion: version });
          return;
        }
        index += 1;
        value = written;
        version = index;
        history.push(
          timing.indeterminate
            ? { ...span, type: 'cas', expectedVersion, value: written, status: 'unknown' }
            : { ...span, type: 'cas', expectedVersion, value: written, status: 'ok', version },
        );
        return;
      }
      case 'lostWrite':
        history.push({ ...span, type: 'put', value: written, status: 'unknown' });
        return;
    }
  });
  // A cas may name a version only an unknown write produced; keep such histories, they exercise the permissive path.
  return history;
}

const historyArbitrary = fc.array(fc.record({ step: stepArbitrary, timing: timingArbitrary }), { minLength: 1, maxLength: 40 }).map(sequentialHistory);

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
              .filter((write) => write.type !== 'get' && write.invokedAtMs > read.completedAtMs)
              .map((write): [Operation, Operation] => [read, write]),
      );
    fc.assert(
      fc.property(
        historyArbitrary.filter((history) => future(history).length > 0),
        fc.nat(),
        (history, pick) => {
          const pairs = future(history);
          const [read, write] = pairs[pick % pairs.length] as [Operation, Operation];
          if (write.type === 'get' || write.type === 'delete') throw new Error('unreachable');
          const mutated = history.map((operation) => (operation === read ? { ...operation, value: write.value, version: 999_999 } : operation));
          expect(checkHistory(mutated).verdict).to.equal('violation');
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});
