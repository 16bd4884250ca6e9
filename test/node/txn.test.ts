/**
 * Issue 18: transactions in the log and the state machine (atomic, one entry, exactly once under
 * retries, carried by snapshots), the node's checks of a TxnRequest, and hash tags.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { checkKeyBytes, hashedPart, loadHasher, MAX_TXN_BYTES, MAX_TXN_OPS, shardForKey, TXN_BATCH_SLOTS } from '../../src/common/index.js';
import type { TxnOp as WireOp, TxnRequest } from '../../src/gen/kvstore/v1/kvstore.js';
import { MAX_BATCH_REQUEST_BYTES, MAX_TXN_REQUEST_BYTES } from '../../src/node/client-limits.js';
import {
  CommandOp, decodeCommand, encodeCommand, TxnCompareKind, TxnOpKind, type TxnSpec, type WriteRequest,
} from '../../src/node/kv-command.js';
import { KvStateMachine, type WriteResult } from '../../src/node/kv-state-machine.js';
import { checkTxnRequest } from '../../src/node/txn-request.js';
import { MAX_BATCH_ITEMS } from '../../src/common/index.js';
import { txnRequest } from './support/txn-arbitrary.js';

const b = (text: string): Buffer => Buffer.from(text, 'utf8');
const SEED = { seed: 1806, numRuns: 500 };

function txn(spec: Partial<TxnSpec<Uint8Array, Uint8Array>>, seq?: number): WriteRequest {
  const full = { compares: [], success: [], failure: [], ...spec };
  return { op: CommandOp.Txn, key: b('k'), txn: full, ...(seq === undefined ? {} : { session: { clientId: 'c1', seq } }) };
}

function machineWith(entries: [string, string][]): KvStateMachine {
  const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
  for (const [key, value] of entries) machine.applyCommand(machine.appliedIndex + 1, encodeCommand({ op: CommandOp.Put, key: b(key), value: b(value) }, 1));
  return machine;
}

function apply(machine: KvStateMachine, request: WriteRequest, atMs = 1): WriteResult {
  return machine.applyCommand(machine.appliedIndex + 1, encodeCommand(request, atMs));
}

describe('node/transactions: the command and the state machine', () => {
  it('round-trips every transaction through the log encoding', () => {
    fc.assert(fc.property(txnRequest, fc.integer({ min: 0, max: 2 ** 47 }), (request, atMs) => {
      const decoded = decodeCommand(encodeCommand(request, atMs));
      if (decoded.op !== CommandOp.Txn || request.op !== CommandOp.Txn) throw new Error('not a transaction');
      const asBytes = (key: string): Buffer => Buffer.from(key, 'latin1');
      expect(decoded.txn.compares.map((c) => ({ ...c, key: asBytes(c.key) }))).to.deep.equal(request.txn.compares.map((c) => ({
        ...c, key: Buffer.from(c.key), ...(c.kind === TxnCompareKind.Value ? { value: Buffer.from(c.value) } : {}),
      })));
      for (const branch of ['success', 'failure'] as const) {
        expect(decoded.txn[branch].map((o) => ({ ...o, key: asBytes(o.key) }))).to.deep.equal(request.txn[branch].map((o) => ({
          ...o, key: Buffer.from(o.key), ...(o.kind === TxnOpKind.Put ? { value: Buffer.from(o.value) } : {}),
        })));
      }
      expect(decoded.session).to.deep.equal(request.session);
    }), SEED);
  });

  it('checks every compare kind and runs the branch it picks, in order, at one version', () => {
    const machine = machineWith([['a', '1'], ['b', '2']]);
    const versionOfA = machine.get('a')?.version ?? 0;
    const held = apply(machine, txn({
      compares: [
        { kind: TxnCompareKind.Value, key: b('a'), value: b('1') },
        { kind: TxnCompareKind.Version, key: b('a'), version: versionOfA },
        { kind: TxnCompareKind.Exists, key: b('b') },
        { kind: TxnCompareKind.Absent, key: b('c') },
        { kind: TxnCompareKind.Version, key: b('c'), version: 0 },
      ],
      success: [
        { kind: TxnOpKind.Put, key: b('c'), value: b('3') },
        { kind: TxnOpKind.Get, key: b('c') },
        { kind: TxnOpKind.Delete, key: b('b') },
        { kind: TxnOpKind.Get, key: b('b') },
      ],
      failure: [{ kind: TxnOpKind.Delete, key: b('a') }],
    }));
    const index = machine.appliedIndex;
    expect(held).to.deep.equal({
      kind: 'txn', succeeded: true, results: [
        { kind: 'put', version: index },
        { kind: 'get', version: index, value: b('3') },
        { kind: 'delete', existed: true },
        { kind: 'get', version: 0, value: undefined },
      ],
    });
    expect(machine.get('a')?.value.toString()).to.equal('1');
    const failed = apply(machine, txn({
      compares: [{ kind: TxnCompareKind.Value, key: b('a'), value: b('1') }, { kind: TxnCompareKind.Exists, key: b('b') }],
      success: [{ kind: TxnOpKind.Delete, key: b('a') }],
      failure: [{ kind: TxnOpKind.Get, key: b('a') }, { kind: TxnOpKind.Put, key: b('b'), value: b('again') }],
    }));
    expect(failed).to.deep.equal({
      kind: 'txn', succeeded: false, results: [
        { kind: 'get', version: versionOfA, value: b('1') },
        { kind: 'put', version: machine.appliedIndex },
      ],
    });
    expect(machine.get('a')?.value.toString(), 'the success branch did not run').to.equal('1');
  });

  it('answers a retry with the first result, its reads read again; refuses it once a key it read changed, and refuses another transaction at that seq', () => {
    const machine = machineWith([['a', '1']]);
    const first = txn({ success: [{ kind: TxnOpKind.Get, key: b('a') }, { kind: TxnOpKind.Put, key: b('b'), value: b('x') }] }, 7);
    const result = apply(machine, first);
    expect(result.kind).to.equal('txn');
    const keys = machine.keyCount;
    expect(apply(machine, first), 'a retry gets the same answer').to.deep.equal(result);
    expect(machine.keyCount).to.equal(keys);
    // Through a snapshot (format 3 carries the transaction's remembered result).
    const restored = KvStateMachine.fromSnapshot(machine.encodeSnapshot());
    expect(apply(restored, first), 'after a snapshot too').to.deep.equal(result);
    apply(machine, { op: CommandOp.Put, key: b('a'), value: b('2') });
    expect(apply(machine, first)).to.deep.equal({ kind: 'txn-reads-gone', seq: 7 });
    const other = txn({ success: [{ kind: TxnOpKind.Put, key: b('b'), value: b('y') }] }, 7);
    expect(apply(machine, other)).to.deep.include({ kind: 'session-mismatch', seq: 7 });
    expect(machine.get('b')?.value.toString(), 'nothing applied twice').to.equal('x');
  });

  it('gives identical replicas identical bytes: a transaction applies the same on every machine', () => {
    fc.assert(fc.property(fc.array(txnRequest, { minLength: 1, maxLength: 6 }), (requests) => {
      const one = machineWith([['a', '1']]);
      const two = KvStateMachine.fromSnapshot(one.encodeSnapshot());
      for (const request of requests) expect(apply(one, request)).to.deep.equal(apply(two, request));
      expect(one.encodeSnapshot().equals(two.encodeSnapshot())).to.equal(true);
    }), SEED);
  });
});

describe('node/transactions: the node\'s checks of a TxnRequest', () => {
  before(async () => { await loadHasher(); });

  const put = (key: string, value = 'v'): WireOp => ({ op: { $case: 'put', value: { key: b(key), value: b(value), ttlMs: 0 } } });
  const get = (key: string): WireOp => ({ op: { $case: 'get', value: { key: b(key) } } });
  const request = (fields: Partial<TxnRequest>): TxnRequest => ({ compares: [], success: [], failure: [], session: undefined, epoch: 0, ...fields });

  it('refuses keys of two shards, naming both and pointing at hash tags; one tag keeps them together', () => {
    const shards = 64;
    const [x, y] = ['a', 'b', 'c', 'd', 'e'].filter((key, _i, all) => shardForKey(b(key), shards) !== shardForKey(b(all[0] ?? ''), shards) || key === all[0]);
    const refused = checkTxnRequest(request({ success: [put(x ?? ''), put(y ?? '')] }), shards);
    expect(refused.ok).to.equal(false);
    if (!refused.ok) {
      expect(refused.message).to.match(/spans shards \d+ \(key "a"\) and \d+ \(key "\w"\)/);
      expect(refused.message).to.contain('hash tag');
    }
    const together = checkTxnRequest(request({ success: [put('{u42}cart'), put('{u42}order:1'), get('{u42}x')] }), shards);
    expect(together.ok).to.equal(true);
    if (together.ok) expect(together.shardId).to.equal(shardForKey(b('u42'), shards));
  });

  it('refuses what breaks a limit, naming it: counts, bytes, a key written twice, a compare without a target, a bad key', () => {
    const message = (r: TxnRequest): string => {
      const checked = checkTxnRequest(r, 1);
      return checked.ok ? 'ok' : checked.message;
    };
    const many = Array.from({ length: MAX_TXN_OPS + 1 }, (_, i) => put(`{t}k${i}`));
    expect(message(request({ success: many }))).to.equal(`transaction has ${MAX_TXN_OPS + 1} success operations: the limit is ${MAX_TXN_OPS}`);
    expect(message(request({ failure: many }))).to.equal(`transaction has ${MAX_TXN_OPS + 1} failure operations: the limit is ${MAX_TXN_OPS}`);
    expect(message(request({ success: many.slice(0, MAX_TXN_OPS) }))).to.equal('ok');
    const big = Array.from({ length: 64 }, (_, i) => put(`{t}k${i}`, 'x'.repeat(1024)));
    expect(message(request({ success: big }))).to.match(new RegExp(`holds \\d+ bytes of keys and values: the limit is ${MAX_TXN_BYTES}`));
    expect(message(request({ success: [put('k'), put('k')] }))).to.match(/success operation 2 writes "k" again/);
    expect(message(request({ success: [put('k')], failure: [put('k')] })), 'once per branch').to.equal('ok');
    expect(message(request({ compares: [{ key: b('k'), target: undefined }] }))).to.equal('compare 1 has no target (value, version or exists)');
    expect(message(request({ success: [put('{u1')] }))).to.match(/success operation 1: key has an unbalanced brace/);
    expect(message(request({ success: [put('{}cart')] }))).to.match(/empty hash tag/);
    expect(message(request({ success: [put('k', 'x'.repeat(1025))] }))).to.equal('success operation 1: value is 1025 bytes: the limit is 1024 bytes');
    expect(message(request({}))).to.equal('transaction has no compare and no operation');
  });

  it('keeps the largest legal transaction within its room in a Batch message', () => {
    expect(MAX_TXN_REQUEST_BYTES).to.be.lessThan((MAX_BATCH_REQUEST_BYTES / MAX_BATCH_ITEMS) * TXN_BATCH_SLOTS - 16);
  });
});

describe('common/hash tags', () => {
  before(async () => { await loadHasher(); });

  it('hashes the part in the first {…} only; a key without braces hashes whole, as before', () => {
    expect(Buffer.from(hashedPart(b('{u42}cart'))).toString()).to.equal('u42');
    expect(Buffer.from(hashedPart(b('x{u42}y{z}'))).toString()).to.equal('u42');
    expect(Buffer.from(hashedPart(b('plain'))).toString()).to.equal('plain');
    fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !s.includes('{') && !s.includes('}')), fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), (tag, before, after) => {
      const key = b(`${before.replace(/[{}]/g, '')}{${tag}}${after}`);
      expect(shardForKey(key, 4096)).to.equal(shardForKey(b(tag), 4096));
    }), SEED);
  });

  it('refuses an unbalanced brace and an empty tag, with what a tag looks like', () => {
    expect(checkKeyBytes(b('{u42cart'))).to.deep.equal({ ok: false, message: 'key has an unbalanced brace: a hash tag is {…} with a closing } (e.g. {user42}cart)' });
    expect(checkKeyBytes(b('{}cart'))).to.deep.equal({ ok: false, message: 'key has an empty hash tag {}: put the part to hash between the braces (e.g. {user42}cart)' });
    expect(checkKeyBytes(b('a}b')).ok, 'a closing brace alone is an ordinary character').to.equal(true);
  });
});
