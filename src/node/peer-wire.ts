/**
 * The Raft message stream's own wire, beside gRPC on the node's one port (`peer-listener.ts`).
 *
 * A gRPC client stream costs a message ~70 µs of CPU (send and receive, both processes) when
 * each travels alone, as at light load; length-prefixed frames on a TCP connection cost about
 * half (docs/benchmarks.md). So peers send `SendRequest`s this way, and gRPC's
 * `RaftService.Send` stays for peers that do not speak it (an older node).
 *
 * A connection: the client writes {@link PEER_STREAM_MAGIC} in plaintext (no HTTP/2 preface or
 * TLS ClientHello starts with it, so the listener tells it from a gRPC connection by its first
 * bytes), then, in a cluster with TLS, starts TLS on the same connection. Then frames, each a
 * 4-byte big-endian length and that many bytes:
 * - client → server: one hello (JSON {@link PeerHello}), then `SendRequest`s (`send-request-codec.ts`);
 * - server → client: one answer (JSON {@link PeerAnswer}), then empty frames now and then that say
 *   the server is alive (the client drops a connection that went silent, as gRPC's keepalive does).
 * @internal
 */

/** What the client writes first, in plaintext: 16 bytes. */
export const PEER_STREAM_MAGIC = Buffer.from('KVSTORE-RAFT/1\r\n', 'latin1');

/** The largest hello or answer frame (a node id and a token are far below it). */
export const MAX_CONTROL_FRAME_BYTES = 16 * 1024;

/** The client's first frame. */
export interface PeerHello {
  /** The sending node's id. */
  node: string;
  /** Its bearer token, in a cluster with tokens and no TLS. */
  token?: string;
}

/** The server's first frame: whether it takes the stream, and why not. */
export interface PeerAnswer {
  ok: boolean;
  error?: string;
}

/** How often a server says it is alive on an open stream (an empty frame). */
export const ALIVE_INTERVAL_MS = 2_000;
/** A client drops a stream whose server said nothing for this long. */
export const CLIENT_SILENCE_LIMIT_MS = 10_000;
/**
 * A server drops a stream whose client sent nothing for this long: a client's transport writes
 * to every peer at least every second or so (`RaftTransport.keepAlive`).
 */
export const SERVER_SILENCE_LIMIT_MS = 30_000;

/** The 4-byte length prefix of a frame of `length` bytes. */
export function frameHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(length, 0);
  return header;
}

/** A JSON control frame, prefix included. */
export function controlFrame(value: PeerHello | PeerAnswer): Buffer {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  return Buffer.concat([frameHeader(body.length), body]);
}

/** Thrown for a frame longer than the reader's limit: the connection must be dropped. */
export class FrameTooLarge extends Error {}

/**
 * Cuts a byte stream into frames, one at a time, so the limit may change between two frames of
 * one chunk (a stream's first frame is a small hello; the frames after it may be large). Frames
 * are slices of the chunks, not copies; a frame split across chunks is copied together once, when
 * all of it has come (a 4 MiB frame arrives in hundreds of reads).
 */
export class FrameReader {
  /** Bytes read and not yet returned as frames, in order; the first may be a slice of a chunk. */
  private readonly chunks: Buffer[] = [];
  private total = 0;

  /** @param maxFrameBytes the largest frame accepted (checked from its length, before it is buffered). */
  constructor(public maxFrameBytes: number) {}

  /** Bytes held and not yet returned as frames. */
  get buffered(): number {
    return this.total;
  }

  /** Adds bytes read off the stream. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /**
   * The next whole frame, or undefined until more bytes come.
   * @throws FrameTooLarge when the next frame's length is over the limit.
   */
  next(): Buffer | undefined {
    if (this.total < 4) return undefined;
    let head = this.joinFirst(4);
    const length = head.readUInt32BE(0);
    if (length > this.maxFrameBytes) throw new FrameTooLarge(`a frame of ${length} bytes (limit ${this.maxFrameBytes})`);
    if (this.total < 4 + length) return undefined;
    head = this.joinFirst(4 + length); // a frame split across chunks is copied together once, when whole
    const rest = head.subarray(4 + length);
    if (rest.length > 0) this.chunks[0] = rest;
    else this.chunks.shift();
    this.total -= 4 + length;
    return head.subarray(4, 4 + length);
  }

  /** Makes the first chunk hold at least `bytes` bytes (there are that many), joining as few chunks as it takes. */
  private joinFirst(bytes: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= bytes) return first;
    let count = 0;
    let joined = 0;
    while (joined < bytes) joined += (this.chunks[count++] as Buffer).length;
    const head = Buffer.concat(this.chunks.slice(0, count), joined);
    this.chunks.splice(0, count, head);
    return head;
  }
}

/** Parses a JSON control frame into an object, or undefined when it is not one. */
export function parseControlFrame(frame: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(frame.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
