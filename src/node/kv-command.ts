/**
 * The KV state machine's commands as they travel in Raft log entries: a compact
 * binary encoding (no JSON on the hot path).
 *
 * Layout, little-endian:
 * ```
 * u8  op            1 put · 2 delete · 3 cas · 5 put with a TTL · 6 expire (4: see below)
 * u64 proposedAtMs  log time as the proposing leader stamped it (`log-clock.ts`); the
 *                   only notion of time the state machine has (session expiry),
 *                   identical on every replica
 * u8  clientIdLen   0 = no session
 * ..  clientId      UTF-8
 * u64 seq           present only when clientIdLen > 0
 * u8  keyLen, key
 * u64 expectedVersion   cas only
 * u16 valueLen, value   put and cas only
 * u64 ttlMs             put with a TTL only
 * ```
 * An expire (op 6) is the header and an empty session alone: it carries log time, and applying
 * it removes the keys whose expiry that time reached (as applying any command does).
 * A transaction (op 4) has no key of its own after the session; instead:
 * ```
 * u8  compareCount, then per compare:
 *       u8 kind (1 value · 2 version · 3 exists · 4 absent), u8 keyLen, key,
 *       u16 valueLen, value (value) · u64 version (version)
 * u8  successCount, then per operation: u8 kind (1 put · 2 delete · 3 get · 4 put with a TTL),
 *       u8 keyLen, key, u16 valueLen, value (puts), u64 ttlMs (put with a TTL)
 * u8  failureCount, operations as above
 * ```
 * @internal
 */
import { MAX_TTL_MS } from '../common/index.js';
import { BinaryReader, BinaryWriter, CodecError } from './binary-codec.js';

/** Operation tags in the first byte of a command. */
export enum CommandOp {
  Put = 1,
  Delete = 2,
  Cas = 3,
  Txn = 4,
  /** A put with a TTL, as encoded; it decodes as a {@link CommandOp.Put} with `ttlMs` > 0. */
  PutTtl = 5,
  Expire = 6,
}

/** Compare kinds of a transaction, as encoded. */
export enum TxnCompareKind {
  Value = 1,
  Version = 2,
  Exists = 3,
  Absent = 4,
}

/** Operation kinds of a transaction branch, as encoded. */
export enum TxnOpKind {
  Put = 1,
  Delete = 2,
  Get = 3,
  /** A put with a TTL, as encoded; it decodes as a {@link TxnOpKind.Put} with `ttlMs` > 0. */
  PutTtl = 4,
}

/** One compare of a transaction; `K` is the key's type, `V` the value's. */
export type TxnCompare<K, V> =
  | { kind: TxnCompareKind.Value; key: K; value: V }
  | { kind: TxnCompareKind.Version; key: K; version: number }
  | { kind: TxnCompareKind.Exists | TxnCompareKind.Absent; key: K };

/** One operation of a transaction branch. */
export type TxnOp<K, V> = { kind: TxnOpKind.Put; key: K; value: V; ttlMs?: number } | { kind: TxnOpKind.Delete | TxnOpKind.Get; key: K };

/** A transaction: if every compare holds, `success` runs, else `failure`, in order. */
export interface TxnSpec<K, V> {
  compares: TxnCompare<K, V>[];
  success: TxnOp<K, V>[];
  failure: TxnOp<K, V>[];
}

/** A client session: a retried `(clientId, seq)` returns the first result. */
export interface CommandSession {
  clientId: string;
  seq: number;
}

/** A decoded write command. `key` is the key's bytes as a latin1 string (lossless). */
export type KvCommand =
  /** `ttlMs` 0: the key never expires. */
  | { op: CommandOp.Put; proposedAtMs: number; session?: CommandSession; key: string; value: Buffer; ttlMs: number }
  | { op: CommandOp.Expire; proposedAtMs: number }
  | { op: CommandOp.Delete; proposedAtMs: number; session?: CommandSession; key: string }
  | {
      op: CommandOp.Cas;
      proposedAtMs: number;
      session?: CommandSession;
      key: string;
      expectedVersion: number;
      value: Buffer;
    }
  | {
      op: CommandOp.Txn;
      proposedAtMs: number;
      session?: CommandSession;
      txn: TxnSpec<string, Buffer>;
      /** The transaction's bytes after the session: what its fingerprint hashes. */
      body: Uint8Array;
    };

