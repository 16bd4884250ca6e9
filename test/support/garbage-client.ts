/**
 * A client that sends a node what no correct client sends: random bytes instead of HTTP/2, and
 * on well-formed HTTP/2 connections gRPC frames that are malformed — random bytes as protobuf,
 * length prefixes that promise tens of MiB (and then deliver them), unknown methods, a
 * compressed flag with no encoding. For tests of what a node survives (issue 15). Every socket
 * and session it opens is destroyed before its functions resolve.
 */
import { randomBytes } from 'node:crypto';
import { connect as connectHttp2, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { connect as connectTcp } from 'node:net';

/** What one round did, for the test's report. */
export interface GarbageStats {
  rawConnections: number;
  streams: number;
  /** Streams the node answered with a gRPC status (any), by status code. */
  statuses: Map<number, number>;
  /** Streams reset or failed without a status. */
  resets: number;
  /** Bytes written. */
  bytes: number;
}

export function emptyStats(): GarbageStats {
  return { rawConnections: 0, streams: 0, statuses: new Map(), resets: 0, bytes: 0 };
}

/** Random bytes straight onto TCP: not HTTP/2 at all. */
export function sendRawGarbage(port: number, bytes: number, stats: GarbageStats): Promise<void> {
  stats.rawConnections += 1;
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    const done = (): void => {
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, 2000);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('connect', () => {
      stats.bytes += bytes;
      socket.end(randomBytes(bytes));
    });
  });
}

/** One malformed gRPC stream to send. */
export interface BadStream {
  path: string;
  /** The 5-byte gRPC prefix: compressed flag and the length it promises. */
  compressedFlag: number;
  declaredBytes: number;
  /** Bytes of body actually sent after the prefix (random). */
  sentBytes: number;
}

/** A buffer of random bytes reused as every body (what the node sees is random either way). */
const NOISE = randomBytes(1 << 20);

function frame(stream: BadStream): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(stream.compressedFlag, 0);
  prefix.writeUInt32BE(stream.declaredBytes >>> 0, 1);
  return prefix;
}

async function writeBody(request: ClientHttp2Stream, bytes: number, stats: GarbageStats): Promise<void> {
  let left = bytes;
  while (left > 0 && !request.destroyed && !request.closed) {
    const chunk = NOISE.subarray(0, Math.min(left, NOISE.length));
    left -= chunk.length;
    stats.bytes += chunk.length;
    if (!request.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          request.off('drain', done);
          request.off('close', done);
          resolve();
        };
        request.on('drain', done);
        request.on('close', done);
      });
    }
  }
}

function openStream(session: ClientHttp2Session, stream: BadStream, stats: GarbageStats): Promise<void> {
  stats.streams += 1;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!request.destroyed) request.close();
      resolve();
    };
    const timer = setTimeout(finish, 20_000);
    const request = session.request({
      ':method': 'POST', ':path': stream.path, 'content-type': 'application/grpc', te: 'trailers',
    });
    request.on('error', () => undefined);
    let status: number | undefined;
    request.on('response', (headers) => {
      const code = headers['grpc-status'];
      if (code !== undefined) status = Number(code);
    });
    request.on('trailers', (trailers: Record<string, string | string[] | undefined>) => {
      const code = trailers['grpc-status'];
      if (code !== undefined) status = Number(code);
    });
    request.on('data', () => undefined);
    request.on('close', () => {
      if (status === undefined) stats.resets += 1;
      else stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1);
      finish();
    });
    request.write(frame(stream));
    void writeBody(request, stream.sentBytes, stats).then(() => {
      if (!request.destroyed && !request.closed) request.end();
    });
  });
}

/** Opens one HTTP/2 connection and sends every stream of `streams` on it at once. */
export async function sendBadStreams(port: number, streams: BadStream[], stats: GarbageStats): Promise<void> {
  const session = connectHttp2(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  try {
    await Promise.all(streams.map((stream) => openStream(session, stream, stats)));
  } finally {
    session.destroy();
  }
}

/** The malformed streams of one round: each kind a few times. */
export function badStreamMix(): BadStream[] {
  const batch = '/kvstore.v1.KvService/Batch';
  return [
    // Promises 48 MiB and sends it: a node taking up to 64 MiB per message buffers it all.
    ...Array.from({ length: 6 }, () => ({ path: batch, compressedFlag: 0, declaredBytes: 48 << 20, sentBytes: 48 << 20 })),
    // Promises 4 GiB − 1 and sends a little.
    { path: batch, compressedFlag: 0, declaredBytes: 0xffff_ffff, sentBytes: 64 << 10 },
    // Under the server's 4 MiB, over the client limit: random bytes.
    { path: batch, compressedFlag: 0, declaredBytes: 3 << 20, sentBytes: 3 << 20 },
    // Small random protobuf, on every method, and on one that does not exist.
    ...['Batch', 'Get', 'Put', 'Delete', 'Cas', 'Nope'].map((method) => ({
      path: `/kvstore.v1.KvService/${method}`, compressedFlag: 0, declaredBytes: 1000, sentBytes: 1000,
    })),
    // Compressed, with no grpc-encoding.
    { path: batch, compressedFlag: 1, declaredBytes: 1000, sentBytes: 1000 },
  ];
}
