/**
 * Whether an entry's data is a KV command exactly as `encodeCommand` writes one,
 * checked without decoding it: the inbound checks (`message-check.ts`) run this on every
 * entry a peer sends, so it walks the bytes and allocates nothing.
 *
 * An entry that is not such a command must never reach a log: once committed, every
 * replica applies it at every restart, and `decodeCommand` throws on it — a crash loop.
 * Beyond what `decodeCommand` needs, the check also refuses what would decode but break
 * the state machine later: a u64 past 2^53 (`BinaryReader.u64` refuses it, and log time
 * near 2^64 would make the snapshot encoder throw), a client id that is not UTF-8 or longer
 * than {@link MAX_CLIENT_ID_BYTES} (it is re-encoded into snapshots with a one-byte
 * length), and trailing bytes (no encoder writes them).
 * @internal
 */
import { isUtf8 } from 'node:buffer';
import { MAX_TTL_MS } from '../common/index.js';
import { CommandOp, MAX_CLIENT_ID_BYTES, TxnCompareKind, TxnOpKind } from './kv-command.js';

/** Bytes of the fixed header: op (1) and proposedAtMs (8). */
const HEADER_BYTES = 9;
const PUT = CommandOp.Put as number;
const DELETE = CommandOp.Delete as number;
const CAS = CommandOp.Cas as number;
const TXN = CommandOp.Txn as number;
const PUT_TTL = CommandOp.PutTtl as number;
const EXPIRE = CommandOp.Expire as number;
const COMPARE_VALUE = TxnCompareKind.Value as number;
const COMPARE_VERSION = TxnCompareKind.Version as number;
const COMPARE_EXISTS = TxnCompareKind.Exists as number;
const COMPARE_ABSENT = TxnCompareKind.Absent as number;
const OP_PUT = TxnOpKind.Put as number;
const OP_DELETE = TxnOpKind.Delete as number;
const OP_GET = TxnOpKind.Get as number;
const OP_PUT_TTL = TxnOpKind.PutTtl as number;

/** True when the little-endian u64 at `offset` (8 bytes, present) is at most 2^53 − 1. */
function safeU64(data: Uint8Array, offset: number): boolean {
  return data[offset + 7] === 0 && ((data[offset + 6] as number) & 0xe0) === 0;
}

/** True when `data[start, end)` is UTF-8; ASCII, what client ids are, is told without a native call or a view. */
function isUtf8Text(data: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if ((data[i] as number) >= 0x80) return isUtf8(data.subarray(start, end));
  return true;
}

/** Why `data` is not a KV command as `encodeCommand` writes one, or undefined when it is. */
export function checkCommandBytes(data: Uint8Array): string | undefined {
  const length = data.length;
  const op = data[0] as number;
  if (op === EXPIRE && length >= HEADER_BYTES + 1) {
    if (!safeU64(data, 1)) return 'command time beyond 2^53';
    if (data[HEADER_BYTES] !== 0) return 'expire command with a session';
    return length === HEADER_BYTES + 1 ? undefined : `command followed by ${length - HEADER_BYTES - 1} trailing bytes`;
  }
  if (length < HEADER_BYTES + 2) return `command of ${length} bytes is shorter than the smallest command`;
  if (op !== PUT && op !== DELETE && op !== CAS && op !== TXN && op !== PUT_TTL && op !== EXPIRE) return `unknown command op ${op}`;
  if (!safeU64(data, 1)) return 'command time beyond 2^53';
  if (op === EXPIRE) return 'expire command with a session';
  let offset = HEADER_BYTES;
  const clientIdBytes = data[offset++] as number;
  if (clientIdBytes > 0) {
    if (clientIdBytes > MAX_CLIENT_ID_BYTES) return `client id of ${clientIdBytes} bytes (the limit is ${MAX_CLIENT_ID_BYTES})`;
    if (offset + clientIdBytes + 8 > length) return 'command truncated in its session';
    if (!isUtf8Text(data, offset, offset + clientIdBytes)) return 'client id is not UTF-8';
    offset += clientIdBytes;
    if (!safeU64(data, offset)) return 'session seq beyond 2^53';
    offset += 8;
  }
  if (op === TXN) return checkTxnBytes(data, offset);
  if (offset >= length) return 'command truncated before its key';
  offset += 1 + (data[offset] as number);
  if (op === CAS) {
    if (offset + 8 > length) return 'command truncated in its expected version';
    if (!safeU64(data, offset)) return 'expected version beyond 2^53';
    offset += 8;
  }
  if (op !== DELETE) {
    if (offset + 2 > length) return 'command truncated before its value';
    offset += 2 + ((data[offset] as number) | ((data[offset + 1] as number) << 8));
  }
  if (op === PUT_TTL) {
    const problem = checkTtlAt(data, offset);
    if (problem !== undefined) return problem;
    offset += 8;
  }
  if (offset > length) return `command truncated: ${offset - length} bytes missing`;
  if (offset < length) return `command followed by ${length - offset} trailing bytes`;
  return undefined;
}

