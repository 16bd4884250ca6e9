/** Transactions as a leader proposes them, for property tests of the codec and the checks. */
import fc from 'fast-check';
import { MAX_TTL_MS } from '../../../src/common/index.js';
import { CommandOp, TxnCompareKind, TxnOpKind, type TxnCompare, type TxnOp, type TxnSpec, type WriteRequest } from '../../../src/node/kv-command.js';

const key = fc.uint8Array({ minLength: 1, maxLength: 20 });
const value = fc.uint8Array({ maxLength: 40 });

const compare: fc.Arbitrary<TxnCompare<Uint8Array, Uint8Array>> = fc.oneof(
  fc.record({ kind: fc.constant(TxnCompareKind.Value as const), key, value }),
  fc.record({ kind: fc.constant(TxnCompareKind.Version as const), key, version: fc.nat() }),
  fc.record({ kind: fc.constantFrom(TxnCompareKind.Exists as const, TxnCompareKind.Absent as const), key }),
);

const op: fc.Arbitrary<TxnOp<Uint8Array, Uint8Array>> = fc.oneof(
  fc.record({ kind: fc.constant(TxnOpKind.Put as const), key, value }),
  fc.record({ kind: fc.constant(TxnOpKind.Put as const), key, value, ttlMs: fc.integer({ min: 1, max: MAX_TTL_MS }) }),
  fc.record({ kind: fc.constantFrom(TxnOpKind.Delete as const, TxnOpKind.Get as const), key }),
);

/** A transaction's spec (not checked against the limits: the codec carries any). */
export const txnSpec: fc.Arbitrary<TxnSpec<Uint8Array, Uint8Array>> = fc.record({
  compares: fc.array(compare, { maxLength: 4 }),
  success: fc.array(op, { maxLength: 4 }),
  failure: fc.array(op, { maxLength: 4 }),
});

/** A transaction write request, with or without a session. */
export const txnRequest: fc.Arbitrary<WriteRequest> = fc.tuple(
  txnSpec,
  fc.option(fc.record({ clientId: fc.string({ minLength: 1, maxLength: 30 }), seq: fc.nat() }), { nil: undefined }),
).map(([txn, session]) => ({ op: CommandOp.Txn, key: txn.compares[0]?.key ?? Uint8Array.of(1), txn, ...(session === undefined ? {} : { session }) }));
