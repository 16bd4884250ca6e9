/**
 * The protobuf codec of `RaftService.Send`'s `SendRequest`, written by hand for the
 * hottest path between nodes: every turn of every replica's traffic crosses it twice.
 * The generated codec reads each `uint64` through a BigInt and its string form and
 * grows its output chunk by chunk; this one sizes the message first, writes it into
 * one buffer, and reads varints as plain numbers. The bytes are standard protobuf of
 * raft.proto: a peer running the generated codec reads them, and this one reads its
 * (`test/node/send-request-codec.test.ts` checks both directions). Like the generated
 * code, it refuses a `uint64` above `Number.MAX_SAFE_INTEGER`.
 * @internal
 */
import type { RaftConfState, RaftEntry, RaftMessage, RaftSnapshot, RaftSnapshotMetadata, SendRequest } from '../gen/kvstore/v1/raft.js';

/** Wire types of the protobuf encoding. */
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

const EMPTY = Buffer.alloc(0);

/** Thrown for bytes that are not a valid `SendRequest`. */
export class SendRequestCodecError extends Error {
  override readonly name = 'SendRequestCodecError';
}

// ---------------------------------------------------------------------------------------
// Encoding: sizes first, then one buffer. Sizing records the body size of every nested
// message in `sizes`, in the order the writer meets them, so each is measured once.

/** Bytes of `value` as a varint; `value` is a non-negative safe integer. */
function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  let size = 4;
  let rest = Math.floor(value / 0x1000_0000);
  while (rest > 0) {
    size += 1;
    rest = Math.floor(rest / 0x80);
  }
  return size;
}

/** Bytes of a varint field with its one-byte tag, or 0 for the default value. */
function varintFieldSize(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

/** Bytes of a length-delimited field of `length` bytes with its one-byte tag. */
function lengthDelimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

function checkUint(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SendRequestCodecError(`${field} must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${value}`);
  }
}

/** The entry's field size; records its body size. */
function entrySize(entry: RaftEntry, sizes: number[]): number {
  checkUint(entry.term, 'entry term');
  checkUint(entry.index, 'entry index');
  const body =
    varintFieldSize(entry.term) +
    varintFieldSize(entry.index) +
    varintFieldSize(entry.type) +
    (entry.data.length === 0 ? 0 : lengthDelimitedSize(entry.data.length));
  sizes.push(body);
  return lengthDelimitedSize(body);
}

/** A packed field's size (0 when empty); records its body size. */
function packedSize(values: readonly number[], sizes: number[]): number {
  if (values.length === 0) return 0;
  let body = 0;
  for (const value of values) {
    checkUint(value, 'replica id');
    body += varintSize(value);
  }
  sizes.push(body);
  return lengthDelimitedSize(body);
}

function confStateSize(confState: RaftConfState, sizes: number[]): number {
  const slot = sizes.push(0) - 1;
  const body = packedSize(confState.voters, sizes) + packedSize(confState.learners, sizes);
  sizes[slot] = body;
  return lengthDelimitedSize(body);
}

function metadataSize(metadata: RaftSnapshotMetadata, sizes: number[]): number {
  checkUint(metadata.index, 'snapshot index');
  checkUint(metadata.term, 'snapshot term');
  const slot = sizes.push(0) - 1;
  const body =
    varintFieldSize(metadata.index) +
    varintFieldSize(metadata.term) +
    (metadata.confState === undefined ? 0 : confStateSize(metadata.confState, sizes));
  sizes[slot] = body;
  return lengthDelimitedSize(body);
}

function snapshotSize(snapshot: RaftSnapshot, sizes: number[]): number {
  const slot = sizes.push(0) - 1;
  const body =
    (snapshot.metadata === undefined ? 0 : metadataSize(snapshot.metadata, sizes)) +
    (snapshot.data.length === 0 ? 0 : lengthDelimitedSize(snapshot.data.length));
  sizes[slot] = body;
  return lengthDelimitedSize(body);
}

