import { expect } from 'chai';
import fc from 'fast-check';
import { CommandOp, type CommandFingerprint } from '../../src/node/kv-command.js';
import { ResultRing } from '../../src/node/result-ring.js';
import type { AppliedResult } from '../../src/node/session-table.js';

interface Row {
  session: string;
  seq: number;
  appliedAtMs: number;
  fingerprint: CommandFingerprint | undefined;
  result: AppliedResult;
}

const fingerprintArb: fc.Arbitrary<CommandFingerprint | undefined> = fc.option(
  fc.record({
    op: fc.constantFrom(CommandOp.Put, CommandOp.Delete, CommandOp.Cas, CommandOp.Txn),
    keyHash: fc.integer({ min: 0, max: 0xffff_ffff }),
    valueHash: fc.integer({ min: 0, max: 0xffff_ffff }),
    expectedVersion: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  }),
  { nil: undefined },
);

const resultArb: fc.Arbitrary<AppliedResult> = fc.oneof(
  fc.record({ kind: fc.constant('put' as const), version: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) }),
  fc.record({ kind: fc.constant('delete' as const), existed: fc.boolean() }),
  fc.record({ kind: fc.constant('cas' as const), ok: fc.constant(true as const), version: fc.integer({ min: 1, max: 1e12 }) }),
  fc.record({ kind: fc.constant('cas' as const), ok: fc.constant(false as const), currentVersion: fc.integer({ min: 0, max: 1e12 }) }),
  fc.record({
    kind: fc.constant('txn' as const),
    succeeded: fc.boolean(),
    results: fc.array(fc.record({ kind: fc.constant('put' as const), version: fc.integer({ min: 1, max: 1e9 }) }), { maxLength: 3 }),
  }),
);

/** A push (with its row) or a drop of the oldest. */
const stepArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ session: fc.constantFrom('a', 'b', 'c'), seq: fc.integer({ min: 1, max: 2 ** 40 }), appliedAtMs: fc.integer({ min: 0, max: 2 ** 45 }), fingerprint: fingerprintArb, result: resultArb }) },
  { weight: 2, arbitrary: fc.constant('drop' as const) },
);

describe('node/result-ring', () => {
  it('holds exactly what an array of the pushed rows minus the dropped ones holds, across growing and shrinking (property)', function () {
    const seed = Number(process.env['SEED'] ?? Date.now());
    console.log(`      result ring property seed ${seed} (SEED=${seed} replays)`);
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 400 }), (steps) => {
        const ring = new ResultRing<string>();
        const model: Row[] = [];
        let head = 0;
        for (const step of steps) {
          if (step === 'drop') {
            ring.dropOldest();
            if (model.length > 0) {
              model.shift();
              head += 1;
            }
          } else {
            const position = ring.push(step.session, step.seq, step.appliedAtMs, step.fingerprint, step.result);
            expect(position).to.equal(head + model.length);
            model.push(step);
          }
          expect(ring.size).to.equal(model.length);
          expect(ring.headPosition).to.equal(head);
          expect(ring.slots).to.be.at.least(model.length);
          if (ring.slots > 16) expect(ring.slots).to.be.at.most(4 * Math.max(model.length, 1));
        }
        for (const [i, row] of model.entries()) {
          const position = head + i;
          expect(ring.sessionAt(position)).to.equal(row.session);
          expect(ring.seqAt(position)).to.equal(row.seq);
          expect(ring.appliedAtMs(position)).to.equal(row.appliedAtMs);
          expect(ring.fingerprintAt(position)).to.deep.equal(row.fingerprint);
          expect(ring.resultAt(position)).to.deep.equal(row.result);
        }
      }),
      { seed, numRuns: 200 },
    );
  });

  it('refuses a position it does not hold, and gives memory back when emptied', () => {
    const ring = new ResultRing<string>();
    for (let i = 0; i < 1000; i++) ring.push('a', i + 1, i, undefined, { kind: 'put', version: i + 1 });
    expect(ring.slots).to.equal(1024);
    expect(() => ring.seqAt(1000)).to.throw(/outside \[0, 1000\)/);
    for (let i = 0; i < 999; i++) ring.dropOldest();
    expect(() => ring.seqAt(0)).to.throw(/outside \[999, 1000\)/);
    expect(ring.seqAt(999)).to.equal(1000);
    expect(ring.resultAt(999)).to.deep.equal({ kind: 'put', version: 1000 });
    ring.dropOldest();
    ring.dropOldest(); // empty: nothing happens
    expect(ring.size).to.equal(0);
    expect(ring.slots).to.equal(16);
    expect(ring.push('b', 7, 7, undefined, { kind: 'delete', existed: true })).to.equal(1000);
  });

  it('will not remember an expire entry, which has no session', () => {
    expect(() => new ResultRing<string>().push('a', 1, 1, undefined, { kind: 'expire' })).to.throw(/no session/);
  });
});
