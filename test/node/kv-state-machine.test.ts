import { expect } from 'chai';
import fc from 'fast-check';
import { CommandOp, decodeCommand, encodeCommand, type WriteRequest } from '../../src/node/kv-command.js';
import { CodecError } from '../../src/node/binary-codec.js';
import { KvStateMachine, keyString } from '../../src/node/kv-state-machine.js';
import { RESULT_RETENTION_MS, SESSION_IDLE_MS } from '../../src/node/session-table.js';
import { FORMAT_1_SNAPSHOT } from './support/format-1-snapshot.js';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');
const T0 = 1_700_000_000_000;

/** Applies requests at consecutive indexes, like a replica applying committed entries. */
class Applier {
  readonly machine: KvStateMachine;
  constructor(machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }])) {
    this.machine = machine;
  }
  apply(request: WriteRequest, atMs = T0): ReturnType<KvStateMachine['applyCommand']> {
    return this.machine.applyCommand(this.machine.appliedIndex + 1, encodeCommand(request, atMs));
  }
  put(key: string, value: string, session?: { clientId: string; seq: number }, atMs = T0) {
    return this.apply({ op: CommandOp.Put, key: bytes(key), value: bytes(value), ...(session ? { session } : {}) }, atMs);
  }
  value(key: string): string | undefined {
    return this.machine.get(keyString(bytes(key)))?.value.toString('utf8');
  }
}

describe('node/kv-command', () => {
  it('round-trips every command shape', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(CommandOp.Put, CommandOp.Delete, CommandOp.Cas),
        fc.uint8Array({ minLength: 1, maxLength: 20 }),
        fc.uint8Array({ maxLength: 1024 }),
        fc.option(fc.record({ clientId: fc.string({ minLength: 1, maxLength: 40 }), seq: fc.nat() }), { nil: undefined }),
        fc.nat(),
        fc.integer({ min: 0, max: 2 ** 47 }),
        (op, key, value, session, expectedVersion, atMs) => {
          const base = session === undefined ? {} : { session };
          const request: WriteRequest =
            op === CommandOp.Put ? { op, key, value, ...base }
            : op === CommandOp.Delete ? { op, key, ...base }
            : { op, key, value, expectedVersion, ...base };
          const encoded = encodeCommand(request, atMs);
          // Sized exactly, in an allocation of its own: decodeCommand may keep views of it.
          expect([encoded.byteOffset, encoded.byteLength]).to.deep.equal([0, encoded.buffer.byteLength]);
          const decoded = decodeCommand(encoded);
          expect(decoded.op).to.equal(op);
          expect(decoded.proposedAtMs).to.equal(atMs);
          if (decoded.op === CommandOp.Txn || decoded.op === CommandOp.Expire) throw new Error('decoded a transaction or an expire');
          expect(decoded.key).to.equal(keyString(key));
          expect(decoded.session).to.deep.equal(session);
          if (decoded.op !== CommandOp.Delete) expect(Buffer.compare(decoded.value, Buffer.from(value))).to.equal(0);
          if (decoded.op === CommandOp.Cas) expect(decoded.expectedVersion).to.equal(expectedVersion);
        },
      ),
      { seed: Number(process.env['SEED'] ?? Date.now()), verbose: true },
    );
  });

  it('keeps a value as a view of data that owns its memory, and copies it out of shared memory', () => {
    const session = { clientId: 'клиент-7', seq: 3 }; // a multi-byte UTF-8 client id
    const requests: WriteRequest[] = [
      { op: CommandOp.Put, key: bytes('k'), value: bytes('v1'), session },
      { op: CommandOp.Put, key: bytes('k'), value: bytes('v2'), ttlMs: 5000 },
      { op: CommandOp.Cas, key: bytes('k'), value: bytes('v3'), expectedVersion: 4, session },
      { op: CommandOp.Delete, key: bytes('k'), session },
      { op: CommandOp.Expire, key: Buffer.alloc(0) },
    ];
    for (const request of requests) {
      const own = encodeCommand(request, T0);
      expect([own.byteOffset, own.byteLength], `op ${request.op}`).to.deep.equal([0, own.buffer.byteLength]);
      const decoded = decodeCommand(own);
      if (decoded.op === CommandOp.Put || decoded.op === CommandOp.Cas) {
        expect(decoded.value.buffer).to.equal(own.buffer);
        // The same bytes inside a larger buffer: copied out.
        const shared = Buffer.alloc(own.length + 4096);
        own.copy(shared, 100);
        const data = shared.subarray(100, 100 + own.length);
        const copied = decodeCommand(data);
        if (copied.op !== decoded.op) throw new Error('decoded another op');
        expect(copied.value.buffer).to.not.equal(shared.buffer);
        shared.fill(0);
        expect(copied.value.toString()).to.equal(decoded.value.toString());
      }
    }
  });
});

