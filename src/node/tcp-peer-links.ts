/**
 * Peer links whose message streams are TCP connections of their own (`peer-wire.ts`), to the
 * same port as the peer's gRPC server, which tells them apart (`peer-listener.ts`). Snapshots
 * stay on gRPC (`grpc-peer-links.ts`): they are rare, and large enough that a message's fixed
 * cost does not count.
 *
 * A peer that accepts the connection but closes it without answering does not speak this wire
 * (a node of an older version): its messages go over gRPC's `RaftService.Send` for a while
 * ({@link GRPC_FALLBACK_MS}), then this wire is tried again. So nodes of both versions form one
 * cluster during a rolling upgrade.
 * @internal
 */
import { connectivityState } from '@grpc/grpc-js';
import { Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Logger } from '../common/index.js';
import { splitHostPort } from '../common/ports.js';
import type { SendRequest } from '../gen/kvstore/v1/raft.js';
import type { ChannelSecurity } from '../security/index.js';
import type { PeerReachability } from './peer-reachability.js';
import type { OutgoingSnapshot, PeerLinks, PeerStream, PeerStreamEvents } from './peer-links.js';
import {
  ALIVE_INTERVAL_MS,
  CLIENT_SILENCE_LIMIT_MS,
  controlFrame,
  FrameReader,
  frameHeader,
  MAX_CONTROL_FRAME_BYTES,
  parseControlFrame,
  PEER_STREAM_MAGIC,
} from './peer-wire.js';
import { encodeSendRequest } from './send-request-codec.js';

/** How long a stream ended just before its links close may still send what was written on it. */
const CLOSE_GRACE_MS = 1_000;

/** OpenSSL's verification codes: a TLS error about certificates, not the connection. */
const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'HOSTNAME_MISMATCH',
]);
/** The same, for errors that carry no code. */
const CERTIFICATE_PROBLEM = /certificate|self[- ]signed|issuer|altname/i;

/** How long a peer that does not speak this wire gets its messages over gRPC before it is tried again. */
export const GRPC_FALLBACK_MS = 60_000;

/** What the links need besides the gRPC links they fall back on. */
export interface TcpPeerLinksOptions {
  localNodeId: string;
  security: ChannelSecurity;
  /** Carries snapshots, and the messages of a peer that does not speak this wire. */
  grpc: PeerLinks;
  logger: Logger;
  reachability?: PeerReachability | undefined;
  /** Monotonic ms (tests). */
  now?: () => number;
}

/** Peer links over TCP connections of their own, falling back on gRPC per peer. */
export class TcpPeerLinks implements PeerLinks {
  private readonly grpcUntil = new Map<string, number>();
  /** The last refusal each peer gave, logged once. */
  private readonly refusals = new Map<string, string>();
  private readonly open = new Set<TcpPeerStream>();
  private readonly fallbackTimers = new Set<ReturnType<typeof setTimeout>>();
  private readonly now: () => number;
  /** Counters for tests and metrics: streams opened on this wire, and those that fell back on gRPC. */
  readonly stats = { tcpStreams: 0, grpcStreams: 0 };