/**
 * The transaction after the session (`kv-command.ts`): compares, then the success and failure
 * operations, each counted by a byte and each kind known; versions at most 2^53 − 1.
 */
function checkTxnBytes(data: Uint8Array, start: number): string | undefined {
  const length = data.length;
  let offset = start;
  for (let part = 0; part < 3; part++) {
    if (offset >= length) return 'transaction truncated before a count';
    const count = data[offset++] as number;
    for (let i = 0; i < count; i++) {
      if (offset + 2 > length) return 'transaction truncated in an entry';
      const kind = data[offset] as number;
      offset += 2 + (data[offset + 1] as number);
      if (part === 0) {
        if (kind === COMPARE_VALUE) offset = skipValue(data, offset);
        else if (kind === COMPARE_VERSION) {
          if (offset + 8 > length) return 'transaction truncated in a compared version';
          if (!safeU64(data, offset)) return 'compared version beyond 2^53';
          offset += 8;
        } else if (kind !== COMPARE_EXISTS && kind !== COMPARE_ABSENT) return `unknown transaction compare kind ${kind}`;
      } else if (kind === OP_PUT) offset = skipValue(data, offset);
      else if (kind === OP_PUT_TTL) {
        offset = skipValue(data, offset);
        const problem = checkTtlAt(data, offset);
        if (problem !== undefined) return problem;
        offset += 8;
      } else if (kind !== OP_DELETE && kind !== OP_GET) return `unknown transaction operation kind ${kind}`;
      if (offset > length) return 'transaction truncated in an entry';
    }
  }
  if (offset < length) return `command followed by ${length - offset} trailing bytes`;
  return undefined;
}

/** The offset past a u16-prefixed value at `offset` (past the end when truncated). */
function skipValue(data: Uint8Array, offset: number): number {
  if (offset + 2 > data.length) return data.length + 1;
  return offset + 2 + ((data[offset] as number) | ((data[offset + 1] as number) << 8));
}

/**
 * Why the TTL at `offset` (8 bytes) is not one a leader proposes (1 ms to MAX_TTL_MS), or
 * undefined. A larger one would put the key's expiry past what a snapshot can carry.
 */
function checkTtlAt(data: Uint8Array, offset: number): string | undefined {
  if (offset + 8 > data.length) return 'command truncated in its TTL';
  if (!safeU64(data, offset)) return 'TTL beyond 2^53';
  let ttlMs = 0;
  for (let i = offset + 7; i >= offset; i--) ttlMs = ttlMs * 256 + (data[i] as number);
  if (ttlMs === 0) return 'TTL of 0 (a put without one is written as a plain put)';
  if (ttlMs > MAX_TTL_MS) return `TTL of ${ttlMs} ms (the limit is ${MAX_TTL_MS})`;
  return undefined;
}
