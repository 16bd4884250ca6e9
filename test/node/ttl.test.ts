/**
 * Issue 18: keys that expire, decided in the log. The state machine removes a key when an entry
 * whose log time reached its expiry applies — the same on every replica — through an index by
 * expiry time; snapshots carry expiries; a write without a TTL clears one.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { checkTtl, MAX_TTL_MS } from '../../src/common/index.js';
import { ExpiryIndex } from '../../src/node/expiry-index.js';
import { CommandOp, encodeCommand, TxnOpKind, type WriteRequest } from '../../src/node/kv-command.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';

const b = (text: string): Buffer => Buffer.from(text, 'utf8');

function apply(machine: KvStateMachine, request: WriteRequest, atMs: number): void {
  machine.applyCommand(machine.appliedIndex + 1, encodeCommand(request, atMs));
}

const put = (key: string, value: string, ttlMs?: number): WriteRequest => ({ op: CommandOp.Put, key: b(key), value: b(value), ...(ttlMs === undefined ? {} : { ttlMs }) });
const expire: WriteRequest = { op: CommandOp.Expire, key: new Uint8Array(0) };

describe('node/TTL: expiry in the log', () => {
  it('removes a key once an entry with a log time at or past its expiry applies, and not before', () => {
    const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
    apply(machine, put('k', 'v', 1000), 5000);
    expect(machine.get('k')?.expiresAtMs).to.equal(6000);
    expect(machine.nextExpiryMs).to.equal(6000);
    apply(machine, expire, 5999);
    expect(machine.get('k')?.value.toString()).to.equal('v');
    apply(machine, expire, 6000);
    expect(machine.get('k')).to.equal(undefined);
    expect(machine.expiredTotal).to.equal(1);
    expect(machine.nextExpiryMs).to.equal(undefined);
  });

  it('lets any command remove what is due before it runs: a cas on an expired key finds it absent', () => {
    const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
    apply(machine, put('k', 'v', 100), 1000);
    const result = machine.applyCommand(machine.appliedIndex + 1, encodeCommand({ op: CommandOp.Cas, key: b('k'), value: b('w'), expectedVersion: 0 }, 1100));
    expect(result).to.deep.include({ kind: 'cas', ok: true });
    expect(machine.get('k')?.expiresAtMs, 'the cas wrote it without a TTL').to.equal(0);
  });

  it('a put without a TTL clears one; a newer TTL replaces an older; deleting drops it', () => {
    const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
    apply(machine, put('a', '1', 100), 1000);
    apply(machine, put('a', '2'), 1010);
    apply(machine, put('b', '1', 100), 1000);
    apply(machine, put('b', '2', 5000), 1010);
    apply(machine, put('c', '1', 100), 1000);
    apply(machine, { op: CommandOp.Delete, key: b('c') }, 1010);
    apply(machine, put('c', '2'), 1020);
    apply(machine, expire, 2000);
    expect(machine.get('a')?.value.toString()).to.equal('2');
    expect(machine.get('b')?.value.toString()).to.equal('2');
    expect(machine.get('c')?.value.toString()).to.equal('2');
    expect(machine.expiredTotal).to.equal(0);
    apply(machine, expire, 6010);
    expect(machine.get('b')).to.equal(undefined);
  });

  it('expires transaction puts with a TTL', () => {
    const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
    apply(machine, { op: CommandOp.Txn, key: b('{t}a'), txn: { compares: [], failure: [], success: [
      { kind: TxnOpKind.Put, key: b('{t}a'), value: b('x'), ttlMs: 50 },
      { kind: TxnOpKind.Put, key: b('{t}b'), value: b('y') },
    ] } }, 1000);
    apply(machine, expire, 1050);
    expect(machine.get('{t}a')).to.equal(undefined);
    expect(machine.get('{t}b')?.value.toString()).to.equal('y');
  });

  it('carries expiries in snapshots: a restored replica expires the same keys at the same log time', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined })), { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 600 }), (writes, later) => {
      const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
      for (const [i, [key, ttl]] of writes.entries()) apply(machine, put(`k${key}`, `v${i}`, ttl), 1000 + i);
      const restored = KvStateMachine.fromSnapshot(machine.encodeSnapshot());
      expect(restored.encodeSnapshot().equals(machine.encodeSnapshot())).to.equal(true);
      apply(machine, expire, 1000 + writes.length + later);
      apply(restored, expire, 1000 + writes.length + later);
      expect(restored.encodeSnapshot().equals(machine.encodeSnapshot()), 'the same keys expired').to.equal(true);
      expect(restored.nextExpiryMs).to.equal(machine.nextExpiryMs);
    }), { seed: 1807, numRuns: 300 });
  });

  it('the expiry index hands out due entries earliest first and skips stale ones', () => {
    const index = new ExpiryIndex();
    for (const [i, at] of [50, 10, 40, 20, 30].entries()) index.add(`k${i}`, i, at);
    expect(index.takeDue(35).map((entry) => entry.expiresAtMs)).to.deep.equal([10, 20, 30]);
    expect(index.earliest((key) => key !== 'k2')).to.equal(50);
    expect(index.size).to.equal(1);
  });

  it('refuses a TTL that is not a whole number from 1 ms to 365 days, naming the limit', () => {
    expect(checkTtl(0).ok).to.equal(true);
    expect(checkTtl(MAX_TTL_MS).ok).to.equal(true);
    for (const bad of [-1, 0.5, MAX_TTL_MS + 1, Number.NaN]) {
      const check = checkTtl(bad);
      expect(check.ok).to.equal(false);
      if (!check.ok) expect(check.message).to.contain('from 1 to 31536000000 (365 days)');
    }
  });
});