/** Most bytes of a client id; longer ones are refused with INVALID_ARGUMENT. */
export const MAX_CLIENT_ID_BYTES = 128;

/** What a write asks for, before it is stamped and encoded. */
export type WriteRequest =
  | { op: CommandOp.Put; key: Uint8Array; value: Uint8Array; session?: CommandSession; ttlMs?: number }
  /** Proposed by a leader, never by a client: `key` is empty. */
  | { op: CommandOp.Expire; key: Uint8Array }
  | { op: CommandOp.Delete; key: Uint8Array; session?: CommandSession }
  | { op: CommandOp.Cas; key: Uint8Array; expectedVersion: number; value: Uint8Array; session?: CommandSession }
  /** `key` is the first key of the transaction: it names the shard, as every key does. */
  | { op: CommandOp.Txn; key: Uint8Array; txn: TxnSpec<Uint8Array, Uint8Array>; session?: CommandSession };

/**
 * Encodes a write for the log, stamping it with the proposer's log time (`log-clock.ts`).
 * A single-key write comes out in one allocation of its exact size, its own (not a slice of
 * Node's shared pool), so {@link decodeCommand} may keep views of it (see there).
 */
export function encodeCommand(request: WriteRequest, proposedAtMs: number): Buffer {
  const ttlMs = request.op === CommandOp.Put ? request.ttlMs ?? 0 : 0;
  const session = request.op === CommandOp.Expire || request.session?.clientId === '' ? undefined : request.session;
  const clientIdBytes = session === undefined ? 0 : Buffer.byteLength(session.clientId, 'utf8');
  const headerBytes = 1 + 8 + 1 + (session === undefined ? 0 : clientIdBytes + 8);
  const writer =
    request.op === CommandOp.Txn
      ? new BinaryWriter(headerBytes + TXN_COUNT_BYTES + writeRequestBytes(request))
      : new BinaryWriter(headerBytes + singleKeyBodyBytes(request, ttlMs), true);
  writer.u8(ttlMs > 0 ? CommandOp.PutTtl : request.op).u64(proposedAtMs);
  if (session === undefined) writer.u8(0);
  else writer.utf8String8(session.clientId, clientIdBytes).u64(session.seq);
  if (request.op === CommandOp.Expire) return writer.finish();
  if (request.op === CommandOp.Txn) {
    encodeTxn(writer, request.txn);
    return writer.finish();
  }
  writer.bytes8(request.key);
  if (request.op === CommandOp.Cas) writer.u64(request.expectedVersion);
  if (request.op !== CommandOp.Delete) writer.u16(request.value.length).raw(request.value);
  if (ttlMs > 0) writer.u64(ttlMs);
  return writer.finish();
}

/** The bytes of a single-key command after its session, exactly as {@link encodeCommand} writes them. */
function singleKeyBodyBytes(request: Exclude<WriteRequest, { op: CommandOp.Txn }>, ttlMs: number): number {
  switch (request.op) {
    case CommandOp.Expire:
      return 0;
    case CommandOp.Delete:
      return 1 + request.key.length;
    case CommandOp.Put:
      return 1 + request.key.length + 2 + request.value.length + (ttlMs > 0 ? 8 : 0);
    case CommandOp.Cas:
      return 1 + request.key.length + 8 + 2 + request.value.length;
  }
}

/** A transaction's three one-byte counts (compares, success, failure), which writeRequestBytes leaves out. */
const TXN_COUNT_BYTES = 3;

/** Bytes of keys and values a write carries (what admission and the encoder's buffer count). */
export function writeRequestBytes(request: WriteRequest): number {
  if (request.op !== CommandOp.Txn) return request.key.length + ('value' in request ? request.value.length : 0) + ('ttlMs' in request ? 8 : 0);
  let bytes = 0;
  for (const compare of request.txn.compares) bytes += 3 + compare.key.length + (compare.kind === TxnCompareKind.Value ? 2 + compare.value.length : 8);
  for (const op of [...request.txn.success, ...request.txn.failure]) bytes += 12 + op.key.length + (op.kind === TxnOpKind.Put ? op.value.length : 0);
  return bytes;
}