function messageSize(message: RaftMessage, sizes: number[]): number {
  checkUint(message.shardId, 'shard id');
  checkUint(message.to, 'to');
  checkUint(message.from, 'from');
  checkUint(message.term, 'term');
  checkUint(message.logTerm, 'log term');
  checkUint(message.index, 'index');
  checkUint(message.commit, 'commit');
  checkUint(message.rejectHint, 'reject hint');
  const slot = sizes.push(0) - 1;
  let body =
    varintFieldSize(message.shardId) +
    varintFieldSize(message.type) +
    varintFieldSize(message.to) +
    varintFieldSize(message.from) +
    varintFieldSize(message.term) +
    varintFieldSize(message.logTerm) +
    varintFieldSize(message.index) +
    varintFieldSize(message.commit) +
    (message.reject ? 2 : 0) +
    varintFieldSize(message.rejectHint);
  for (const entry of message.entries) body += entrySize(entry, sizes);
  if (message.snapshot !== undefined) body += snapshotSize(message.snapshot, sizes);
  if (message.context.length > 0) body += lengthDelimitedSize(message.context.length);
  if (message.quiesce === true) body += 2;
  sizes[slot] = body;
  return lengthDelimitedSize(body);
}

/** Writes into a buffer sized in advance, taking nested messages' sizes in the order they were measured. */
class Writer {
  offset = 0;
  private nextSize = 0;

  constructor(
    readonly buffer: Buffer,
    private readonly sizes: readonly number[],
  ) {}

