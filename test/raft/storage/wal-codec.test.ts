import { expect } from 'chai';
import fc from 'fast-check';
import {
  BATCH_HEADER_BYTES,
  batchHeaderAt,
  decodeRecord,
  RecordEncoder,
  recordEndAt,
  type GroupRecord,
  type WalRecord,
} from '../../../src/raft/storage/wal-codec.js';
import { WalCorruptionError } from '../../../src/raft/storage/index.js';
import { EntryType } from '../../../src/raft/types.js';
import { propertyOptions } from './helpers.js';

// --- a naive reference encoder: one small Buffer per field, joined at the end, bitwise CRC ---

function naiveCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
const u8 = (v: number): Buffer => Buffer.from([v]);
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const u64 = (v: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};

function naiveEncode(record: WalRecord): Buffer {
  if (record.type === 'batch-header') {
    const payload = Buffer.concat([u8(5), u32(0), u64(record.nonce), u64(record.sequence), u64(record.batchBytes)]);
    return Buffer.concat([u32(payload.length), u32(naiveCrc32c(payload)), payload]);
  }
  const parts: Buffer[] = [];
  switch (record.type) {
    case 'entries': {
      parts.push(u8(1), u32(record.groupId), u64(record.entries[0]?.index ?? 0), u32(record.entries.length));
      for (const e of record.entries) parts.push(u64(e.term), u8(e.type), u32(e.data.length), Buffer.from(e.data));
      break;
    }
    case 'hard-state':
      parts.push(u8(2), u32(record.groupId), u64(record.hardState.term), u64(record.hardState.vote), u64(record.hardState.commit));
      break;
    case 'snapshot': {
      const m = record.marker;
      parts.push(u8(3), u32(record.groupId), u8(m.replacesLog ? 1 : 0), u64(m.index), u64(m.term), u32(m.dataLength), u32(m.dataCrc));
      parts.push(u32(m.confState.voters.length), ...m.confState.voters.map(u64));
      parts.push(u32(m.confState.learners.length), ...m.confState.learners.map(u64));
      break;
    }
    case 'tombstone':
      parts.push(u8(4), u32(record.groupId));
      break;
  }
  const payload = Buffer.concat(parts);
  return Buffer.concat([u32(payload.length), u32(naiveCrc32c(payload)), payload]);
}

function encode(encoder: RecordEncoder, record: GroupRecord): void {
  switch (record.type) {
    case 'entries': encoder.entries(record.groupId, record.entries); break;
    case 'hard-state': encoder.hardState(record.groupId, record.hardState); break;
    case 'snapshot': encoder.snapshot(record.groupId, record.marker); break;
    case 'tombstone': encoder.tombstone(record.groupId); break;
  }
}

// --- arbitraries ---

const safe = fc.maxSafeNat();
const groupId = fc.nat({ max: 0xffffffff });
const entriesRecord = fc
  .record({
    groupId,
    first: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER - 100 }),
    items: fc.array(fc.record({ term: safe, type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange), data: fc.uint8Array({ maxLength: 40 }) }), { minLength: 1, maxLength: 8 }),
  })
  .map(({ groupId: g, first, items }): WalRecord => ({
    type: 'entries',
    groupId: g,
    entries: items.map((item, i) => ({ index: first + i, term: item.term, type: item.type, data: item.data })),
  }));
const hardStateRecord = fc
  .record({ groupId, term: safe, vote: safe, commit: safe })
  .map(({ groupId: g, ...hardState }): WalRecord => ({ type: 'hard-state', groupId: g, hardState }));
const snapshotRecord = fc
  .record({
    groupId,
    index: safe,
    term: safe,
    voters: fc.array(safe, { maxLength: 5 }),
    learners: fc.array(safe, { maxLength: 3 }),
    replacesLog: fc.boolean(),
    dataLength: fc.nat({ max: 0xffffffff }),
    dataCrc: fc.nat({ max: 0xffffffff }),
  })
  .map(({ groupId: g, index, term, voters, learners, replacesLog, dataLength, dataCrc }): WalRecord => ({
    type: 'snapshot',
    groupId: g,
    marker: { index, term, confState: { voters, learners }, replacesLog, dataLength, dataCrc },
  }));
const tombstoneRecord = groupId.map((g): GroupRecord => ({ type: 'tombstone', groupId: g }));
const anyRecord = fc.oneof(entriesRecord, hardStateRecord, snapshotRecord, tombstoneRecord) as fc.Arbitrary<GroupRecord>;

/** Normalises decoded entry data (Uint8Array) for deep equality with arbitraries' data. */
function decodeAll(bytes: Buffer): WalRecord[] {
  const records: WalRecord[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const end = recordEndAt(bytes, offset, bytes.length);
    expect(end, `record at ${offset}`).to.be.greaterThan(offset);
    records.push(decodeRecord(bytes, offset, end, 'test'));
    offset = end;
  }
  return records;
}