function encodeTxn(writer: BinaryWriter, txn: TxnSpec<Uint8Array, Uint8Array>): void {
  writer.u8(txn.compares.length);
  for (const compare of txn.compares) {
    writer.u8(compare.kind).bytes8(compare.key);
    if (compare.kind === TxnCompareKind.Value) writer.u16(compare.value.length).raw(compare.value);
    else if (compare.kind === TxnCompareKind.Version) writer.u64(compare.version);
  }
  for (const branch of [txn.success, txn.failure]) {
    writer.u8(branch.length);
    for (const op of branch) {
      const ttlMs = op.kind === TxnOpKind.Put ? op.ttlMs ?? 0 : 0;
      writer.u8(ttlMs > 0 ? TxnOpKind.PutTtl : op.kind).bytes8(op.key);
      if (op.kind === TxnOpKind.Put) writer.u16(op.value.length).raw(op.value);
      if (ttlMs > 0) writer.u64(ttlMs);
    }
  }
}

function decodeTxn(reader: BinaryReader): TxnSpec<string, Buffer> {
  const compares: TxnCompare<string, Buffer>[] = [];
  const compareCount = reader.u8();
  for (let i = 0; i < compareCount; i++) {
    const kind = reader.u8() as TxnCompareKind;
    const key = reader.latin1String8();
    switch (kind) {
      case TxnCompareKind.Value:
        compares.push({ kind, key, value: Buffer.from(reader.raw(reader.u16())) });
        break;
      case TxnCompareKind.Version:
        compares.push({ kind, key, version: reader.u64() });
        break;
      case TxnCompareKind.Exists:
      case TxnCompareKind.Absent:
        compares.push({ kind, key });
        break;
      default:
        throw new CodecError(`unknown transaction compare kind ${String(kind)}`);
    }
  }
  const branch = (): TxnOp<string, Buffer>[] => {
    const ops: TxnOp<string, Buffer>[] = [];
    const count = reader.u8();
    for (let i = 0; i < count; i++) {
      const kind = reader.u8() as TxnOpKind;
      const key = reader.latin1String8();
      switch (kind) {
        case TxnOpKind.Put:
          ops.push({ kind, key, value: Buffer.from(reader.raw(reader.u16())) });
          break;
        case TxnOpKind.PutTtl: {
          const value = Buffer.from(reader.raw(reader.u16()));
          ops.push({ kind: TxnOpKind.Put, key, value, ttlMs: nonZero(reader.u64(), 'transaction put TTL') });
          break;
        }
        case TxnOpKind.Delete:
        case TxnOpKind.Get:
          ops.push({ kind, key });
          break;
        default:
          throw new CodecError(`unknown transaction operation kind ${String(kind)}`);
      }
    }
    return ops;
  };
  const success = branch();
  const failure = branch();
  return { compares, success, failure };
}

/** A TTL read from a command: 0 is written as a plain put, never as a TTL; none is above MAX_TTL_MS. */
function nonZero(ttlMs: number, what: string): number {
  if (ttlMs === 0 || ttlMs > MAX_TTL_MS) throw new CodecError(`${what} of ${ttlMs} ms`);
  return ttlMs;
}

/**
 * Decodes an entry's data; throws CodecError on corrupt data (a bug or a broken log).
 *
 * A put's or cas's value is a view of `data`, not a copy, when `data` is a whole allocation of
 * its own (as {@link encodeCommand}, a follower's received entries and the WAL's recovery make
 * it): the stored value then keeps alive no more than its own command's bytes. Data that shares
 * its memory with other bytes (a slice of a larger buffer, of Node's pool) has its value copied,
 * so that one stored value never holds a larger buffer in memory. Entry data is never
 * written after it is made, so a view sees the bytes that were proposed.
 */
