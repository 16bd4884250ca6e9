import { expect } from 'chai';
import fc from 'fast-check';
import type { RaftEntry, RaftMessage, RaftSnapshot } from '../../src/gen/kvstore/v1/raft.js';
import { CommandOp, decodeCommand, encodeCommand, type WriteRequest } from '../../src/node/kv-command.js';
import { checkCommandBytes } from '../../src/node/kv-command-check.js';
import { txnRequest } from './support/txn-arbitrary.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import { checkMessage, MAX_WIRE_NUMBER } from '../../src/node/message-check.js';
import { checkSnapshotData, snapshotChecksum } from '../../src/node/snapshot-check.js';
import { ConfChangeType, encodeConfChange } from '../../src/raft/index.js';
import { FORMAT_1_SNAPSHOT } from './support/format-1-snapshot.js';
import { referenceCommandOk, referenceVerdict } from './support/message-reference.js';

const SEED = { seed: Number(process.env['SEED'] ?? Date.now()), verbose: true };

/** Numbers a peer might put in a field: ordinary ones, the edges, and what no field may hold. */
const nasty = fc.constantFrom(-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, MAX_WIRE_NUMBER + 1, Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 64);
const number = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 20 }) },
  { weight: 1, arbitrary: fc.constantFrom(MAX_WIRE_NUMBER - 1, MAX_WIRE_NUMBER) },
  { weight: 1, arbitrary: nasty },
);

/** A KV command as a leader proposes it. */
const writeRequest: fc.Arbitrary<WriteRequest> = fc.record({
  op: fc.constantFrom(CommandOp.Put, CommandOp.Delete, CommandOp.Cas),
  key: fc.uint8Array({ minLength: 1, maxLength: 20 }),
  value: fc.uint8Array({ maxLength: 40 }),
  expectedVersion: fc.nat(),
  session: fc.option(fc.record({ clientId: fc.string({ minLength: 1, maxLength: 30 }), seq: fc.nat() }), { nil: undefined }),
}).map(({ op, key, value, expectedVersion, session }) => {
  const base = session === undefined ? {} : { session };
  return op === CommandOp.Put ? { op, key, value, ...base, ...(expectedVersion % 3 === 1 ? { ttlMs: expectedVersion } : {}) }
    : op === CommandOp.Delete ? { op, key, ...base }
    : { op, key, value, expectedVersion, ...base };
});
const expire: fc.Arbitrary<WriteRequest> = fc.constant({ op: CommandOp.Expire, key: new Uint8Array(0) });
const command = fc.tuple(fc.oneof({ weight: 6, arbitrary: writeRequest }, { weight: 2, arbitrary: txnRequest }, { weight: 1, arbitrary: expire }), fc.integer({ min: 0, max: 2 ** 47 }))
  .map(([request, atMs]) => encodeCommand(request, atMs));

/** Bytes like a command's, changed: a byte flipped or set, cut short, extended. */
const damaged = fc.tuple(command, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'cut', 'extend', 'high')).map(
  ([bytes, at, value, how]) => {
    const copy = Buffer.from(bytes);
    const position = at % copy.length;
    if (how === 'set') copy[position] = value;
    if (how === 'cut') return copy.subarray(0, position);
    if (how === 'extend') return Buffer.concat([copy, Buffer.from([value])]);
    if (how === 'high') copy[Math.min(8, copy.length - 1)] = 0x80 | value; // proposedAtMs past 2^53
    return copy;
  },
);

const confChange = fc.record({ type: fc.constantFrom(ConfChangeType.AddVoter, ConfChangeType.AddLearner, ConfChangeType.RemoveReplica), replicaId: fc.integer({ min: 1, max: 1000 }) })
  .map(({ type, replicaId }) => Buffer.from(encodeConfChange({ type, replicaId, context: Buffer.from(JSON.stringify({ nodeId: `n${replicaId}` })) })));

/** Entry data of `type` as a leader writes it. */
const goodData = (type: number): fc.Arbitrary<Buffer> =>
  type === 1 ? confChange : fc.oneof({ weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) }, { weight: 3, arbitrary: command });
