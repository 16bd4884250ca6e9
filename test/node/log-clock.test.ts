import { expect } from 'chai';
import fc from 'fast-check';
import { LOG_CLOCK_SLEW, LogClock } from '../../src/node/log-clock.js';

const T0 = 1_700_000_000_000;
const MINUTE_MS = 60_000;

describe('node/log-clock', () => {
  it('starts a new shard at the wall clock, then follows a correct wall clock exactly', () => {
    const clock = new LogClock();
    expect(clock.stamp({ term: 2, appliedLogTimeMs: 0, wallClockMs: T0, monotonicMs: 50 })).to.equal(T0);
    expect(clock.stamp({ term: 2, appliedLogTimeMs: 0, wallClockMs: T0 + 1_000, monotonicMs: 1_050 })).to.equal(T0 + 1_000);
    expect(clock.stamp({ term: 2, appliedLogTimeMs: T0 + 1_000, wallClockMs: T0 + 61_000, monotonicMs: 61_050 })).to.equal(T0 + 61_000);
  });

  for (const aheadMs of [61_000, 10 * MINUTE_MS + 1_000, 24 * 60 * MINUTE_MS]) {
    it(`does not jump when a new leader's wall clock is ${aheadMs / 1000} s ahead`, () => {
      // The old leader stamped up to T0 + 5 s; the new one, elected in term 3, has applied it.
      const clock = new LogClock();
      const first = clock.stamp({ term: 3, appliedLogTimeMs: T0 + 5_000, wallClockMs: T0 + 5_200 + aheadMs, monotonicMs: 9_000 });
      expect(first).to.equal(T0 + 5_000);
      // Two seconds later by its monotonic clock, log time moved two seconds (and at most 1% more).
      const later = clock.stamp({ term: 3, appliedLogTimeMs: T0 + 5_000, wallClockMs: T0 + 7_200 + aheadMs, monotonicMs: 11_000 });
      expect(later).to.equal(T0 + 5_000 + 2_000 * (1 + LOG_CLOCK_SLEW));
    });
  }

  it('keeps moving, a little slower, under a leader whose wall clock is behind', () => {
    const clock = new LogClock();
    clock.stamp({ term: 4, appliedLogTimeMs: T0, wallClockMs: T0 - 10 * MINUTE_MS, monotonicMs: 0 });
    expect(clock.stamp({ term: 4, appliedLogTimeMs: T0, wallClockMs: T0 - 9 * MINUTE_MS, monotonicMs: MINUTE_MS })).to.equal(T0 + MINUTE_MS * (1 - LOG_CLOCK_SLEW));
  });

  it('starts each term from the applied log time, not from stamps of its own earlier term', () => {
    const clock = new LogClock();
    clock.stamp({ term: 1, appliedLogTimeMs: T0, wallClockMs: T0, monotonicMs: 0 });
    // Proposed in term 1 at T0 + 1 s, perhaps never committed.
    expect(clock.stamp({ term: 1, appliedLogTimeMs: T0, wallClockMs: T0 + 1_000, monotonicMs: 1_000 })).to.equal(T0 + 1_000);
    // Leader again in term 5 an hour later, having applied entries up to T0 + 500 ms only.
    expect(clock.stamp({ term: 5, appliedLogTimeMs: T0 + 500, wallClockMs: T0 + 60 * MINUTE_MS, monotonicMs: 60 * MINUTE_MS })).to.equal(T0 + 500);
  });

  it('never goes below the applied log time or back, and never advances faster than its monotonic clock allows, whatever the wall clock (property)', () => {
    const seed = Number(process.env['SEED'] ?? Date.now());
    const step = fc.record({
      newTerm: fc.boolean(),
      elapsedMs: fc.nat({ max: 120_000 }),
      wallOffsetMs: fc.integer({ min: -24 * 60 * MINUTE_MS, max: 24 * 60 * MINUTE_MS }),
      appliedAdvanceMs: fc.nat({ max: 5_000 }),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        const clock = new LogClock();
        let term = 1;
        let monotonicMs = 0;
        let appliedLogTimeMs = T0;
        let previous: { term: number; stamp: number; monotonicMs: number } | undefined;
        for (const { newTerm, elapsedMs, wallOffsetMs, appliedAdvanceMs } of steps) {
          if (newTerm) term += 1;
          monotonicMs += elapsedMs;
          // Entries stamped by this or other leaders apply, never past what was stamped.
          appliedLogTimeMs = Math.min(appliedLogTimeMs + appliedAdvanceMs, Math.max(appliedLogTimeMs, previous?.stamp ?? appliedLogTimeMs));
          const stamp = clock.stamp({ term, appliedLogTimeMs, wallClockMs: T0 + monotonicMs + wallOffsetMs, monotonicMs });
          expect(stamp).to.be.at.least(appliedLogTimeMs);
          if (previous !== undefined && previous.term === term) {
            expect(stamp).to.be.at.least(previous.stamp);
            const base = Math.max(previous.stamp, appliedLogTimeMs);
            expect(stamp - base).to.be.at.most((monotonicMs - previous.monotonicMs) * (1 + LOG_CLOCK_SLEW) + 1);
          } else {
            expect(stamp).to.equal(appliedLogTimeMs); // a new term starts exactly where the applied log is
          }
          previous = { term, stamp, monotonicMs };
        }
      }),
      { seed, verbose: true },
    );
    console.log(`      log clock property seed ${seed} (SEED=${seed} replays)`);
  });
});