export function decodeCommand(data: Uint8Array): KvCommand {
  const reader = new BinaryReader(data);
  const ownsMemory = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  const value = (length: number): Buffer => (ownsMemory ? reader.raw(length) : Buffer.from(reader.raw(length)));
  const op = reader.u8() as CommandOp;
  const proposedAtMs = reader.u64();
  if (op === CommandOp.Expire) {
    if (reader.u8() !== 0 || reader.remaining !== 0) throw new CodecError('expire command with a session or trailing bytes');
    return { op, proposedAtMs };
  }
  const clientIdBytes = reader.bytes8();
  const session = clientIdBytes.length === 0 ? undefined : { clientId: clientIdBytes.toString('utf8'), seq: reader.u64() };
  const withSession = session === undefined ? {} : { session };
  if (op === CommandOp.Txn) {
    const bodyStart = data.length - reader.remaining;
    const txn = decodeTxn(reader);
    if (reader.remaining !== 0) throw new CodecError(`transaction followed by ${reader.remaining} trailing bytes`);
    return { op, proposedAtMs, ...withSession, txn, body: data.subarray(bodyStart) };
  }
  const key = reader.latin1String8();
  switch (op) {
    case CommandOp.Put:
      return { op, proposedAtMs, ...withSession, key, value: value(reader.u16()), ttlMs: 0 };
    case CommandOp.PutTtl: {
      const putValue = value(reader.u16());
      return { op: CommandOp.Put, proposedAtMs, ...withSession, key, value: putValue, ttlMs: nonZero(reader.u64(), 'put TTL') };
    }
    case CommandOp.Delete:
      return { op, proposedAtMs, ...withSession, key };
    case CommandOp.Cas: {
      const expectedVersion = reader.u64();
      return { op, proposedAtMs, ...withSession, key, expectedVersion, value: value(reader.u16()) };
    }
    default:
      throw new CodecError(`unknown KV command op ${String(op)}`);
  }
}

/**
 * What a write asked for, in 17 bytes: recorded with its result, so that a retry of its
 * `(clientId, seq)` can be checked to be the same write before it is answered with that
 * result. Key and value are 32-bit FNV-1a hashes: a retry with another key or value passes
 * for the recorded write only if its hash collides (about 1 in 4 billion).
 */
export interface CommandFingerprint {
  op: CommandOp;
  keyHash: number;
  /** Hash of the value; 0 for a delete. */
  valueHash: number;
  /** What a cas expected; 0 for put and delete. */
  expectedVersion: number;
}

/** The fingerprint of a decoded command. */
export function fingerprintOf(command: Exclude<KvCommand, { op: CommandOp.Expire }>): CommandFingerprint {
  if (command.op === CommandOp.Txn) return { op: command.op, keyHash: fnv1a(command.body), valueHash: 0, expectedVersion: 0 };
  return {
    op: command.op,
    keyHash: fnv1a(command.key),
    valueHash: command.op === CommandOp.Delete ? 0 : fnv1a(command.value),
    expectedVersion: command.op === CommandOp.Cas ? command.expectedVersion : 0,
  };
}

/** What differs between a recorded write and a retry of it, in words, or undefined when they match. */
export function describeMismatch(recorded: CommandFingerprint, retried: CommandFingerprint): string | undefined {
  if (recorded.op !== retried.op) return `it was a ${opName(recorded.op)}, this is a ${opName(retried.op)}`;
  if (recorded.keyHash !== retried.keyHash) return recorded.op === CommandOp.Txn ? 'it was another transaction' : `it wrote another key`;
  if (recorded.valueHash !== retried.valueHash) return `it wrote another value`;
  if (recorded.expectedVersion !== retried.expectedVersion) {
    return `it expected version ${recorded.expectedVersion}, this expects ${retried.expectedVersion}`;
  }
  return undefined;
}

/** The name of an operation, for messages. */
export function opName(op: CommandOp): string {
  switch (op) {
    case CommandOp.Put:
      return 'put';
    case CommandOp.Delete:
      return 'delete';
    case CommandOp.Cas:
      return 'compare-and-set';
    case CommandOp.Txn:
      return 'transaction';
    case CommandOp.PutTtl:
      return 'put with a TTL';
    case CommandOp.Expire:
      return 'expire';
  }
}

/** 32-bit FNV-1a over bytes, or over a latin1 string's chars (one byte each). About 3 ns a byte. */
function fnv1a(data: Uint8Array | string): number {
  let hash = 0x811c9dc5;
  const length = data.length;
  if (typeof data === 'string') {
    for (let i = 0; i < length; i++) hash = Math.imul(hash ^ data.charCodeAt(i), 0x01000193);
  } else {
    for (let i = 0; i < length; i++) hash = Math.imul(hash ^ (data[i] as number), 0x01000193);
  }
  return hash >>> 0;
}