  constructor(private readonly options: TcpPeerLinksOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  openStream(nodeId: string, address: string, events: PeerStreamEvents): PeerStream {
    const until = this.grpcUntil.get(nodeId) ?? Number.NEGATIVE_INFINITY;
    if (until > this.now()) return this.fallbackStream(nodeId, address, events, until);
    this.stats.tcpStreams += 1;
    const stream = new TcpPeerStream(nodeId, address, this.options, {
      onDrain: () => events.onDrain(),
      onAccepted: () => this.refusals.delete(nodeId),
      onRefused: (error, by) => {
        // Once per peer and reason: the transport retries every few seconds.
        if (this.refusals.get(nodeId) === error) return;
        this.refusals.set(nodeId, error);
        this.options.logger.warn(by === 'peer' ? 'peer refused the message stream' : 'message stream TLS failed on a certificate', { peer: nodeId, address, error });
      },
      onEnd: (failure, unanswered) => {
        this.open.delete(stream);
        if (unanswered) {
          if (!this.grpcUntil.has(nodeId)) {
            this.options.logger.info('peer does not speak the TCP message stream: its messages go over gRPC for now', { peer: nodeId, address, retryAfterMs: GRPC_FALLBACK_MS });
          }
          this.grpcUntil.set(nodeId, this.now() + GRPC_FALLBACK_MS);
        } else if (failure === undefined) {
          this.grpcUntil.delete(nodeId);
        }
        events.onEnd(failure);
      },
    });
    this.open.add(stream);
    return stream;
  }

  /**
   * A gRPC stream for a peer that does not speak this wire. It ends (cleanly) when the window
   * does, so the transport's next stream tries this wire again: a peer upgraded meanwhile is
   * found, though a healthy gRPC stream would otherwise live for good.
   */
  private fallbackStream(nodeId: string, address: string, events: PeerStreamEvents, until: number): PeerStream {
    this.stats.grpcStreams += 1;
    /** No more writes reach the gRPC stream (ended, or its window closed). */
    let closed = false;
    /** Its end was reported: once only. */
    let reported = false;
    const report = (failure: string | undefined): void => {
      if (reported) return;
      reported = true;
      events.onEnd(failure);
    };
    // The window's end: the transport lets go of the stream first (a clean end), so nothing is
    // written on it after `end()`. Set before the inner stream exists, whose end stops it.
    const timer = setTimeout(() => {
      stopTimer();
      if (closed) return;
      closed = true;
      report(undefined);
      inner.end();
    }, Math.max(0, until - this.now()));
    timer.unref();
    this.fallbackTimers.add(timer);
    const stopTimer = (): void => {
      this.fallbackTimers.delete(timer);
      clearTimeout(timer);
    };
    const inner = this.options.grpc.openStream(nodeId, address, {
      onDrain: () => {
        if (!reported) events.onDrain();
      },
      onEnd: (failure) => {
        stopTimer();
        closed = true;
        report(failure);
      },
    });
    return {
      write: (batch) => (closed ? true : inner.write(batch)),
      end: () => {
        stopTimer();
        if (closed) return;
        closed = true;
        inner.end();
      },
    };
  }

  sendSnapshot(nodeId: string, address: string, snapshot: OutgoingSnapshot, cancelled: () => boolean): Promise<boolean> {
    return this.options.grpc.sendSnapshot(nodeId, address, snapshot, cancelled);
  }

  reset(nodeId: string): void {
    this.grpcUntil.delete(nodeId);
    this.refusals.delete(nodeId);
    this.options.grpc.reset(nodeId);
  }

  /** Drops every stream; one already ended gets a moment to send what was written on it. */
  close(): void {
    for (const stream of this.open) stream.close();
    this.open.clear();
    for (const timer of this.fallbackTimers) clearTimeout(timer);
    this.fallbackTimers.clear();
    this.options.grpc.close();
  }
}

/** What a stream tells its links: `unanswered` when the peer took the connection and closed it without answering. */
interface StreamEvents {
  onDrain(): void;
  /** The peer took the stream. */
  onAccepted(): void;
  /** The peer refused the stream, saying why; or TLS failed on a certificate (the peer's or ours). */
  onRefused(error: string, by: 'peer' | 'tls'): void;
  onEnd(failure: string | undefined, unanswered: boolean): void;
}

/**
 * One message stream: connect, magic, TLS when the cluster has it, hello, then `SendRequest`s.
 * Batches written before the connection is ready wait in order (the first write returns false,
 * so the transport holds the rest until `onDrain`).
 */
class TcpPeerStream implements PeerStream {
  private readonly socket: Socket;
  /** Where frames go: the socket, or the TLS socket over it. */
  private stream: Socket | TLSSocket | undefined;
  private readonly waiting: Buffer[] = [];
  private readonly reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
  private connected = false;
  private answered = false;
  /** This side gave up waiting, or the TLS handshake got as far as certificates: the peer speaks the wire or is not there. */
  private gaveUp = false;
  private ending = false;
  private ended = false;
  private corked = false;
  private failure: string | undefined;
  private lastHeardMs: number;
  /** Monotonic ms: the links' clock, resolved once (read on every chunk). */
  private readonly now: () => number;
  private readonly silence: ReturnType<typeof setInterval>;

  constructor(
    private readonly nodeId: string,
    private readonly address: string,
    private readonly options: TcpPeerLinksOptions,
    private readonly events: StreamEvents,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.lastHeardMs = this.now();
    this.socket = new Socket();
    this.socket.setNoDelay(true); // kept until connected (connect()'s own noDelay option is not read)
    this.socket.on('error', (error: Error) => this.fail(error.message));
    this.socket.on('close', () => this.finish());
    this.socket.once('connect', () => this.onConnect());
    try {
      const { host, port } = splitHostPort(address);
      this.socket.connect({ host, port });
    } catch (error) {
      // A bad address (no port, one out of range): the stream fails, after its opener has it.
      process.nextTick(() => this.abort(`cannot connect to ${address}: ${(error as Error).message}`));
    }
    // A peer that went silent (its host gone, a partition) is given up as gRPC's keepalive would.
    this.silence = setInterval(() => {
      if (this.now() - this.lastHeardMs <= CLIENT_SILENCE_LIMIT_MS) return;
      this.gaveUp = true; // a peer that is stopped or slow, not one that does not speak the wire
      this.abort(`no word from the peer for ${CLIENT_SILENCE_LIMIT_MS} ms`);
    }, ALIVE_INTERVAL_MS);
    this.silence.unref();
  }

