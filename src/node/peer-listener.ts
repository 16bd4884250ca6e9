/**
 * The node's one port: every connection's first bytes say what it is. A Raft message stream
 * (`peer-wire.ts`) is served here; anything else (an HTTP/2 preface, a TLS ClientHello) is handed
 * to the gRPC server with what was read of it, through grpc-js's connection injector, exactly as
 * if gRPC had accepted it.
 *
 * A message stream is held to the rule of gRPC's cluster methods (`ServerSecurity`): with TLS
 * the peer must present a server certificate the cluster CA signed; with tokens and no TLS, a
 * valid token. Until its hello passes, nothing it sends is read as a message.
 * @internal
 */
import type { ConnectionInjector, Server as GrpcServer } from '@grpc/grpc-js';
import { lookup } from 'node:dns/promises';
import { createServer, isIP, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { hostPort, type Logger } from '../common/index.js';
import type { ServerSecurity } from '../security/index.js';
import {
  ALIVE_INTERVAL_MS,
  controlFrame,
  FrameReader,
  frameHeader,
  MAX_CONTROL_FRAME_BYTES,
  parseControlFrame,
  PEER_STREAM_MAGIC,
  SERVER_SILENCE_LIMIT_MS,
} from './peer-wire.js';
import type { TransportReceiver } from './raft-transport.js';
import { decodeSendRequest } from './send-request-codec.js';

/** A connection that says nothing for this long is dropped before it is known what it is. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;
/** How long a TLS handshake on a message stream may take. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a message stream may take to send its hello, from the end of its handshake. */
const HELLO_TIMEOUT_MS = 10_000;
/** How long a refused message stream stays open for its peer to read why. */
const REFUSED_LINGER_MS = 1_000;

export interface PeerListenerOptions {
  host: string;
  /** 0: a free port. */
  port: number;
  /** Serves every connection that is not a message stream. */
  grpc: GrpcServer;
  security: ServerSecurity;
  /** Takes what the streams carry, as gRPC's `Send` hands it (`grpc-peer-links.ts`). */
  receiver: Pick<TransportReceiver, 'deliver' | 'heardFrom'>;
  logger: Logger;
  /** The largest `SendRequest` frame taken (the gRPC server's receive limit). */
  maxFrameBytes: number;
  /** Shorter deadlines than the defaults, for tests (ms). */
  deadlines?: Partial<ListenerDeadlines>;
}

/** How long a connection may take over each step before it is known to be a peer. */
export interface ListenerDeadlines {
  firstBytesMs: number;
  handshakeMs: number;
  helloMs: number;
}

/** The listening socket of a node, shared by gRPC and the Raft message streams. */
export class PeerListener {
  private readonly streams = new Set<Socket>();
  /** Every connection accepted and still open, gRPC's too: what {@link close} ends at last. */
  private readonly sockets = new Set<Socket>();
  private readonly tlsServer: TlsServer | undefined;
  private readonly injector: ConnectionInjector;
  /** Counters for tests and metrics. */
  readonly stats = { messageStreams: 0, grpcConnections: 0, refused: 0 };

  private readonly servers: NetServer[] = [];
  private readonly deadlines: ListenerDeadlines;

  private constructor(private readonly options: PeerListenerOptions) {
    this.deadlines = { firstBytesMs: FIRST_BYTES_TIMEOUT_MS, handshakeMs: HANDSHAKE_TIMEOUT_MS, helloMs: HELLO_TIMEOUT_MS, ...options.deadlines };
    this.injector = options.grpc.createConnectionInjector(options.security.credentials());
    const tls = options.security.tlsServerOptions();
    if (tls !== undefined) {
      // Never listens: TLS on connections whose magic was read here (the same trick as the injector's).
      this.tlsServer = createTlsServer({ ...tls, handshakeTimeout: this.deadlines.handshakeMs }, (secure: TLSSocket) => this.serve(secure, secure));
      this.tlsServer.on('tlsClientError', (error: Error, socket: TLSSocket) => {
        options.logger.debug('message stream TLS handshake failed', { peer: socket.remoteAddress, error: error.message });
        socket.destroy(); // the server only reports it (a handshake timeout too): the connection must go
      });
    }
  }

  /**
   * Binds `host:port` and serves: every address a host name resolves to, as gRPC bound them (at
   * least one must bind; the others are logged when they cannot). An empty host is every interface.
   */
  static async listen(options: PeerListenerOptions): Promise<PeerListener> {
    const host = options.host.replace(/^\[(.*)\]$/, '$1');
    const addresses: (string | undefined)[] = host === '' ? [undefined]
      : isIP(host) !== 0 ? [host]
      : [...new Set((await lookup(host, { all: true })).map((found) => found.address))];
    if (addresses.length === 0) throw new Error(`host ${host} resolves to no address`);
    const listener = new PeerListener(options);
    let port = options.port;
    let firstError: unknown;
    for (const address of addresses) {
      const server = createServer({ noDelay: true });
      server.on('connection', (socket: Socket) => listener.sniff(socket));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ ...(address === undefined ? {} : { host: address }), port }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (error) {
        firstError ??= error;
        options.logger.warn('not listening on one of the host\'s addresses', { host, address, error: (error as Error).message });
        continue;
      }
      server.on('error', (error: Error) => options.logger.error('listening socket failed', { address, error: error.message }));
      listener.servers.push(server);
      port = listener.port; // the others on the port the first one got
    }
    if (listener.servers.length === 0) throw firstError;
    return listener;
  }

  /** The bound port. */
  get port(): number {
    const address = this.servers[0]?.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  /** Reads a connection's first bytes and hands it to the message streams or to gRPC. */
  private sniff(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    let head: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), this.deadlines.firstBytesMs);
    timer.unref();
    const onError = (): void => undefined; // nothing to do before it is known what it is
    const decide = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const known = Math.min(head.length, PEER_STREAM_MAGIC.length);
      const mayBeStream = head.subarray(0, known).equals(PEER_STREAM_MAGIC.subarray(0, known));
      if (mayBeStream && head.length < PEER_STREAM_MAGIC.length) return; // wait for the rest of the magic
      clearTimeout(timer);
      socket.off('data', decide);
      socket.off('error', onError);
      socket.pause();
      if (mayBeStream) {
        const rest = head.subarray(PEER_STREAM_MAGIC.length);
        if (rest.length > 0) socket.unshift(rest);
        this.stats.messageStreams += 1;
        if (this.tlsServer === undefined) this.serve(socket, undefined);
        else this.tlsServer.emit('connection', socket);
        return;
      }
      // HTTP/2 and TLS both take bytes already read off a socket they are given (Node replays them).
      socket.unshift(head);
      this.stats.grpcConnections += 1;
      this.injector.injectConnection(socket);
    };
    socket.on('data', decide);
    socket.on('error', onError);
  }

  /** Serves one message stream: hello, then `SendRequest` frames to the receiver. */
  private serve(stream: Socket | TLSSocket, secure: TLSSocket | undefined): void {
    const { security, receiver, logger } = this.options;
    const peer = hostPort(stream.remoteAddress ?? '?', stream.remotePort ?? 0);
    this.streams.add(stream);
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES);
    let hello = false;
    // A peer has this long to say hello, however it dribbles its bytes (the silence limit alone would not do).
    const helloDeadline = setTimeout(() => {
      logger.debug('message stream dropped: no hello in time', { peer, ms: this.deadlines.helloMs });
      drop();
    }, this.deadlines.helloMs);
    helloDeadline.unref();
    let lastHeardMs = performance.now();
    const alive = setInterval(() => {
      if (performance.now() - lastHeardMs > SERVER_SILENCE_LIMIT_MS) stream.destroy();
      else if (hello) stream.write(frameHeader(0));
    }, ALIVE_INTERVAL_MS);
    alive.unref();
    const drop = (): void => {
      stream.off('data', onData);
      stream.destroy();
    };
    const onData = (chunk: Buffer): void => {
      lastHeardMs = performance.now();
      reader.push(chunk);
      for (;;) {
        let frame: Buffer | undefined;
        try {
          frame = reader.next();
        } catch (error) {
          // Before the hello, not a peer of this wire (a TLS ClientHello to a node without TLS).
          const fields = { peer, error: (error as Error).message };
          if (hello) logger.warn('message stream dropped: a frame over the limit', fields);
          else logger.debug('message stream dropped: a frame over the limit', fields);
          drop();
          return;
        }
        if (frame === undefined) return;
        if (!hello) {
          const message = parseControlFrame(frame);
          const node = message?.['node'];
          const token = message?.['token'];
          if (typeof node !== 'string' || (token !== undefined && typeof token !== 'string')) {
            logger.debug('message stream dropped: no hello', { peer });
            drop();
            return;
          }
          const refusal = security.peerStreamRefusal(secure, token);
          if (refusal !== undefined) {
            this.stats.refused += 1;
            security.refusePeerStream(peer, refusal);
            stream.off('data', onData);
            stream.end(controlFrame({ ok: false, error: refusal }));
            // Time to read the answer; then the connection goes, whatever the peer still sends.
            setTimeout(() => stream.destroy(), REFUSED_LINGER_MS).unref();
            return;
          }
          hello = true;
          clearTimeout(helloDeadline);
          reader.maxFrameBytes = this.options.maxFrameBytes;
          stream.write(controlFrame({ ok: true }));
          continue;
        }
        if (frame.length === 0) continue; // a keepalive
        let request;
        try {
          request = decodeSendRequest(frame);
        } catch (error) {
          logger.warn('message stream dropped: a SendRequest that does not decode', { peer, error: (error as Error).message });
          drop();
          return;
        }
        receiver.heardFrom(request.fromNodeId);
        for (const message of request.messages) receiver.deliver(request.fromNodeId, message);
      }
    };
    stream.on('data', onData);
    stream.on('error', (error: Error) => logger.debug('message stream failed', { peer, error: error.message }));
    stream.on('close', () => {
      clearInterval(alive);
      clearTimeout(helloDeadline);
      this.streams.delete(stream);
    });
    stream.resume();
  }

  /** Stops accepting connections; those open go on. Before the gRPC server's shutdown, so none comes after it. */
  stopAccepting(): void {
    for (const server of this.servers) server.close();
  }

  /**
   * Stops accepting connections and drops the message streams. Call it after the gRPC server's
   * shutdown, which ends its own connections gracefully; any connection still open then is dropped.
   */
  async close(): Promise<void> {
    const closed = this.servers.map((server) => new Promise<void>((resolve) => {
      if (server.listening) server.close(() => resolve());
      else resolve();
    }));
    for (const stream of this.streams) stream.destroy();
    for (const socket of this.sockets) socket.destroy();
    this.streams.clear();
    this.sockets.clear();
    await Promise.all(closed);
  }
}