describe('node/kv-state-machine', () => {
  it('versions a key by the Raft index of its last write', () => {
    const kv = new Applier();
    expect(kv.put('a', '1')).to.deep.equal({ kind: 'put', version: 1 });
    kv.machine.applyEmpty(2);
    expect(kv.put('a', '2')).to.deep.equal({ kind: 'put', version: 3 });
    expect(kv.value('a')).to.equal('2');
    expect(kv.machine.get(keyString(bytes('a')))?.version).to.equal(3);
    expect(kv.machine.keyCount).to.equal(1);
  });

  it('deletes, telling whether the key existed', () => {
    const kv = new Applier();
    kv.put('a', '1');
    expect(kv.apply({ op: CommandOp.Delete, key: bytes('a') })).to.deep.equal({ kind: 'delete', existed: true });
    expect(kv.apply({ op: CommandOp.Delete, key: bytes('a') })).to.deep.equal({ kind: 'delete', existed: false });
    expect(kv.value('a')).to.equal(undefined);
  });

  it('compare-and-sets on the version; 0 means must not exist', () => {
    const kv = new Applier();
    const cas = (expectedVersion: number, value: string) =>
      kv.apply({ op: CommandOp.Cas, key: bytes('k'), expectedVersion, value: bytes(value) });
    expect(cas(0, 'first')).to.deep.equal({ kind: 'cas', ok: true, version: 1 });
    expect(cas(0, 'again')).to.deep.equal({ kind: 'cas', ok: false, currentVersion: 1 });
    expect(cas(7, 'stale')).to.deep.equal({ kind: 'cas', ok: false, currentVersion: 1 });
    expect(cas(1, 'second')).to.deep.equal({ kind: 'cas', ok: true, version: 4 });
    expect(kv.value('k')).to.equal('second');
    kv.apply({ op: CommandOp.Delete, key: bytes('k') });
    expect(cas(4, 'gone')).to.deep.equal({ kind: 'cas', ok: false, currentVersion: 0 });
  });

  it('applies a retried (clientId, seq) exactly once and returns the first result', () => {
    const kv = new Applier();
    const session = { clientId: 'c1', seq: 1 };
    expect(kv.put('a', 'x', session)).to.deep.equal({ kind: 'put', version: 1 });
    kv.put('a', 'y', { clientId: 'c2', seq: 1 });
    // The retry of c1/1 commits again at index 3 but must not overwrite c2's write.
    expect(kv.put('a', 'x', session, T0 + 10)).to.deep.equal({ kind: 'put', version: 1 });
    expect(kv.value('a')).to.equal('y');
    expect(kv.machine.get(keyString(bytes('a')))?.version).to.equal(2);
    // A retried cas returns its first success even though the version moved on.
    const casSession = { clientId: 'c1', seq: 2 };
    const first = kv.apply({ op: CommandOp.Cas, key: bytes('a'), expectedVersion: 2, value: bytes('z'), session: casSession });
    expect(first).to.deep.equal({ kind: 'cas', ok: true, version: 4 });
    const retry = kv.apply({ op: CommandOp.Cas, key: bytes('a'), expectedVersion: 2, value: bytes('z'), session: casSession });
    expect(retry).to.deep.equal(first);
    // Writes without a session are never deduplicated.
    expect(kv.put('b', '1')).to.deep.equal({ kind: 'put', version: 6 });
    expect(kv.put('b', '1')).to.deep.equal({ kind: 'put', version: 7 });
  });

  it('forgets results and idle sessions by log time; a forgotten seq is refused as outcome unknown, not applied', () => {
    const kv = new Applier();
    kv.put('a', '1', { clientId: 'c1', seq: 1 }, T0);
    kv.put('a', '2', { clientId: 'c1', seq: 2 }, T0 + 1000);
    // Within retention the retry is answered from the table.
    expect(kv.put('a', '1', { clientId: 'c1', seq: 1 }, T0 + 5000)).to.deep.equal({ kind: 'put', version: 1 });
    // Past retention seq 1's result is forgotten: its retry is refused — it may have applied — and changes nothing.
    kv.put('a', '3', { clientId: 'c1', seq: 3 }, T0 + RESULT_RETENTION_MS + 2000);
    expect(kv.put('a', '1', { clientId: 'c1', seq: 1 }, T0 + RESULT_RETENTION_MS + 3000)).to.deep.equal({ kind: 'session-expired', seq: 1 });
    expect(kv.value('a')).to.equal('3');
    // A new seq of the same session still applies.
    expect(kv.put('a', '4', { clientId: 'c1', seq: 4 }, T0 + RESULT_RETENTION_MS + 4000)).to.deep.equal({ kind: 'put', version: 6 });
    expect(kv.machine.sessionCount).to.equal(1);
    // Another client's write after c1 was idle for SESSION_IDLE_MS drops c1's session.
    kv.put('b', '1', { clientId: 'c2', seq: 1 }, T0 + RESULT_RETENTION_MS + 4000 + SESSION_IDLE_MS);
    expect(kv.machine.sessionCount).to.equal(1);
    expect(kv.machine.sessionResultCount).to.equal(1);
    // A stamp behind the log's time does not move log time backwards: c2's result is still kept.
    const logTimeMs = kv.machine.logTimeMs;
    kv.put('b', '2', { clientId: 'c2', seq: 2 }, T0);
    expect(kv.machine.logTimeMs).to.equal(logTimeMs);
    expect(kv.put('b', '1', { clientId: 'c2', seq: 1 }, T0)).to.deep.equal({ kind: 'put', version: kv.machine.appliedIndex - 2 });
  });

  it('refuses a retry that is another write, naming what differs, and still answers the real retry', () => {
    const kv = new Applier();
    const c1 = { clientId: 'c1', seq: 1 };
    const c2 = { clientId: 'c1', seq: 2 };
    expect(kv.put('a', 'x', c1)).to.deep.equal({ kind: 'put', version: 1 });
    expect(kv.apply({ op: CommandOp.Cas, key: bytes('a'), expectedVersion: 1, value: bytes('y'), session: c2 })).to.deep.equal({ kind: 'cas', ok: true, version: 2 });
    const mismatch = (request: WriteRequest) => kv.apply(request);
    expect(mismatch({ op: CommandOp.Put, key: bytes('a'), value: bytes('other'), session: c1 })).to.deep.equal({ kind: 'session-mismatch', seq: 1, mismatch: 'it wrote another value' });
    expect(mismatch({ op: CommandOp.Put, key: bytes('b'), value: bytes('x'), session: c1 })).to.deep.equal({ kind: 'session-mismatch', seq: 1, mismatch: 'it wrote another key' });
    expect(mismatch({ op: CommandOp.Delete, key: bytes('a'), session: c1 })).to.deep.equal({ kind: 'session-mismatch', seq: 1, mismatch: 'it was a put, this is a delete' });
    expect(mismatch({ op: CommandOp.Cas, key: bytes('a'), expectedVersion: 7, value: bytes('y'), session: c2 }))
      .to.deep.equal({ kind: 'session-mismatch', seq: 2, mismatch: 'it expected version 1, this expects 7' });
    // Nothing applied: a is still the cas's value at version 2, and the true retries get their results.
    expect(kv.value('a')).to.equal('y');
    expect(kv.machine.get(keyString(bytes('a')))?.version).to.equal(2);
    expect(kv.put('a', 'x', c1)).to.deep.equal({ kind: 'put', version: 1 });
    expect(kv.apply({ op: CommandOp.Cas, key: bytes('a'), expectedVersion: 1, value: bytes('y'), session: c2 })).to.deep.equal({ kind: 'cas', ok: true, version: 2 });
  });

  it('tells a changed write from its retry by fingerprint (property)', () => {
    const seed = Number(process.env['SEED'] ?? Date.now());
    const write = fc.record({
      op: fc.constantFrom(CommandOp.Put, CommandOp.Delete, CommandOp.Cas),
      key: fc.uint8Array({ minLength: 1, maxLength: 20 }),
      value: fc.uint8Array({ maxLength: 64 }),
      expectedVersion: fc.nat({ max: 5 }),
    });
    const request = (w: { op: CommandOp.Put | CommandOp.Delete | CommandOp.Cas; key: Uint8Array; value: Uint8Array; expectedVersion: number }, seq: number): WriteRequest => {
      const session = { clientId: 'c', seq };
      if (w.op === CommandOp.Put) return { op: w.op, key: w.key, value: w.value, session };
      if (w.op === CommandOp.Delete) return { op: w.op, key: w.key, session };
      return { op: w.op, key: w.key, value: w.value, expectedVersion: w.expectedVersion, session };
    };
    const same = (a: WriteRequest, b: WriteRequest): boolean =>
      Buffer.compare(encodeCommand(a, 0), encodeCommand(b, 0)) === 0;
    fc.assert(
      fc.property(write, write, (first, second) => {
        const kv = new Applier();
        const original = request(first, 1);
        const applied = kv.apply(original);
        const retry = request(second, 1);
        const answer = kv.apply(retry);
        if (same(original, retry)) expect(answer).to.deep.equal(applied);
        else expect(answer).to.include({ kind: 'session-mismatch', seq: 1 });
        expect(kv.apply(original)).to.deep.equal(applied);
      }),
      { seed, verbose: true },
    );
    console.log(`      fingerprint property seed ${seed} (SEED=${seed} replays)`);
  });

  it('records membership changes and bumps the epoch', () => {
    const kv = new Applier(KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }, { replicaId: 2, nodeId: 'n2' }]));
    expect(kv.machine.epoch).to.equal(1);
    kv.machine.applyMembershipChange(1, { type: 'add', replicaId: 7, nodeId: 'n3' });
    kv.machine.applyMembershipChange(2, { type: 'remove', replicaId: 2 });
    expect(kv.machine.epoch).to.equal(3);
    expect([...kv.machine.members]).to.deep.equal([[1, 'n1'], [7, 'n3']]);
  });

  it('refuses to apply out of order', () => {
    const kv = new Applier();
    expect(() => kv.machine.applyCommand(5, encodeCommand({ op: CommandOp.Delete, key: bytes('a') }, T0))).to.throw(/out of order/);
  });

  it('round-trips data, sessions, members and epoch through a snapshot', () => {
    const kv = new Applier(KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }, { replicaId: 4, nodeId: 'nödé' }]));
    kv.put('a', '1', { clientId: 'c1', seq: 1 });
    kv.put('€', 'binary', { clientId: 'c2', seq: 9 });
    kv.apply({ op: CommandOp.Put, key: bytes('bin'), value: Buffer.from([0, 255, 1, 128]) });
    kv.machine.applyMembershipChange(4, { type: 'add', replicaId: 9, nodeId: 'n9' });
    kv.apply({ op: CommandOp.Cas, key: bytes('a'), expectedVersion: 0, value: bytes('x'), session: { clientId: 'c1', seq: 2 } });

    const restored = new Applier(KvStateMachine.fromSnapshot(kv.machine.encodeSnapshot()));
    expect(restored.machine.appliedIndex).to.equal(5);
    expect(restored.machine.epoch).to.equal(2);
    expect([...restored.machine.members]).to.deep.equal([[1, 'n1'], [4, 'nödé'], [9, 'n9']]);
    expect(restored.value('a')).to.equal('1');
    expect(restored.value('€')).to.equal('binary');
    expect(restored.machine.get(keyString(bytes('bin')))?.value).to.deep.equal(Buffer.from([0, 255, 1, 128]));
    // Sessions survive: retries after restore still return the first results.
    expect(restored.put('€', 'binary', { clientId: 'c2', seq: 9 })).to.deep.equal({ kind: 'put', version: 2 });
    expect(restored.put('€', 'again', { clientId: 'c2', seq: 9 })).to.deep.equal({ kind: 'session-mismatch', seq: 9, mismatch: 'it wrote another value' });
    const casRetry = restored.apply({ op: CommandOp.Cas, key: bytes('a'), expectedVersion: 0, value: bytes('x'), session: { clientId: 'c1', seq: 2 } });
    expect(casRetry).to.deep.equal({ kind: 'cas', ok: false, currentVersion: 1 });
    expect(restored.value('€')).to.equal('binary');
    // And the snapshot of the restored machine equals a fresh apply of the same history.
    expect(KvStateMachine.fromSnapshot(restored.machine.encodeSnapshot()).encodeSnapshot()).to.deep.equal(restored.machine.encodeSnapshot());
  });

  it('reads a format-1 snapshot (upgrade in place) and writes the current format (3)', () => {
    const restored = new Applier(KvStateMachine.fromSnapshot(Buffer.from(FORMAT_1_SNAPSHOT, 'hex')));
    const machine = restored.machine;
    expect(machine.appliedIndex).to.equal(9);
    expect(machine.epoch).to.equal(2);
    expect(machine.logTimeMs).to.equal(T0 + 64_000);
    expect([...machine.members]).to.deep.equal([[1, 'n1'], [2, 'n2'], [9, 'n9']]);
    expect(restored.value('a')).to.equal('3');
    expect(restored.value('b')).to.equal(undefined);
    expect(machine.get(keyString(bytes('c')))?.value).to.deep.equal(Buffer.from([0, 255]));
    expect(restored.value('d')).to.equal('4');
    expect(machine.sessionCount).to.equal(3);
    expect(machine.sessionResultCount).to.equal(3);
    // Results kept in format 1 still answer their retries (without a fingerprint to check).
    const at = T0 + 65_000;
    expect(restored.put('d', '4', { clientId: 'c1', seq: 3 }, at)).to.deep.equal({ kind: 'put', version: 8 });
    expect(restored.apply({ op: CommandOp.Delete, key: bytes('b'), session: { clientId: 'c2', seq: 2 } }, at)).to.deep.equal({ kind: 'delete', existed: true });
    expect(restored.apply({ op: CommandOp.Cas, key: bytes('a'), expectedVersion: 1, value: bytes('x'), session: { clientId: 'c3', seq: 5 } }, at))
      .to.deep.equal({ kind: 'cas', ok: false, currentVersion: 3 });
    // Seqs format 1 had forgotten stay refused; new seqs apply.
    expect(restored.put('a', '1', { clientId: 'c1', seq: 1 }, at)).to.deep.equal({ kind: 'session-expired', seq: 1 });
    expect(restored.put('a', '2', { clientId: 'c1', seq: 2 }, at)).to.deep.equal({ kind: 'session-expired', seq: 2 });
    expect(restored.put('e', '5', { clientId: 'c1', seq: 4 }, at)).to.deep.equal({ kind: 'put', version: 15 });
    const rewritten = machine.encodeSnapshot();
    expect(rewritten[0]).to.equal(3);
    expect(KvStateMachine.fromSnapshot(rewritten).encodeSnapshot()).to.deep.equal(rewritten);
  });

  it('rejects a corrupt snapshot', () => {
    const snapshot = new Applier().machine.encodeSnapshot();
    expect(() => KvStateMachine.fromSnapshot(snapshot.subarray(0, snapshot.length - 3))).to.throw(/truncated/);
    expect(() => KvStateMachine.fromSnapshot(Buffer.from([9]))).to.throw(/format/);
  });

  it('reads no u64 past 2^53: log time near 2^64 would make the next snapshot throw', () => {
    const snapshot = new Applier().machine.encodeSnapshot();
    snapshot.writeUInt32LE(0xffff_ffff, 1 + 8 + 8 + 4); // log time's high half
    expect(() => KvStateMachine.fromSnapshot(snapshot)).to.throw(CodecError, /beyond 2\^53/);
    const command = encodeCommand({ op: CommandOp.Delete, key: bytes('k') }, 0);
    command.writeUInt32LE(0x20_0000, 1 + 4); // proposedAtMs = 2^53
    expect(() => decodeCommand(command)).to.throw(CodecError, /beyond 2\^53/);
    command.writeUInt32LE(0x1f_ffff, 1 + 4); // 2^53 − 2^32, the largest high half: still exact
    expect(decodeCommand(command).proposedAtMs).to.equal(0x1f_ffff * 2 ** 32);
  });
});
