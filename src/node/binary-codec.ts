/**
 * Little-endian binary writer and reader for the node's own formats (KV commands,
 * KV snapshots). Compact and allocation-light: the hot path never builds JSON.
 * @internal
 */

const TWO_POW_32 = 0x1_0000_0000;
/** The high half of `Number.MAX_SAFE_INTEGER` (2^53 − 1). */
const MAX_SAFE_HIGH = 0x1f_ffff;

/** A growable buffer that appends fixed-width integers and length-prefixed bytes. */
export class BinaryWriter {
  private buffer: Buffer;
  private offset = 0;

  /**
   * @param initialBytes the starting capacity; it grows as needed.
   * @param exact the writer is filled to exactly `initialBytes`: its buffer is its own
   *   allocation (not a slice of Node's shared pool) and {@link finish} returns it uncopied.
   */
  constructor(initialBytes = 256, exact = false) {
    this.buffer = exact ? Buffer.allocUnsafeSlow(initialBytes) : Buffer.allocUnsafe(initialBytes);
  }

  private reserve(bytes: number): void {
    if (this.offset + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.offset + bytes) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }

  u8(value: number): this {
    this.reserve(1);
    this.buffer[this.offset++] = value;
    return this;
  }

  u16(value: number): this {
    this.reserve(2);
    this.buffer.writeUInt16LE(value, this.offset);
    this.offset += 2;
    return this;
  }

  u32(value: number): this {
    this.reserve(4);
    this.buffer.writeUInt32LE(value, this.offset);
    this.offset += 4;
    return this;
  }

  /** A non-negative safe integer (< 2^53) in 8 bytes. */
  u64(value: number): this {
    this.reserve(8);
    this.buffer.writeUInt32LE(value % TWO_POW_32, this.offset);
    this.buffer.writeUInt32LE(Math.floor(value / TWO_POW_32), this.offset + 4);
    this.offset += 8;
    return this;
  }

  /** Raw bytes, no length. */
  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.length;
    return this;
  }

  /** Bytes prefixed by a u8 length (≤ 255). */
  bytes8(bytes: Uint8Array): this {
    return this.u8(bytes.length).raw(bytes);
  }

  /** Bytes prefixed by a u32 length. */
  bytes32(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  /** A string's UTF-8 bytes prefixed by a u8 length; `bytes` is its UTF-8 length (≤ 255). */
  utf8String8(text: string, bytes: number): this {
    this.reserve(1 + bytes);
    this.buffer[this.offset++] = bytes;
    this.offset += this.buffer.write(text, this.offset, bytes, 'utf8');
    return this;
  }

  /**
   * Everything written, exactly sized: the writer's own buffer when it is exactly full (an
   * exact writer filled as sized), else a copy. Nothing may be written after it.
   */
  finish(): Buffer {
    if (this.offset === this.buffer.length) return this.buffer;
    return Buffer.from(this.buffer.subarray(0, this.offset));
  }
}

/** Thrown when a buffer ends early or holds an unknown tag: the data is corrupt. */
export class CodecError extends Error {
  readonly code = 'CORRUPT';
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

/** Reads what {@link BinaryWriter} wrote; throws {@link CodecError} on truncation. */
export class BinaryReader {
  private offset = 0;
  private readonly buffer: Buffer;

  constructor(bytes: Uint8Array) {
    this.buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(bytes: number): void {
    if (this.offset + bytes > this.buffer.length) {
      throw new CodecError(`truncated: need ${bytes} bytes at offset ${this.offset} of ${this.buffer.length}`);
    }
  }

  get remaining(): number {
    return this.buffer.length - this.offset;
  }

  u8(): number {
    this.need(1);
    return this.buffer[this.offset++] ?? 0;
  }

  u16(): number {
    this.need(2);
    const value = this.buffer.readUInt16LE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.buffer.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  /**
   * A u64 that JavaScript holds exactly (≤ `Number.MAX_SAFE_INTEGER`); a larger one is
   * corrupt data: every u64 written is a safe integer, and reading one that is not would
   * hand the state machine a number it cannot write back (`u64` of 2^64 throws).
   */
  u64(): number {
    this.need(8);
    const low = this.buffer.readUInt32LE(this.offset);
    const high = this.buffer.readUInt32LE(this.offset + 4);
    if (high > MAX_SAFE_HIGH) throw new CodecError(`u64 at offset ${this.offset} is beyond 2^53`);
    this.offset += 8;
    return high * TWO_POW_32 + low;
  }

  /** A view (not a copy) of the next `length` bytes. */
  raw(length: number): Buffer {
    this.need(length);
    const view = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return view;
  }

  bytes8(): Buffer {
    return this.raw(this.u8());
  }

  bytes32(): Buffer {
    return this.raw(this.u32());
  }

  /** The next u8-prefixed bytes as a latin1 string: a lossless, cheap map key for bytes. */
  latin1String8(): string {
    const length = this.u8();
    this.need(length);
    const text = this.buffer.toString('latin1', this.offset, this.offset + length);
    this.offset += length;
    return text;
  }
}

/** A zero-copy Buffer view of a Uint8Array (generated proto types want Buffer). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
