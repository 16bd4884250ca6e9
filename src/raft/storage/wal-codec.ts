/**
 * The WAL's binary record format (little-endian throughout):
 *
 * ```
 * record   = u32 payloadLength | u32 crc32c(payload) | payload
 * payload  = u8 recordType | u32 groupId | body
 * entries  = u64 firstIndex | u32 count | count × (u64 term | u8 entryType | u32 dataLength | data)
 * hard     = u64 term | u64 vote | u64 commit
 * snapshot = u8 flags(bit 0: replaces the log) | u64 index | u64 term | u32 dataLength | u32 dataCrc
 *            | u32 voterCount | voters × u64 | u32 learnerCount | learners × u64
 * tombstone = (empty)
 * batch header (group id 0) = u64 nonce | u64 sequence | u64 batchBytes
 * ```
 *
 * A batch header starts every batch (one `sync()`'s records) and every
 * segment's checkpoint: `nonce` is the segment's random number, `sequence`
 * counts the segment's batches from 0, `batchBytes` is the length of the
 * batch's records after the header. Segments written before batch headers
 * existed hold none; `wal-scan.ts` reads both kinds.
 *
 * u64 fields hold JavaScript safe integers (< 2^53), written as two u32 halves.
 * Entries of one record are consecutive, so only the first index is stored.
 * The snapshot's data is not in the WAL: it lives in its own file, and the
 * marker carries its length and CRC so recovery can verify that file.
 *
 * @internal
 */
import type { ConfState, Entry, HardState } from '../types.js';
import { crc32c } from './crc32c.js';
import { WalCorruptionError, WalError } from './wal-errors.js';

/** Bytes before a record's payload: length and CRC. */
export const RECORD_HEADER_BYTES = 8;
/** The smallest payload: type and group id. */
export const MIN_PAYLOAD_BYTES = 5;
/** Larger length prefixes are treated as damage (a real batch of entries is far smaller). */
export const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024;

/** The record types; values are part of the on-disk format. */
export const RecordType = {
  Entries: 1,
  HardState: 2,
  Snapshot: 3,
  Tombstone: 4,
  BatchHeader: 5,
} as const;

/** Payload bytes of a batch header: type, group id 0, nonce, sequence, batch length. */
export const BATCH_HEADER_PAYLOAD_BYTES = MIN_PAYLOAD_BYTES + 24;
/** A whole batch header record. */
export const BATCH_HEADER_BYTES = RECORD_HEADER_BYTES + BATCH_HEADER_PAYLOAD_BYTES;

/** Snapshot marker flag: the snapshot came from the leader and replaces the whole log. */
const FLAG_REPLACES_LOG = 1;

const TWO_POW_32 = 0x1_0000_0000;
const MAX_U64_HIGH = 0x1f_ffff; // high half of Number.MAX_SAFE_INTEGER

/** What a snapshot marker records; the data itself is in `snap/<group>-<term>-<index>.snap`. */
export interface SnapshotMarker {
  index: number;
  term: number;
  confState: ConfState;
  /** True for a snapshot received from the leader: every older entry of the group is discarded. */
  replacesLog: boolean;
  dataLength: number;
  dataCrc: number;
}

/** A decoded record of one group's state. */
export type GroupRecord =
  | { type: 'entries'; groupId: number; entries: Entry[] }
  | { type: 'hard-state'; groupId: number; hardState: HardState }
  | { type: 'snapshot'; groupId: number; marker: SnapshotMarker }
  | { type: 'tombstone'; groupId: number };

/** A decoded batch header: which segment wrote it, which batch it starts, how long that batch is. */
export interface BatchHeader {
  type: 'batch-header';
  /** The segment's random number: a header with another one was not written for this segment. */
  nonce: number;
  /** The batch's number within the segment, from 0 (the checkpoint). */
  sequence: number;
  /** Bytes of the batch's records after the header. */
  batchBytes: number;
}

/** One decoded WAL record. */
export type WalRecord = GroupRecord | BatchHeader;

function checkU64(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new WalError('INVALID_VALUE', `${what} must be a non-negative safe integer, got ${value}`);
  }
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value >= TWO_POW_32) {
    throw new WalError('INVALID_VALUE', `${what} must be an unsigned 32-bit integer, got ${value}`);
  }
}

/** Options of a {@link RecordEncoder}. */
export interface RecordEncoderOptions {
  /**
   * Keep room for a batch header before the records, filled in by
   * {@link RecordEncoder.framedBytes}, so a batch is written with one write
   * and no copy. Default false.
   */
  batchHeader?: boolean;
}