  varint(value: number): void {
    const buffer = this.buffer;
    let rest = value;
    while (rest >= 0x8000_0000) {
      buffer[this.offset++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    while (rest >= 0x80) {
      buffer[this.offset++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    buffer[this.offset++] = rest;
  }

  /** A varint field (tag < 128), skipped when 0 as proto3 does. */
  varintField(tag: number, value: number): void {
    if (value === 0) return;
    this.buffer[this.offset++] = tag;
    this.varint(value);
  }

  /** The tag and length of a length-delimited field; the caller writes its body. */
  header(tag: number, length: number): void {
    this.buffer[this.offset++] = tag;
    this.varint(length);
  }

  /** The tag and length of the next nested message measured; the caller writes its body. */
  nested(tag: number): void {
    this.header(tag, this.sizes[this.nextSize++] ?? 0);
  }

  bytesField(tag: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.header(tag, bytes.length);
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.length;
  }
}

function writeEntry(writer: Writer, entry: RaftEntry): void {
  writer.varintField(0x08, entry.term);
  writer.varintField(0x10, entry.index);
  writer.varintField(0x18, entry.type);
  writer.bytesField(0x22, entry.data);
}

function writePacked(writer: Writer, tag: number, values: readonly number[]): void {
  if (values.length === 0) return;
  writer.nested(tag);
  for (const value of values) writer.varint(value);
}

function writeSnapshot(writer: Writer, snapshot: RaftSnapshot): void {
  const metadata = snapshot.metadata;
  if (metadata !== undefined) {
    writer.nested(0x0a);
    writer.varintField(0x08, metadata.index);
    writer.varintField(0x10, metadata.term);
    if (metadata.confState !== undefined) {
      writer.nested(0x1a);
      writePacked(writer, 0x0a, metadata.confState.voters);
      writePacked(writer, 0x12, metadata.confState.learners);
    }
  }
  writer.bytesField(0x12, snapshot.data);
}

function writeMessage(writer: Writer, message: RaftMessage): void {
  writer.varintField(0x08, message.shardId);
  writer.varintField(0x10, message.type);
  writer.varintField(0x18, message.to);
  writer.varintField(0x20, message.from);
  writer.varintField(0x28, message.term);
  writer.varintField(0x30, message.logTerm);
  writer.varintField(0x38, message.index);
  for (const entry of message.entries) {
    writer.nested(0x42);
    writeEntry(writer, entry);
  }
  writer.varintField(0x48, message.commit);
  writer.varintField(0x50, message.reject ? 1 : 0);
  writer.varintField(0x58, message.rejectHint);
  if (message.snapshot !== undefined) {
    writer.nested(0x62);
    writeSnapshot(writer, message.snapshot);
  }
  writer.bytesField(0x6a, message.context);
  if (message.quiesce === true) writer.varintField(0x70, 1);
}

/** `request` as protobuf bytes. Throws {@link SendRequestCodecError} for a number protobuf's uint64 cannot carry. */
export function encodeSendRequest(request: SendRequest): Buffer {
  const fromNodeIdBytes = Buffer.byteLength(request.fromNodeId, 'utf8');
  const sizes: number[] = [];
  let size = fromNodeIdBytes === 0 ? 0 : lengthDelimitedSize(fromNodeIdBytes);
  for (const message of request.messages) size += messageSize(message, sizes);
  const writer = new Writer(Buffer.allocUnsafe(size), sizes);
  if (fromNodeIdBytes > 0) {
    writer.header(0x0a, fromNodeIdBytes);
    writer.offset += writer.buffer.write(request.fromNodeId, writer.offset, 'utf8');
  }
  for (const message of request.messages) {
    writer.nested(0x12);
    writeMessage(writer, message);
  }
  if (writer.offset !== size) throw new Error(`SendRequest sized ${size} bytes but wrote ${writer.offset}`);
  return writer.buffer;
}

// ---------------------------------------------------------------------------------------
// Decoding.

/** Reads fields from `buffer[offset, end)`. */
class Reader {
  constructor(
    readonly buffer: Buffer,
    public offset: number,
    readonly end: number,
  ) {}

  more(): boolean {
    return this.offset < this.end;
  }

  varint(): number {
    const buffer = this.buffer;
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.offset >= this.end) throw new SendRequestCodecError('varint runs past the end of its message');
      const byte = buffer[this.offset++] ?? 0;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 63) throw new SendRequestCodecError('varint longer than 10 bytes');
    }
    if (value > Number.MAX_SAFE_INTEGER) throw new SendRequestCodecError(`value ${value} is larger than Number.MAX_SAFE_INTEGER`);
    return value;
  }

  /** The bounds of a length-delimited field's body; moves past it. */
  span(): [start: number, end: number] {
    const length = this.varint();
    const start = this.offset;
    if (start + length > this.end) throw new SendRequestCodecError(`field of ${length} bytes runs past the end of its message`);
    this.offset = start + length;
    return [start, start + length];
  }

  bytes(): Buffer {
    const [start, end] = this.span();
    return end === start ? EMPTY : this.buffer.subarray(start, end);
  }

  /** Skips a field of an unknown number (a newer peer's), given its tag. */
  skip(tag: number): void {
    if (tag >>> 3 === 0) throw new SendRequestCodecError('field number 0 is not valid');
    const wireType = tag & 7;
    if (wireType === VARINT) this.varint();
    else if (wireType === LENGTH_DELIMITED) this.span();
    else if (wireType === FIXED64) this.advance(8);
    else if (wireType === FIXED32) this.advance(4);
    else throw new SendRequestCodecError(`unsupported wire type ${wireType}`);
  }

  private advance(bytes: number): void {
    if (this.offset + bytes > this.end) throw new SendRequestCodecError('field runs past the end of its message');
    this.offset += bytes;
  }

  /** A nested message's reader; moves past it. */
  nested(): Reader {
    const [start, end] = this.span();
    return new Reader(this.buffer, start, end);
  }
}

/** Reads packed (or, as older encoders write them, unpacked) repeated uint64 values into `into`. */
function readRepeatedUint(reader: Reader, wireType: number, into: number[]): void {
  if (wireType !== LENGTH_DELIMITED) {
    into.push(reader.varint());
    return;
  }
  const packed = reader.nested();
  while (packed.more()) into.push(packed.varint());
}

function readEntry(reader: Reader): RaftEntry {
  const entry: RaftEntry = { term: 0, index: 0, type: 0, data: EMPTY };
  while (reader.more()) {
    const tag = reader.varint();
    if (tag === 0x08) entry.term = reader.varint();
    else if (tag === 0x10) entry.index = reader.varint();
    else if (tag === 0x18) entry.type = reader.varint();
    else if (tag === 0x22) entry.data = reader.bytes();
    else reader.skip(tag);
  }
  return entry;
}

function readConfState(reader: Reader): RaftConfState {
  const confState: RaftConfState = { voters: [], learners: [] };
  while (reader.more()) {
    const tag = reader.varint();
    if (tag >>> 3 === 1) readRepeatedUint(reader, tag & 7, confState.voters);
    else if (tag >>> 3 === 2) readRepeatedUint(reader, tag & 7, confState.learners);
    else reader.skip(tag);
  }
  return confState;
}

function readMetadata(reader: Reader): RaftSnapshotMetadata {
  const metadata: RaftSnapshotMetadata = { index: 0, term: 0 };
  while (reader.more()) {
    const tag = reader.varint();
    if (tag === 0x08) metadata.index = reader.varint();
    else if (tag === 0x10) metadata.term = reader.varint();
    else if (tag === 0x1a) metadata.confState = readConfState(reader.nested());
    else reader.skip(tag);
  }
  return metadata;
}

function readSnapshot(reader: Reader): RaftSnapshot {
  const snapshot: RaftSnapshot = { data: EMPTY };
  while (reader.more()) {
    const tag = reader.varint();
    if (tag === 0x0a) snapshot.metadata = readMetadata(reader.nested());
    else if (tag === 0x12) snapshot.data = reader.bytes();
    else reader.skip(tag);
  }
  return snapshot;
}

function readMessage(reader: Reader): RaftMessage {
  const message: RaftMessage = {
    shardId: 0,
    type: 0,
    to: 0,
    from: 0,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY,
  };
  while (reader.more()) {
    const tag = reader.varint();
    switch (tag) {
      case 0x08: message.shardId = reader.varint(); break;
      case 0x10: message.type = reader.varint(); break;
      case 0x18: message.to = reader.varint(); break;
      case 0x20: message.from = reader.varint(); break;
      case 0x28: message.term = reader.varint(); break;
      case 0x30: message.logTerm = reader.varint(); break;
      case 0x38: message.index = reader.varint(); break;
      case 0x42: message.entries.push(readEntry(reader.nested())); break;
      case 0x48: message.commit = reader.varint(); break;
      case 0x50: message.reject = reader.varint() !== 0; break;
      case 0x58: message.rejectHint = reader.varint(); break;
      case 0x62: message.snapshot = readSnapshot(reader.nested()); break;
      case 0x6a: message.context = reader.bytes(); break;
      case 0x70: message.quiesce = reader.varint() !== 0; break;
      default: reader.skip(tag);
    }
  }
  if (message.entries.length > 0) detachEntries(message.entries);
  return message;
}

/**
 * Copies each entry's data out of the received frame into an allocation of its own, exactly
 * its size. A replica keeps entries until its log is compacted, possibly for long: views
 * would pin the whole frame (every other shard's messages in the same SendRequest, up to the
 * transport's message limit) for as long as one entry of a quiet shard lives. An allocation
 * per entry, not one per message, lets the state machine keep a stored value as a view of
 * its entry (`decodeCommand`) without that value pinning the other entries of its message:
 * this copy is then the only one a follower makes of a value.
 */
function detachEntries(entries: RaftEntry[]): void {
  for (const entry of entries) {
    const length = entry.data.length;
    if (length === 0) continue;
    const copy = Buffer.allocUnsafeSlow(length);
    copy.set(entry.data);
    entry.data = copy;
  }
}

/**
 * A `SendRequest` from protobuf bytes. Entry data is copied out (see `detachEntries`); the
 * other bytes fields (contexts, snapshot chunks) are views of `bytes`, not copies.
 * Throws {@link SendRequestCodecError} for malformed input.
 */
export function decodeSendRequest(bytes: Buffer): SendRequest {
  const reader = new Reader(bytes, 0, bytes.length);
  const request: SendRequest = { fromNodeId: '', messages: [] };
  while (reader.more()) {
    const tag = reader.varint();
    if (tag === 0x0a) {
      const [start, end] = reader.span();
      request.fromNodeId = bytes.toString('utf8', start, end);
    } else if (tag === 0x12) {
      request.messages.push(readMessage(reader.nested()));
    } else {
      reader.skip(tag);
    }
  }
  return request;
}