describe('raft/storage/wal-codec', () => {
  it('encodes exactly as the naive reference, and decodes back', () => {
    fc.assert(
      fc.property(fc.array(anyRecord, { maxLength: 12 }), fc.integer({ min: 1, max: 256 }), (records, initialBytes) => {
        const encoder = new RecordEncoder(initialBytes); // small: exercises growing
        for (const record of records) encode(encoder, record);
        const expected = Buffer.concat(records.map(naiveEncode));
        expect(Buffer.compare(encoder.bytes(), expected)).to.equal(0);
        expect(decodeAll(encoder.bytes())).to.deep.equal(records);
      }),
      propertyOptions(300),
    );
  });

  it('frames a batch: a header with nonce, sequence and the length of the records, then the records', () => {
    fc.assert(
      fc.property(fc.array(anyRecord, { maxLength: 8 }), safe, safe, fc.integer({ min: 1, max: 256 }), (records, nonce, sequence, initialBytes) => {
        const encoder = new RecordEncoder(initialBytes, { batchHeader: true });
        for (const record of records) encode(encoder, record);
        const body = Buffer.concat(records.map(naiveEncode));
        expect(encoder.length).to.equal(body.length);
        expect(Buffer.compare(encoder.bytes(), body)).to.equal(0);
        const header: WalRecord = { type: 'batch-header', nonce, sequence, batchBytes: body.length };
        const framed = encoder.framedBytes(nonce, sequence);
        expect(Buffer.compare(framed, Buffer.concat([naiveEncode(header), body]))).to.equal(0);
        expect(decodeAll(framed)).to.deep.equal([header, ...records]);
        expect(batchHeaderAt(framed, 0, nonce)).to.deep.equal(header);
        expect(batchHeaderAt(framed, 0, undefined)).to.deep.equal(header);
        expect(batchHeaderAt(framed, 0, nonce === 0 ? 1 : nonce - 1)).to.equal(undefined);
        encoder.clear();
        expect(encoder.framedBytes(nonce, sequence).length).to.equal(BATCH_HEADER_BYTES);
      }),
      propertyOptions(200),
    );
    expect(() => new RecordEncoder().framedBytes(1, 1)).to.throw(/no room for a batch header/);
  });

  it('finds a batch header only where one is whole and checks out', () => {
    const header = naiveEncode({ type: 'batch-header', nonce: 77, sequence: 3, batchBytes: 10 });
    const bytes = Buffer.concat([Buffer.alloc(5), header, Buffer.alloc(5)]);
    expect(batchHeaderAt(bytes, 5, 77)).to.deep.equal({ type: 'batch-header', nonce: 77, sequence: 3, batchBytes: 10 });
    for (let offset = 0; offset < bytes.length; offset++) if (offset !== 5) expect(batchHeaderAt(bytes, offset, 77)).to.equal(undefined);
    expect(batchHeaderAt(bytes.subarray(0, 5 + BATCH_HEADER_BYTES - 1), 5, 77)).to.equal(undefined);
    for (let position = 5; position < 5 + BATCH_HEADER_BYTES; position++) {
      const damaged = Buffer.from(bytes);
      damaged[position] = (damaged[position] as number) ^ 0x10;
      expect(batchHeaderAt(damaged, 5, undefined), `byte ${position} flipped`).to.equal(undefined);
    }
  });

  it('reuses its buffer after clear', () => {
    const encoder = new RecordEncoder(16);
    encoder.tombstone(7);
    const first = Buffer.from(encoder.bytes());
    encoder.clear();
    expect(encoder.length).to.equal(0);
    encoder.tombstone(7);
    expect(Buffer.compare(encoder.bytes(), first)).to.equal(0);
  });

  it('finds no record where any single byte of one was changed', () => {
    fc.assert(
      fc.property(anyRecord, fc.nat(), fc.integer({ min: 1, max: 255 }), (record, at, flip) => {
        const bytes = naiveEncode(record);
        const position = at % bytes.length;
        bytes[position] = (bytes[position] as number) ^ flip;
        expect(recordEndAt(bytes, 0, bytes.length)).to.equal(-1);
      }),
      propertyOptions(300),
    );
  });

  it('finds no record in a truncated one', () => {
    fc.assert(
      fc.property(anyRecord, fc.nat(), (record, cut) => {
        const bytes = naiveEncode(record);
        expect(recordEndAt(bytes, 0, cut % bytes.length)).to.equal(-1);
      }),
      propertyOptions(200),
    );
  });

  it('refuses a well-checksummed payload that does not parse, naming file and offset', () => {
    const payload = Buffer.from([2, 1, 0, 0, 0, 9]); // hard state with a 1-byte body
    const record = Buffer.concat([u32(payload.length), u32(naiveCrc32c(payload)), payload]);
    const bytes = Buffer.concat([Buffer.alloc(3), record]);
    const end = recordEndAt(bytes, 3, bytes.length);
    expect(end).to.equal(bytes.length);
    expect(() => decodeRecord(bytes, 3, end, 'seg.log'))
      .to.throw(WalCorruptionError)
      .that.satisfies((error: WalCorruptionError) => error.code === 'BAD_RECORD' && error.file === 'seg.log' && error.offset === 3);
  });

  it('refuses values the format cannot hold', () => {
    const encoder = new RecordEncoder();
    expect(() => encoder.hardState(1, { term: -1, vote: 0, commit: 0 })).to.throw(/non-negative safe integer/);
    expect(() => encoder.tombstone(2 ** 32)).to.throw(/32-bit/);
    expect(() => encoder.entries(1, [{ index: 1, term: 1, type: 0, data: new Uint8Array() }, { index: 3, term: 1, type: 0, data: new Uint8Array() }]))
      .to.throw(/consecutive/);
  });
});
