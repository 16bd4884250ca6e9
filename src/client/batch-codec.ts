/**
 * The `Batch` stream's `BatchRequest`, encoded by hand: every call a client makes passes through
 * it. The generated encoder grows its buffer piece by piece, forks and joins a writer per nested
 * message, and its bytes were then copied once more into a Buffer; this one sizes the message
 * first and writes it into one buffer. Gets, puts and deletes (the hot items) are written here;
 * a cas or a transaction item is written by the generated code and its bytes copied in. The bytes
 * are exactly the generated encoder's (proto3: fields at their defaults are left out, in field
 * order), which a property test checks, so the node reads them as it always did.
 * @internal
 */
import { BatchRequestItem, type BatchRequest, type Session } from '../gen/kvstore/v1/kvstore.js';

const TWO_POW_7 = 0x80;

/** Bytes of `value` (a non-negative safe integer) as a varint. */
function varintBytes(value: number): number {
  let bytes = 1;
  while (value >= TWO_POW_7) {
    value = Math.floor(value / TWO_POW_7);
    bytes++;
  }
  return bytes;
}

/** A field of wire type LEN holding `length` bytes: its one-byte tag, its length, its bytes. */
function lenField(length: number): number {
  return 1 + varintBytes(length) + length;
}

/**
 * A uint64 field (one-byte tag), or nothing when it is 0. Like the generated encoder, it refuses
 * a number that is not a non-negative safe integer (it would be written wrong, or never end).
 */
function uintField(value: number): number {
  if (!(Number.isSafeInteger(value) && value >= 0)) throw new RangeError(`batch codec: ${value} is not a uint64 this client sends`);
  return value === 0 ? 0 : 1 + varintBytes(value);
}

function sessionBytes(session: Session, clientIdBytes: number): number {
  return (clientIdBytes === 0 ? 0 : lenField(clientIdBytes)) + uintField(session.seq);
}

/** What the first pass learned of one item, for the second to write. */
interface ItemPlan {
  item: BatchRequestItem;
  /** The op message's bytes (without its tag and length). */
  opBytes: number;
  /** The item message's bytes (without its tag and length). */
  itemBytes: number;
  /** For a session: its client id's UTF-8 bytes, and the session message's bytes. */
  clientIdBytes: number;
  sessionBytes: number;
  /** A cas or transaction item, as the generated code encodes the whole item. */
  generated: Uint8Array | undefined;
}

function planItem(item: BatchRequestItem): ItemPlan {
  const plan: ItemPlan = { item, opBytes: 0, itemBytes: 0, clientIdBytes: 0, sessionBytes: 0, generated: undefined };
  const op = item.op;
  const session = op !== undefined && (op.$case === 'put' || op.$case === 'delete') ? op.value.session : undefined;
  if (session !== undefined) {
    plan.clientIdBytes = Buffer.byteLength(session.clientId, 'utf8');
    plan.sessionBytes = sessionBytes(session, plan.clientIdBytes);
  }
  switch (op?.$case) {
    case undefined:
      break;
    case 'get':
      plan.opBytes = bytesField(op.value.key) + uintField(op.value.epoch);
      break;
    case 'put':
      plan.opBytes =
        bytesField(op.value.key) +
        bytesField(op.value.value) +
        (session === undefined ? 0 : lenField(plan.sessionBytes)) +
        uintField(op.value.epoch) +
        uintField(op.value.ttlMs);
      break;
    case 'delete':
      plan.opBytes = bytesField(op.value.key) + (session === undefined ? 0 : lenField(plan.sessionBytes)) + uintField(op.value.epoch);
      break;
    case 'cas':
    case 'txn':
      plan.generated = BatchRequestItem.encode(item).finish();
      plan.itemBytes = plan.generated.length;
      return plan;
  }
  plan.itemBytes = uintField(item.requestId) + (op === undefined ? 0 : lenField(plan.opBytes));
  return plan;
}

/** A bytes field: left out when empty, as proto3 does. */
function bytesField(bytes: Uint8Array): number {
  return bytes.length === 0 ? 0 : lenField(bytes.length);
}

/** Writes protobuf fields into a buffer sized beforehand. */
class Writer {
  offset = 0;
  constructor(readonly buffer: Buffer) {}

  varint(value: number): void {
    while (value >= TWO_POW_7) {
      this.buffer[this.offset++] = (value % TWO_POW_7) | TWO_POW_7;
      value = Math.floor(value / TWO_POW_7);
    }
    this.buffer[this.offset++] = value;
  }

  uintField(tag: number, value: number): void {
    if (value === 0) return;
    this.buffer[this.offset++] = tag;
    this.varint(value);
  }

  bytesField(tag: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.buffer[this.offset++] = tag;
    this.varint(bytes.length);
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.length;
  }

  lenHeader(tag: number, length: number): void {
    this.buffer[this.offset++] = tag;
    this.varint(length);
  }

  session(tag: number, plan: ItemPlan, session: Session): void {
    this.lenHeader(tag, plan.sessionBytes);
    if (plan.clientIdBytes > 0) {
      this.lenHeader(0x0a, plan.clientIdBytes);
      this.offset += this.buffer.write(session.clientId, this.offset, plan.clientIdBytes, 'utf8');
    }
    this.uintField(0x10, session.seq);
  }
}

/** The bytes of `request`, exactly as `BatchRequest.encode(request).finish()` writes them. */
export function encodeBatchRequest(request: BatchRequest): Buffer {
  const plans = request.items.map(planItem);
  let total = 0;
  for (const plan of plans) total += lenField(plan.itemBytes);
  const writer = new Writer(Buffer.allocUnsafe(total));
  for (const plan of plans) {
    writer.lenHeader(0x0a, plan.itemBytes);
    if (plan.generated !== undefined) {
      writer.buffer.set(plan.generated, writer.offset);
      writer.offset += plan.generated.length;
      continue;
    }
    writer.uintField(0x08, plan.item.requestId);
    const op = plan.item.op;
    switch (op?.$case) {
      case undefined:
      case 'cas':
      case 'txn':
        break;
      case 'get':
        writer.lenHeader(0x12, plan.opBytes);
        writer.bytesField(0x0a, op.value.key);
        writer.uintField(0x10, op.value.epoch);
        break;
      case 'put':
        writer.lenHeader(0x1a, plan.opBytes);
        writer.bytesField(0x0a, op.value.key);
        writer.bytesField(0x12, op.value.value);
        if (op.value.session !== undefined) writer.session(0x1a, plan, op.value.session);
        writer.uintField(0x20, op.value.epoch);
        writer.uintField(0x28, op.value.ttlMs);
        break;
      case 'delete':
        writer.lenHeader(0x22, plan.opBytes);
        writer.bytesField(0x0a, op.value.key);
        if (op.value.session !== undefined) writer.session(0x12, plan, op.value.session);
        writer.uintField(0x18, op.value.epoch);
        break;
    }
  }
  if (writer.offset !== total) throw new Error(`batch codec: wrote ${writer.offset} bytes of ${total}`);
  return writer.buffer;
}
