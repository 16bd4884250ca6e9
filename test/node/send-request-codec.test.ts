import { expect } from 'chai';
import fc from 'fast-check';
import { type RaftMessage, SendRequest } from '../../src/gen/kvstore/v1/raft.js';
import { decodeSendRequest, encodeSendRequest, SendRequestCodecError } from '../../src/node/send-request-codec.js';

const SEED = { seed: Number(process.env['SEED'] ?? Date.now()), verbose: true };

const uint64 = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const bytes = fc.uint8Array({ maxLength: 64 }).map((array) => Buffer.from(array));
const replicaIds = fc.array(uint64, { maxLength: 5 });

const entry = fc.record({ term: uint64, index: uint64, type: fc.constantFrom(0, 1), data: bytes });
const snapshot = fc.record(
  {
    metadata: fc.record(
      { index: uint64, term: uint64, confState: fc.record({ voters: replicaIds, learners: replicaIds }) },
      { requiredKeys: ['index', 'term'] },
    ),
    data: bytes,
  },
  { requiredKeys: ['data'] },
);
const message: fc.Arbitrary<RaftMessage> = fc.record(
  {
    shardId: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    type: fc.integer({ min: 0, max: 16 }),
    to: uint64,
    from: uint64,
    term: uint64,
    logTerm: uint64,
    index: uint64,
    entries: fc.array(entry, { maxLength: 4 }),
    commit: uint64,
    reject: fc.boolean(),
    rejectHint: uint64,
    snapshot,
    context: bytes,
    quiesce: fc.constant(true),
  },
  { requiredKeys: ['shardId', 'type', 'to', 'from', 'term', 'logTerm', 'index', 'entries', 'commit', 'reject', 'rejectHint', 'context'] },
);
const request: fc.Arbitrary<SendRequest> = fc.record({ fromNodeId: fc.string({ maxLength: 20 }), messages: fc.array(message, { maxLength: 6 }) });