  private onConnect(): void {
    this.connected = true;
    // The magic goes out in plaintext and alone: TLS, when used, starts only once it has left.
    this.socket.write(PEER_STREAM_MAGIC, () => {
      if (this.ended) return;
      const tls = this.options.security.tlsConnectOptions(this.address);
      if (tls === undefined) {
        this.ready(this.socket);
        return;
      }
      const secure = tlsConnect({ ...tls, socket: this.socket });
      secure.on('error', (error: Error) => {
        // An older node never gets as far as a certificate after the magic: this one speaks TLS
        // here, and its certificate (or ours) is the problem, as it would be on gRPC.
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (CERTIFICATE_CODES.has(code) || code.startsWith('ERR_TLS_CERT') || CERTIFICATE_PROBLEM.test(error.message)) {
          this.gaveUp = true;
          this.events.onRefused(`TLS: ${error.message}`, 'tls');
        }
        this.fail(error.message);
      });
      secure.once('secureConnect', () => this.ready(secure));
    });
  }

  private ready(stream: Socket | TLSSocket): void {
    if (this.ended) return;
    this.stream = stream;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    const token = this.options.security.token?.();
    stream.write(controlFrame({ node: this.options.localNodeId, ...(this.options.security.tls === undefined && token !== undefined ? { token } : {}) }));
    let writable = true;
    for (const bytes of this.waiting) writable = stream.write(bytes);
    this.waiting.length = 0;
    if (this.ending) {
      stream.end(); // ended before it was ready: what was written still goes out
      return;
    }
    if (writable) this.events.onDrain();
    stream.on('drain', () => this.events.onDrain());
  }

  private onData(chunk: Buffer): void {
    this.lastHeardMs = this.now();
    this.reader.push(chunk);
    for (;;) {
      let frame: Buffer | undefined;
      try {
        frame = this.reader.next();
      } catch (error) {
        this.abort(`the peer sent ${(error as Error).message}`);
        return;
      }
      if (frame === undefined) return;
      if (this.answered) {
        if (frame.length === 0) continue; // the peer is alive
        this.abort('the peer sent an unexpected frame');
        return;
      }
      const answer = parseControlFrame(frame);
      if (answer?.['ok'] === true) {
        this.answered = true;
        this.events.onAccepted();
        this.options.reachability?.channelState(this.nodeId, this.address, connectivityState.READY);
        continue;
      }
      if (answer === undefined || typeof answer['error'] !== 'string') {
        this.abort('the peer answered with something else than this wire\'s answer');
        return;
      }
      this.answered = true; // refused: a peer that speaks the wire, so gRPC would not do better
      this.events.onRefused(answer['error'], 'peer');
      this.abort(`refused by the peer: ${answer['error']}`);
      return;
    }
  }

  write(batch: SendRequest): boolean {
    if (this.ended || this.ending) return true; // dropped: the stream is going, and Raft retries
    const body = encodeSendRequest(batch);
    const header = frameHeader(body.length);
    const stream = this.stream;
    if (stream === undefined) {
      this.waiting.push(header, body);
      return false;
    }
    // Writes of one tick leave together: one system call for a turn's batch, as HTTP/2 does.
    if (!this.corked) {
      this.corked = true;
      stream.cork();
      process.nextTick(() => {
        this.corked = false;
        stream.uncork();
      });
    }
    stream.write(header);
    return stream.write(body);
  }

  end(): void {
    if (this.ending || this.ended) return;
    this.ending = true;
    // Before it is ready, `ready()` writes what waits and ends it (or the connection fails).
    this.stream?.end();
  }

  /** Drops the connection (the links close); one already ended gets a second to send what was written. */
  close(): void {
    if (this.ending && !this.ended) {
      setTimeout(() => this.abort('closed'), CLOSE_GRACE_MS).unref();
      return;
    }
    this.ending = true;
    this.stream?.destroy();
    this.socket.destroy();
  }

  /** Drops the connection for `failure`. */
  private abort(failure: string): void {
    this.fail(failure);
    this.stream?.destroy();
    this.socket.destroy();
  }

  private fail(failure: string): void {
    this.failure ??= failure;
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.silence);
    this.waiting.length = 0;
    // Connected, and closed without an answer, or with bytes that are not one: not this wire.
    const unanswered = this.connected && !this.answered && !this.ending && !this.gaveUp;
    if (!this.connected && this.failure !== undefined) {
      this.options.reachability?.streamFailed(this.nodeId, this.failure);
      this.options.reachability?.channelState(this.nodeId, this.address, connectivityState.TRANSIENT_FAILURE);
    } else if (this.failure !== undefined) {
      this.options.reachability?.streamFailed(this.nodeId, this.failure);
    }
    // A peer that does not speak the wire has not failed: its messages go over gRPC from the next
    // stream. (A peer that died between accept and answer is taken for one too; the gRPC stream
    // that follows a backoff later fails and reports it.)
    const failure = unanswered || (this.ending && this.failure === undefined) ? undefined : this.failure ?? 'the peer closed the connection';
    this.events.onEnd(failure, unanswered);
  }
}