/**
 * Encodes records into one growing buffer that is reused across syncs, so the
 * hot path allocates nothing per record (no `Buffer.concat`).
 */
export class RecordEncoder {
  private buffer: Buffer;
  /** Where records start: after the room kept for a batch header, if any. */
  private readonly start: number;
  private position: number;

  constructor(initialBytes = 64 * 1024, options: RecordEncoderOptions = {}) {
    this.start = options.batchHeader === true ? BATCH_HEADER_BYTES : 0;
    this.buffer = Buffer.allocUnsafe(Math.max(initialBytes, this.start));
    this.position = this.start;
  }

  /** Bytes of the records encoded since the last {@link clear}. */
  get length(): number {
    return this.position - this.start;
  }

  /** A view of the encoded records; valid until the next write or {@link clear}. */
  bytes(): Buffer {
    return this.buffer.subarray(this.start, this.position);
  }

  /**
   * The records behind a batch header for them (`nonce`, `sequence`): the
   * bytes to write. Only for an encoder made with `batchHeader`; valid until
   * the next write or {@link clear}.
   */
  framedBytes(nonce: number, sequence: number): Buffer {
    if (this.start === 0) throw new WalError('INVALID_VALUE', 'this encoder keeps no room for a batch header');
    checkU64(nonce, 'batch nonce');
    checkU64(sequence, 'batch sequence');
    const b = this.buffer;
    b.writeUInt32LE(BATCH_HEADER_PAYLOAD_BYTES, 0);
    let p = RECORD_HEADER_BYTES;
    b[p++] = RecordType.BatchHeader;
    b.writeUInt32LE(0, p);
    p = writeU64(b, p + 4, nonce);
    p = writeU64(b, p, sequence);
    p = writeU64(b, p, this.length);
    b.writeUInt32LE(crc32c(b, RECORD_HEADER_BYTES, p), 4);
    return b.subarray(0, this.position);
  }

  /** Forgets the encoded records, keeping the buffer (shrunk if one burst made it huge). */
  clear(): void {
    this.position = this.start;
    if (this.buffer.length > 64 * 1024 * 1024) this.buffer = Buffer.allocUnsafe(64 * 1024);
  }

  /** Appends a batch of consecutive entries of one group. */
  entries(groupId: number, entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    checkU64(first.index, 'entry index');
    let size = RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES + 12;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as Entry;
      if (entry.index !== first.index + i) {
        throw new WalError('INVALID_VALUE', `entries must be consecutive: ${entry.index} after ${first.index + i - 1}`);
      }
      checkU64(entry.term, 'entry term');
      size += 13 + entry.data.length;
    }
    const start = this.begin(size, RecordType.Entries, groupId);
    const b = this.buffer;
    let p = start + RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES;
    p = writeU64(b, p, first.index);
    b.writeUInt32LE(entries.length, p);
    p += 4;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as Entry;
      p = writeU64(b, p, entry.term);
      b[p++] = entry.type;
      b.writeUInt32LE(entry.data.length, p);
      p += 4;
      b.set(entry.data, p);
      p += entry.data.length;
    }
    this.finish(start, p);
  }

  /** Appends a group's hard state. */
  hardState(groupId: number, hardState: HardState): void {
    checkU64(hardState.term, 'term');
    checkU64(hardState.vote, 'vote');
    checkU64(hardState.commit, 'commit');
    const start = this.begin(RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES + 24, RecordType.HardState, groupId);
    let p = writeU64(this.buffer, start + RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES, hardState.term);
    p = writeU64(this.buffer, p, hardState.vote);
    p = writeU64(this.buffer, p, hardState.commit);
    this.finish(start, p);
  }

  /** Appends a snapshot marker. */
  snapshot(groupId: number, marker: SnapshotMarker): void {
    checkU64(marker.index, 'snapshot index');
    checkU64(marker.term, 'snapshot term');
    checkU32(marker.dataLength, 'snapshot data length');
    const { voters, learners } = marker.confState;
    for (const id of voters) checkU64(id, 'voter id');
    for (const id of learners) checkU64(id, 'learner id');
    const size = RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES + 1 + 16 + 8 + 8 + 8 * (voters.length + learners.length);
    const start = this.begin(size, RecordType.Snapshot, groupId);
    const b = this.buffer;
    let p = start + RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES;
    b[p++] = marker.replacesLog ? FLAG_REPLACES_LOG : 0;
    p = writeU64(b, p, marker.index);
    p = writeU64(b, p, marker.term);
    b.writeUInt32LE(marker.dataLength, p);
    b.writeUInt32LE(marker.dataCrc >>> 0, p + 4);
    b.writeUInt32LE(voters.length, p + 8);
    p += 12;
    for (const id of voters) p = writeU64(b, p, id);
    b.writeUInt32LE(learners.length, p);
    p += 4;
    for (const id of learners) p = writeU64(b, p, id);
    this.finish(start, p);
  }

  /** Appends a tombstone: recovery forgets everything the group wrote before it. */
  tombstone(groupId: number): void {
    const start = this.begin(RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES, RecordType.Tombstone, groupId);
    this.finish(start, start + RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES);
  }

  /**
   * Makes room for `size` bytes and writes type and group id; returns the
   * record's start. The record counts only once {@link finish} runs, so a
   * throw in between leaves the buffer as it was.
   */
  private begin(size: number, type: number, groupId: number): number {
    checkU32(groupId, 'group id');
    if (size - RECORD_HEADER_BYTES > MAX_PAYLOAD_BYTES) {
      throw new WalError('INVALID_VALUE', `a record of ${size} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte limit`);
    }
    if (this.position + size > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.position + size));
      this.buffer.copy(grown, 0, 0, this.position);
      this.buffer = grown;
    }
    const start = this.position;
    this.buffer[start + RECORD_HEADER_BYTES] = type;
    this.buffer.writeUInt32LE(groupId, start + RECORD_HEADER_BYTES + 1);
    return start;
  }

  /** Fills in length and CRC of the record that began at `start` and ends at `end`. */
  private finish(start: number, end: number): void {
    const payloadStart = start + RECORD_HEADER_BYTES;
    this.buffer.writeUInt32LE(end - payloadStart, start);
    this.buffer.writeUInt32LE(crc32c(this.buffer, payloadStart, end), start + 4);
    this.position = end;
  }
}

