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
import { CommandOp, MAX_CLIENT_ID_BYTES } from './kv-command.js';

/** Bytes of the fixed header: op (1) and proposedAtMs (8). */
const HEADER_BYTES = 9;
const PUT = CommandOp.Put as number;
const DELETE = CommandOp.Delete as number;
const CAS = CommandOp.Cas as number;

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
  if (length < HEADER_BYTES + 2) return `command of ${length} bytes is shorter than the smallest command`;
  const op = data[0] as number;
  if (op !== PUT && op !== DELETE && op !== CAS) return `unknown command op ${op}`;
  if (!safeU64(data, 1)) return 'command time beyond 2^53';
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
  if (offset > length) return `command truncated: ${offset - length} bytes missing`;
  if (offset < length) return `command followed by ${length - offset} trailing bytes`;
  return undefined;
}
