import { expect } from 'chai';
import fc from 'fast-check';
import { encodeBatchRequest } from '../../src/client/batch-codec.js';
import { BatchRequest, type BatchRequestItem, type Session } from '../../src/gen/kvstore/v1/kvstore.js';

const SEED = { seed: Number(process.env['SEED'] ?? Date.now()), verbose: true };

const uint64 = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const bytes = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 100, maxLength: 1100 })).map((array) => Buffer.from(array));
// Client ids: empty (left out on the wire), ASCII like a UUID, any Unicode (multi-byte UTF-8), or lone surrogates.
const session: fc.Arbitrary<Session | undefined> = fc.option(
  fc.record({ clientId: fc.oneof(fc.constant(''), fc.uuid(), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 })), seq: uint64 }),
  { nil: undefined },
);
const withSession = <T extends object>(value: T, s: Session | undefined): T & { session?: Session } => (s === undefined ? value : { ...value, session: s });

const op: fc.Arbitrary<BatchRequestItem['op']> = fc.oneof(
  fc.constant(undefined),
  fc.record({ key: bytes, epoch: uint64 }).map((value) => ({ $case: 'get' as const, value })),
  fc.tuple(fc.record({ key: bytes, value: bytes, epoch: uint64, ttlMs: uint64 }), session).map(([value, s]) => ({ $case: 'put' as const, value: withSession(value, s) })),
  fc.tuple(fc.record({ key: bytes, epoch: uint64 }), session).map(([value, s]) => ({ $case: 'delete' as const, value: withSession(value, s) })),
  fc.tuple(fc.record({ key: bytes, expectedVersion: uint64, value: bytes, epoch: uint64 }), session).map(([value, s]) => ({ $case: 'cas' as const, value: withSession(value, s) })),
  fc.tuple(fc.record({ key: bytes, value: bytes }), session, uint64).map(([put, s, epoch]) => ({
    $case: 'txn' as const,
    value: withSession({ compares: [], success: [{ op: { $case: 'put' as const, value: { ...put, ttlMs: 0 } } }], failure: [], epoch }, s),
  })),
);
const item: fc.Arbitrary<BatchRequestItem> = fc.record({ requestId: uint64, op }).map(({ requestId, op: itemOp }) => (itemOp === undefined ? { requestId } : { requestId, op: itemOp }));

describe('client/batch-codec', () => {
  it('writes exactly the bytes of the generated BatchRequest encoder, for every item kind', () => {
    fc.assert(
      fc.property(fc.array(item, { maxLength: 12 }), (items) => {
        const request: BatchRequest = { items };
        const ours = encodeBatchRequest(request);
        const generated = BatchRequest.encode(request).finish();
        expect(Buffer.compare(ours, Buffer.from(generated))).to.equal(0);
        expect(BatchRequest.decode(ours)).to.deep.equal(BatchRequest.decode(generated));
      }),
      SEED,
    );
  });

  it('refuses a number that is not a uint64, as the generated encoder does, instead of writing it wrong', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 64]) {
      const request: BatchRequest = { items: [{ requestId: 1, op: { $case: 'get', value: { key: Buffer.from('k'), epoch: bad } } }] };
      expect(() => BatchRequest.encode(request).finish(), `generated, ${bad}`).to.throw();
      expect(() => encodeBatchRequest(request), String(bad)).to.throw(RangeError, 'not a uint64');
    }
  });

  it('writes an empty batch and a put at the largest request id as the generated encoder does', () => {
    expect(encodeBatchRequest({ items: [] }).length).to.equal(0);
    const request: BatchRequest = {
      items: [{ requestId: Number.MAX_SAFE_INTEGER, op: { $case: 'put', value: { key: Buffer.from('k'), value: Buffer.alloc(1024, 7), session: { clientId: 'é', seq: 2 ** 40 }, epoch: 1, ttlMs: 0 } } }],
    };
    expect(encodeBatchRequest(request).equals(Buffer.from(BatchRequest.encode(request).finish()))).to.equal(true);
  });
});