function writeU64(b: Buffer, p: number, value: number): number {
  b.writeUInt32LE(value % TWO_POW_32, p);
  b.writeUInt32LE(Math.floor(value / TWO_POW_32), p + 4);
  return p + 8;
}

/**
 * The end offset of the well-formed record starting at `offset` in
 * `buffer[0, limit)`, or -1 when there is none there: too few bytes, an
 * impossible length, an unknown type or a CRC mismatch.
 */
export function recordEndAt(buffer: Uint8Array, offset: number, limit: number): number {
  if (offset + RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES > limit) return -1;
  const length = readU32(buffer, offset);
  if (length < MIN_PAYLOAD_BYTES || length > MAX_PAYLOAD_BYTES) return -1;
  const end = offset + RECORD_HEADER_BYTES + length;
  if (end > limit) return -1;
  const type = buffer[offset + RECORD_HEADER_BYTES] as number;
  if (type < RecordType.Entries || type > RecordType.BatchHeader) return -1;
  if (crc32c(buffer, offset + RECORD_HEADER_BYTES, end) !== readU32(buffer, offset + 4)) return -1;
  return end;
}

/**
 * Why the record at `offset` is not well formed: an impossible length, a CRC
 * mismatch, or (CRC fine) an unknown record type. Only meaningful when
 * {@link recordEndAt} returned -1.
 */
export function describeDamage(buffer: Uint8Array, offset: number, limit: number): 'BAD_LENGTH' | 'CRC_MISMATCH' | 'BAD_RECORD' {
  if (offset + RECORD_HEADER_BYTES + MIN_PAYLOAD_BYTES > limit) return 'BAD_LENGTH';
  const length = readU32(buffer, offset);
  if (length < MIN_PAYLOAD_BYTES || length > MAX_PAYLOAD_BYTES) return 'BAD_LENGTH';
  const end = offset + RECORD_HEADER_BYTES + length;
  if (end > limit) return 'BAD_LENGTH';
  const crcMatches = crc32c(buffer, offset + RECORD_HEADER_BYTES, end) === readU32(buffer, offset + 4);
  return crcMatches ? 'BAD_RECORD' : 'CRC_MISMATCH';
}

function readU32(b: Uint8Array, p: number): number {
  return ((b[p] as number) | ((b[p + 1] as number) << 8) | ((b[p + 2] as number) << 16) | ((b[p + 3] as number) << 24)) >>> 0;
}

/** A u64 field, or -1 beyond 2^53 (never a value this format writes). */
function readU64(b: Uint8Array, p: number): number {
  const high = readU32(b, p + 4);
  return high > MAX_U64_HIGH ? -1 : high * TWO_POW_32 + readU32(b, p);
}