/** Entry data of `type`, often damaged. */
const anyData = (type: number): fc.Arbitrary<Buffer> =>
  type === 1 ? fc.oneof({ weight: 4, arbitrary: confChange }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)) })
  : fc.oneof({ weight: 2, arbitrary: fc.constant(Buffer.alloc(0)) }, { weight: 4, arbitrary: command }, { weight: 2, arbitrary: damaged });

/** A message as a correct peer sends it, its entries' data drawn from `entryData`; `mutate` may then break its rules. */
const messageWith = (entryData: (type: number) => fc.Arbitrary<Buffer>): fc.Arbitrary<RaftMessage> => fc.record({
  type: fc.integer({ min: 1, max: 13 }),
  shardId: fc.integer({ min: 0, max: 3 }),
  to: fc.integer({ min: 1, max: 5 }),
  from: fc.integer({ min: 6, max: 9 }),
  term: fc.integer({ min: 1, max: 9 }),
  index: fc.integer({ min: 0, max: 50 }),
  commit: fc.nat(60),
  rejectHint: fc.nat(60),
  reject: fc.boolean(),
  context: fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
  entryTypes: fc.array(fc.constantFrom(0, 0, 0, 1), { maxLength: 4 }),
  entrySeeds: fc.array(fc.nat(), { maxLength: 4 }),
}).chain((base) => {
  const logTerm = base.index === 0 ? 0 : Math.min(base.term, 1 + (base.index % base.term));
  const entries = base.type === 1 ? base.entryTypes : [];
  return fc.tuple(...entries.map((type) => entryData(type))).map((datas): RaftMessage => {
    const message: RaftMessage = {
      shardId: base.shardId, type: base.type, to: base.to, from: base.from, term: base.type === 11 ? 0 : base.term,
      logTerm: base.type === 11 ? 0 : logTerm, index: base.index, commit: base.commit, reject: base.reject, rejectHint: base.rejectHint,
      context: base.context,
      entries: entries.map((type, i): RaftEntry => ({ term: base.term, index: base.index + 1 + i, type, data: datas[i] as Buffer })),
    };
    if (base.type === 9) {
      const snapshot: RaftSnapshot = { metadata: { index: base.index, term: logTerm, confState: { voters: [1, 2, 3], learners: [4] } }, data: Buffer.alloc(0) };
      message.snapshot = snapshot;
    }
    return message;
  });
});
const correct = messageWith(goodData);

/** Up to three changes, each of one field, to a correct message. */
const mutation = fc.oneof(
  fc.record({ field: fc.constantFrom('type', 'shardId', 'to', 'from', 'term', 'logTerm', 'index', 'commit', 'rejectHint'), value: number }),
  fc.record({ field: fc.constant('entry'), at: fc.nat(), part: fc.constantFrom('index', 'term', 'type'), value: number }),
  fc.record({ field: fc.constant('context'), length: fc.integer({ min: 200, max: 300 }) }),
  fc.record({ field: fc.constant('snapshot'), part: fc.constantFrom('add', 'drop', 'index', 'term', 'voters', 'learners'), value: number }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(message: RaftMessage, change: Mutation): void {
  if (change.field === 'entry') {
    const entry = message.entries[change.at % Math.max(1, message.entries.length)];
    if (entry !== undefined) entry[change.part] = change.value;
  } else if (change.field === 'context') {
    message.context = Buffer.alloc(change.length);
  } else if (change.field === 'snapshot') {
    if (change.part === 'add') message.snapshot = { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [] } }, data: Buffer.alloc(0) };
    else if (change.part === 'drop') delete message.snapshot;
    const metadata = message.snapshot?.metadata;
    if (metadata === undefined) return;
    if (change.part === 'index' || change.part === 'term') metadata[change.part] = change.value;
    if (change.part === 'voters') metadata.confState = { voters: change.value < 3 ? [] : [1, 1, change.value], learners: [] };
    if (change.part === 'learners') metadata.confState = { voters: [1], learners: [change.value] };
  } else {
    message[change.field] = change.value;
  }
}