/** Plain data for deep comparison: Buffers as arrays of bytes. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_key, field: unknown) => (field instanceof Uint8Array ? [...field] : field)));
}

const generated = {
  encode: (value: SendRequest): Buffer => Buffer.from(SendRequest.encode(value).finish()),
  decode: (value: Buffer): SendRequest => SendRequest.decode(value),
};

describe('node/send-request-codec', () => {
  it('writes the same bytes as the generated codec, and both read them back', () => {
    fc.assert(
      fc.property(request, (value) => {
        const ours = encodeSendRequest(value);
        expect(ours.toString('hex')).to.equal(generated.encode(value).toString('hex'));
        const expected = plain(generated.decode(generated.encode(value)));
        expect(plain(decodeSendRequest(ours))).to.deep.equal(expected);
        expect(plain(generated.decode(ours))).to.deep.equal(expected);
      }),
      SEED,
    );
  });

  it('copies entry data out of the received frame, so a kept entry does not pin the frame (issue 15)', () => {
    // One small entry of a quiet shard beside a busy shard's big one, as they share a frame.
    const quiet: RaftMessage = { ...emptyMessage(), shardId: 1, entries: [{ term: 1, index: 7, type: 0, data: Buffer.from('forty bytes of a quiet shard entry......') }] };
    const busy: RaftMessage = { ...emptyMessage(), shardId: 2, entries: [{ term: 1, index: 9, type: 0, data: Buffer.alloc(256 * 1024, 7) }] };
    const frame = encodeSendRequest({ fromNodeId: 'n1', messages: [quiet, busy] });
    const decoded = decodeSendRequest(frame);
    const kept = decoded.messages[0]?.entries[0]?.data;
    expect(kept?.toString()).to.equal('forty bytes of a quiet shard entry......');
    // The kept entry's memory is its own bytes, not the 256 KiB frame.
    expect(kept?.buffer.byteLength).to.equal(40);
    frame.fill(0);
    expect(Buffer.from(kept ?? []).toString()).to.equal('forty bytes of a quiet shard entry......');
    expect(decoded.messages[1]?.entries[0]?.data.every((byte) => byte === 7)).to.equal(true);
  });

  it('gives each received entry memory of its own, so a value kept from one pins no other entry', () => {
    const entries = ['first entry', 'second, longer entry', 'third'].map((text, i) => ({ term: 1, index: 7 + i, type: 0, data: Buffer.from(text) }));
    const decoded = decodeSendRequest(encodeSendRequest({ fromNodeId: 'n1', messages: [{ ...emptyMessage(), shardId: 1, entries }] }));
    const received = decoded.messages[0]?.entries ?? [];
    expect(received.map((entry) => Buffer.from(entry.data).toString())).to.deep.equal(['first entry', 'second, longer entry', 'third']);
    for (const entry of received) expect([entry.data.byteOffset, entry.data.buffer.byteLength]).to.deep.equal([0, entry.data.length]);
  });

  it('reads what other encoders may write: unknown fields, unpacked replica ids, fields out of order', () => {
    const unknownVarint = Buffer.from([0xf8, 0x01, 0x05]); // field 31, varint 5
    const unknownFixed64 = Buffer.from([0xf9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]); // field 31, fixed64
    const unknownFixed32 = Buffer.from([0xfd, 0x01, 1, 2, 3, 4]); // field 31, fixed32
    const unknownBytes = Buffer.from([0xfa, 0x01, 0x02, 0xaa, 0xbb]); // field 31, 2 bytes
    const confState = Buffer.from([0x08, 0x01, 0x08, 0x02, 0x10, 0x07]); // voters 1 and 2 unpacked, learner 7 unpacked
    const metadata = Buffer.concat([Buffer.from([0x10, 0x03, 0x1a, confState.length]), confState, Buffer.from([0x08, 0x09])]);
    const snapshotBytes = Buffer.concat([Buffer.from([0x0a, metadata.length]), metadata]);
    const message = Buffer.concat([
      Buffer.from([0x38, 0x2a]), // index 42 before shard id
      unknownVarint,
      Buffer.from([0x08, 0x05, 0x10, 0x09]), // shard 5, type Snapshot
      unknownFixed64,
      Buffer.from([0x62, snapshotBytes.length]),
      snapshotBytes,
      unknownFixed32,
    ]);
    const bytesOnWire = Buffer.concat([unknownBytes, Buffer.from([0x12, message.length]), message, Buffer.from([0x0a, 0x02]), Buffer.from('n3')]);
    const decoded = decodeSendRequest(bytesOnWire);
    expect(decoded.fromNodeId).to.equal('n3');
    expect(decoded.messages).to.have.length(1);
    const [first] = decoded.messages;
    expect(first?.shardId).to.equal(5);
    expect(first?.type).to.equal(9);
    expect(first?.index).to.equal(42);
    expect(first?.snapshot?.metadata).to.deep.equal({ index: 9, term: 3, confState: { voters: [1, 2], learners: [7] } });
    expect(plain(decoded)).to.deep.equal(plain(generated.decode(bytesOnWire)));
  });

  it('refuses numbers a uint64 cannot carry exactly, naming the field', () => {
    const base: RaftMessage = {
      shardId: 1, type: 1, to: 2, from: 1, term: 3, logTerm: 3, index: 10, entries: [], commit: 9, reject: false, rejectHint: 0, context: Buffer.alloc(0),
    };
    for (const [field, value] of [['index', 2 ** 53], ['term', -1], ['commit', 1.5]] as const) {
      expect(() => encodeSendRequest({ fromNodeId: 'n1', messages: [{ ...base, [field]: value }] }))
        .to.throw(SendRequestCodecError, new RegExp(`^${field} must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${value}$`));
    }
    // 2^53 as a varint: 0x80 ×7 then 0x10.
    const tooLarge = Buffer.from([0x12, 0x09, 0x38, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    expect(() => decodeSendRequest(tooLarge)).to.throw(SendRequestCodecError, /larger than Number.MAX_SAFE_INTEGER/);
    // The largest safe integer still reads.
    const largest = encodeSendRequest({ fromNodeId: '', messages: [{ ...base, index: Number.MAX_SAFE_INTEGER }] });
    expect(decodeSendRequest(largest).messages[0]?.index).to.equal(Number.MAX_SAFE_INTEGER);
  });

  it('refuses truncated and malformed bytes instead of reading past them', () => {
    fc.assert(
      fc.property(request.filter((value) => value.messages.length > 0), fc.nat(), (value, cut) => {
        const whole = encodeSendRequest(value);
        const truncated = whole.subarray(0, cut % whole.length);
        // A cut on a field boundary of the outer message is a valid shorter request; any other must throw.
        let decoded: SendRequest | undefined;
        try {
          decoded = decodeSendRequest(truncated);
        } catch (error) {
          expect(error).to.be.instanceOf(SendRequestCodecError);
          return;
        }
        expect(plain(decoded)).to.deep.equal(plain(generated.decode(truncated)));
      }),
      SEED,
    );
    expect(() => decodeSendRequest(Buffer.from([0x00, 0x01]))).to.throw(SendRequestCodecError, /field number 0/);
    expect(() => decodeSendRequest(Buffer.from([0x0b]))).to.throw(SendRequestCodecError, /wire type 3/);
    expect(() => decodeSendRequest(Buffer.from([0x12, 0x05, 0x08]))).to.throw(SendRequestCodecError, /runs past the end/);
    expect(() => decodeSendRequest(Buffer.from([0x12, 0x0b, 0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).to.throw(
      SendRequestCodecError,
      /longer than 10 bytes|runs past/,
    );
  });
});

function emptyMessage(): RaftMessage {
  return { shardId: 0, type: 3, to: 2, from: 1, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: Buffer.alloc(0) };
}