/**
 * The well-formed batch header starting at `offset`, if there is one and its
 * nonce is `nonce` (any nonce when undefined). Cheap where there is none:
 * length, type and nonce are compared before the CRC, so recovery can look
 * for a header at every offset of a segment.
 */
export function batchHeaderAt(buffer: Uint8Array, offset: number, nonce: number | undefined): BatchHeader | undefined {
  if (offset + BATCH_HEADER_BYTES > buffer.length) return undefined;
  if (readU32(buffer, offset) !== BATCH_HEADER_PAYLOAD_BYTES) return undefined;
  let p = offset + RECORD_HEADER_BYTES;
  if (buffer[p] !== RecordType.BatchHeader || readU32(buffer, p + 1) !== 0) return undefined;
  p += MIN_PAYLOAD_BYTES;
  const headerNonce = readU64(buffer, p);
  if (headerNonce < 0 || (nonce !== undefined && headerNonce !== nonce)) return undefined;
  if (crc32c(buffer, offset + RECORD_HEADER_BYTES, offset + BATCH_HEADER_BYTES) !== readU32(buffer, offset + 4)) return undefined;
  const sequence = readU64(buffer, p + 8);
  const batchBytes = readU64(buffer, p + 16);
  if (sequence < 0 || batchBytes < 0) return undefined;
  return { type: 'batch-header', nonce: headerNonce, sequence, batchBytes };
}

/**
 * Decodes the payload of the well-formed record at `offset` (as found by
 * {@link recordEndAt}). Entry data is copied, so the result does not pin the
 * segment's buffer. A payload whose CRC matched but whose body does not parse
 * throws `BAD_RECORD` naming `file` and `offset`.
 */
export function decodeRecord(buffer: Uint8Array, offset: number, end: number, file: string): WalRecord {
  let p = offset + RECORD_HEADER_BYTES;
  const bad = (detail: string): WalCorruptionError => new WalCorruptionError('BAD_RECORD', file, offset, detail);
  const need = (bytes: number): void => {
    if (p + bytes > end) throw bad('record body shorter than its fields');
  };
  const u32 = (): number => {
    need(4);
    const value = readU32(buffer, p);
    p += 4;
    return value;
  };
  const u64 = (): number => {
    need(8);
    const low = readU32(buffer, p);
    const high = readU32(buffer, p + 4);
    if (high > MAX_U64_HIGH) throw bad('u64 field beyond 2^53');
    p += 8;
    return high * TWO_POW_32 + low;
  };
  const u8 = (): number => {
    need(1);
    return buffer[p++] as number;
  };
  const type = u8();
  const groupId = u32();
  let record: WalRecord;
  switch (type) {
    case RecordType.Entries: {
      const firstIndex = u64();
      const count = u32();
      const entries: Entry[] = [];
      for (let i = 0; i < count; i++) {
        const term = u64();
        const entryType = u8();
        if (entryType > 1) throw bad(`unknown entry type ${entryType}`);
        const length = u32();
        need(length);
        const data = new Uint8Array(length);
        data.set(buffer.subarray(p, p + length));
        entries.push({ index: firstIndex + i, term, type: entryType, data });
        p += length;
      }
      if (count === 0) throw bad('empty entries record');
      record = { type: 'entries', groupId, entries };
      break;
    }
    case RecordType.HardState:
      record = { type: 'hard-state', groupId, hardState: { term: u64(), vote: u64(), commit: u64() } };
      break;
    case RecordType.Snapshot: {
      const flags = u8();
      const index = u64();
      const term = u64();
      const dataLength = u32();
      const dataCrc = u32();
      const voters: number[] = [];
      for (let n = u32(); n > 0; n--) voters.push(u64());
      const learners: number[] = [];
      for (let n = u32(); n > 0; n--) learners.push(u64());
      const marker = { index, term, confState: { voters, learners }, replacesLog: (flags & FLAG_REPLACES_LOG) !== 0, dataLength, dataCrc };
      record = { type: 'snapshot', groupId, marker };
      break;
    }
    case RecordType.Tombstone:
      record = { type: 'tombstone', groupId };
      break;
    case RecordType.BatchHeader:
      if (groupId !== 0) throw bad(`batch header with group id ${groupId}`);
      record = { type: 'batch-header', nonce: u64(), sequence: u64(), batchBytes: u64() };
      break;
    default:
      throw bad(`unknown record type ${type}`);
  }
  if (p !== end) throw bad('trailing bytes after the record body');
  return record;
}