describe('node/message-check', () => {
  it('judges every message as the naive reference does, rule by rule', () => {
    fc.assert(
      fc.property(messageWith(anyData), fc.array(mutation, { maxLength: 3 }), (message, changes) => {
        for (const change of changes) mutate(message, change);
        expect(checkMessage(message)?.reason ?? 'ok').to.equal(referenceVerdict(message));
      }),
      { ...SEED, numRuns: 5_000 },
    );
  });

  it('accepts what a correct peer sends', () => {
    fc.assert(
      fc.property(correct, (message) => {
        expect(checkMessage(message)).to.equal(undefined);
      }),
      SEED,
    );
  });

  it('names the first bad field in the detail', () => {
    const message: RaftMessage = {
      shardId: 0, type: 1, to: 1, from: 2, term: 3, logTerm: 2, index: 4, commit: 0, reject: false, rejectHint: 0, context: Buffer.alloc(0),
      entries: [{ term: 3, index: 5, type: 0, data: Buffer.alloc(0) }, { term: 3, index: 7, type: 0, data: Buffer.alloc(0) }],
    };
    expect(checkMessage(message)).to.deep.equal({ reason: 'bad_entries', detail: 'entry 1 of 2 has index 7, expected 6 (consecutive after index 4)' });
    expect(checkMessage({ ...message, entries: [], commit: 2 ** 53 })?.detail).to.equal(`commit ${2 ** 53} is not an integer from 0 to 2^52`);
    expect(checkMessage({ ...message, entries: [], type: 14 })).to.deep.equal({ reason: 'bad_type', detail: 'type 14 is not one a peer sends' });
  });
});

describe('node/kv-command-check', () => {
  it('accepts every command a leader proposes', () => {
    fc.assert(fc.property(command, (bytes) => { expect(checkCommandBytes(bytes)).to.equal(undefined); }), SEED);
  });

  it('agrees with decoding and encoding again, on commands and damaged ones', () => {
    fc.assert(
      fc.property(fc.oneof(command, damaged, fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a))), (bytes) => {
        const ok = checkCommandBytes(bytes) === undefined;
        expect(ok, checkCommandBytes(bytes)).to.equal(referenceCommandOk(bytes));
        if (ok) expect(() => decodeCommand(bytes)).not.to.throw();
      }),
      { ...SEED, numRuns: 5_000 },
    );
  });

  it('refuses a client id that is not UTF-8 (it would be re-encoded longer) and trailing bytes', () => {
    const valid = encodeCommand({ op: CommandOp.Delete, key: Buffer.from('k'), session: { clientId: 'ab', seq: 1 } }, 5);
    const broken = Buffer.from(valid);
    broken[10] = 0xff; // the client id's first byte
    expect(checkCommandBytes(broken)).to.equal('client id is not UTF-8');
    expect(checkCommandBytes(Buffer.concat([valid, Buffer.from([0])]))).to.equal('command followed by 1 trailing bytes');
  });
});

describe('node/snapshot-check', () => {
  /** A state machine's snapshot after a few writes. */
  const snapshot = fc.array(writeRequest, { maxLength: 8 }).map((requests) => {
    const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }, { replicaId: 2, nodeId: 'nødé' }]);
    requests.forEach((request, i) => machine.applyCommand(i + 1, encodeCommand(request, 1_000 + i)));
    return { data: machine.encodeSnapshot(), index: machine.appliedIndex };
  });

  it('accepts a state machine\'s snapshot at its index with its checksum, or without one', () => {
    fc.assert(
      fc.property(snapshot, ({ data, index }) => {
        expect(checkSnapshotData(data, index, snapshotChecksum(data))).to.equal(undefined);
        expect(checkSnapshotData(data, index, undefined)).to.equal(undefined);
        expect(checkSnapshotData(data, index + 1, snapshotChecksum(data))?.reason).to.equal('snapshot_data');
      }),
      SEED,
    );
  });

  it('refuses changed data by its checksum; what passes with a recomputed checksum restores to the same bytes', () => {
    fc.assert(
      fc.property(snapshot, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.constantFrom('flip', 'cut', 'extend'), ({ data, index }, at, value, how) => {
        const changed = Buffer.from(data);
        const position = at % changed.length;
        const bytes = how === 'flip' ? (changed[position] = (changed[position] as number) ^ value, changed)
          : how === 'cut' ? changed.subarray(0, position)
          : Buffer.concat([changed, Buffer.from([value])]);
        expect(checkSnapshotData(bytes, index, snapshotChecksum(data))?.reason).to.equal('snapshot_checksum');
        const recomputed = checkSnapshotData(bytes, index, snapshotChecksum(bytes));
        if (recomputed === undefined) {
          const machine = KvStateMachine.fromSnapshot(bytes);
          expect(machine.appliedIndex).to.equal(index);
          // A changed format byte can make it an older format's snapshot, which is accepted and
          // restores to this format's bytes: then only the bytes the formats share are the same.
          if (bytes[0] === data[0]) expect(machine.encodeSnapshot().equals(bytes)).to.equal(true);
          else expect(KvStateMachine.fromSnapshot(machine.encodeSnapshot()).encodeSnapshot().equals(machine.encodeSnapshot())).to.equal(true);
        } else {
          expect(recomputed.reason).to.equal('snapshot_data');
        }
      }),
      { ...SEED, numRuns: 2_000 },
    );
  });

  it('accepts a format-1 snapshot (an older node\'s, or one an upgraded node still holds), canonical in what the formats share', () => {
    const format1 = Buffer.from(FORMAT_1_SNAPSHOT, 'hex');
    expect(format1[0]).to.equal(1);
    expect(KvStateMachine.fromSnapshot(format1).encodeSnapshot()[0], 'this version writes format 3').to.equal(3);
    expect(checkSnapshotData(format1, 9, undefined)).to.equal(undefined);
    expect(checkSnapshotData(format1, 9, snapshotChecksum(format1))).to.equal(undefined);
    expect(checkSnapshotData(format1, 8, snapshotChecksum(format1))?.detail).to.match(/applied through 9/);
    // Member n1's id, at 1 + 24 + 4 + 8 + 1: a byte that is not UTF-8 restores as U+FFFD, three bytes.
    const notUtf8 = Buffer.from(format1);
    expect(notUtf8.subarray(38, 40).toString()).to.equal('n1');
    notUtf8[38] = 0xff;
    expect(checkSnapshotData(notUtf8, 9, snapshotChecksum(notUtf8))?.detail).to.match(/not canonical/);
    const unknownFormat = Buffer.from(format1);
    unknownFormat[0] = 4;
    expect(checkSnapshotData(unknownFormat, 9, undefined)?.detail).to.match(/unknown KV snapshot format 4/);
  });

  it('accepts a format-2 snapshot (before transactions): laid out as format 3, byte for byte after the format byte', () => {
    const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
    machine.applyCommand(1, encodeCommand({ op: CommandOp.Put, key: Buffer.from('k'), value: Buffer.from('v'), session: { clientId: 'c', seq: 1 } }, 1));
    const current = machine.encodeSnapshot();
    const format2 = Buffer.from(current.subarray(0, current.length - 4)); // without the (empty) expiry section
    format2[0] = 2;
    expect(checkSnapshotData(format2, 1, snapshotChecksum(format2))).to.equal(undefined);
    expect(KvStateMachine.fromSnapshot(format2).get('k')?.value.toString()).to.equal('v');
  });

  it('refuses a snapshot that restores but not to the same bytes: a duplicated key, a u64 past 2^53', () => {
    const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
    machine.applyCommand(1, encodeCommand({ op: CommandOp.Put, key: Buffer.from('k'), value: Buffer.from('v') }, 1));
    const data = machine.encodeSnapshot();
    // Layout: format, applied, epoch, log time, members (u32 count, u64 id, u8 len, "n1"), keys (u32 count, …).
    const keysAt = 1 + 24 + 4 + 8 + 1 + 2;
    const keyRecord = data.subarray(keysAt + 4, keysAt + 4 + 1 + 1 + 8 + 4 + 1);
    const duplicated = Buffer.concat([data.subarray(0, keysAt), Buffer.from([2, 0, 0, 0]), keyRecord, keyRecord, data.subarray(keysAt + 4 + keyRecord.length)]);
    expect(checkSnapshotData(duplicated, 1, undefined)?.detail).to.match(/not canonical/);
    const huge = Buffer.from(data);
    huge[1 + 8 + 8 + 7] = 0x40; // log time's top byte
    expect(checkSnapshotData(huge, 1, undefined)?.detail).to.match(/beyond 2\^53/);
  });
});
