/**
 * The Raft transport between storage nodes: one long-lived `RaftService.Send`
 * stream per peer node carries the messages of every group. The host queues the
 * messages of a turn with {@link RaftTransport.send} and calls {@link RaftTransport.flush}
 * once per turn, so each peer gets at most one `SendRequest` per turn — the
 * heartbeats of all groups travel together (C `raft_transport.go`).
 *
 * Raft tolerates loss, so the transport never blocks the host: when a peer's queue is
 * full or the peer is unreachable, messages are dropped and the sender's replica is
 * told (`reportUnreachable`). Snapshots travel on a stream of their own, in chunks.
 * @internal
 */
import {
  type ClientWritableStream,
  credentials,
  makeGenericClientConstructor,
  type sendUnaryData,
  type ServerReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import type { Logger } from '../common/index.js';
import {
  type RaftMessage,
  type RaftServiceClient,
  type RaftServiceServer,
  RaftServiceService,
  type SendRequest,
  type SendResponse,
  type SendSnapshotRequest,
  type SendSnapshotResponse,
} from '../gen/kvstore/v1/raft.js';
import type { PeerDirectory } from './peer-directory.js';
import { decodeSendRequest, encodeSendRequest } from './send-request-codec.js';

/**
 * `RaftService` as nodes serve and call it: the generated definition, with `Send`'s
 * requests through the hand-written codec (same bytes on the wire, a fraction of the CPU).
 */
export const RAFT_SERVICE = {
  ...RaftServiceService,
  send: { ...RaftServiceService.send, requestSerialize: encodeSendRequest, requestDeserialize: decodeSendRequest },
} as const;

const RaftClient = makeGenericClientConstructor(RAFT_SERVICE, 'kvstore.v1.RaftService') as unknown as typeof RaftServiceClient;

/** Receives what peers send; implemented by the host. */
export interface TransportReceiver {
  /** A message for the local replica `(message.shardId, message.to)`; `snapshotData` for reassembled snapshots. */
  deliver(fromNodeId: string, message: RaftMessage, snapshotData?: Buffer): void;
}

/** Tells the host what happened to what it sent. */
export interface TransportReporter {
  /** A message to `(shardId, replicaId)` was dropped. */
  reportUnreachable(shardId: number, replicaId: number): void;
  /** A snapshot stream to `(shardId, replicaId)` ended. */
  reportSnapshot(shardId: number, replicaId: number, status: 'finish' | 'failure'): void;
  /** The stream to `nodeId` failed (connection lost: the peer may have crashed). */
  reportPeerFailed?(nodeId: string): void;
}

/** Transport settings. */
export interface RaftTransportOptions {
  nodeId: string;
  peers: PeerDirectory;
  logger: Logger;
  reporter: TransportReporter;
  /**
   * Messages that may wait per peer while its stream is not writable. Default 10,000:
   * enough for several turns of every group's traffic; past it Raft's own retries are
   * cheaper than an unbounded queue.
   */
  maxQueuedMessagesPerPeer?: number;
  /** Snapshot chunk size. Default 1 MiB: below gRPC's 4 MiB message limit, large enough to stream fast. */
  snapshotChunkBytes?: number;
}

/** Largest snapshot a node accepts (bytes). */
const MAX_SNAPSHOT_BYTES = 1 << 30;
const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;

/** gRPC channel options shared by the node's server and its peer clients. */
export const RAFT_CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

class PeerConnection {
  client: RaftServiceClient | undefined;
  stream: ClientWritableStream<SendRequest> | undefined;
  streamOpenedAtMs = 0;
  /** Messages of the current turn. */
  outgoing: RaftMessage[] = [];
  /** Batches waiting for 'drain'. */
  backlog: SendRequest[] = [];
  backlogMessages = 0;
  writable = true;
  retryAtMs = 0;
  backoffMs = INITIAL_BACKOFF_MS;

  constructor(readonly nodeId: string) {}
}

/** One node's side of the Raft transport: client streams to peers plus the server handlers. */
export class RaftTransport {
  private readonly connections = new Map<string, PeerConnection>();
  private readonly dirty = new Set<PeerConnection>();
  private readonly maxQueued: number;
  private readonly chunkBytes: number;
  private closed = false;
  private readonly snapshotsInFlight = new Set<Promise<void>>();
  /** Counters for tests and metrics: SendRequests written, messages sent, messages dropped, snapshot streams by outcome. */
  readonly stats = { batches: 0, messages: 0, dropped: 0, snapshotsSent: 0, snapshotsFailed: 0 };

  constructor(private readonly options: RaftTransportOptions) {
    this.maxQueued = options.maxQueuedMessagesPerPeer ?? 10_000;
    this.chunkBytes = options.snapshotChunkBytes ?? 1024 * 1024;
  }

  private connection(nodeId: string): PeerConnection {
    let connection = this.connections.get(nodeId);
    if (connection === undefined) {
      connection = new PeerConnection(nodeId);
      this.connections.set(nodeId, connection);
    }
    return connection;
  }

  /** Queues a message for the peer node; it leaves on the next {@link flush}. */
  send(nodeId: string, message: RaftMessage): void {
    const connection = this.connection(nodeId);
    connection.outgoing.push(message);
    this.dirty.add(connection);
  }

  /** Writes one `SendRequest` per peer with everything queued since the last flush. */
  flush(): void {
    for (const connection of this.dirty) {
      const messages = connection.outgoing;
      connection.outgoing = [];
      if (messages.length > 0) this.write(connection, messages);
    }
    this.dirty.clear();
  }

  private write(connection: PeerConnection, messages: RaftMessage[]): void {
    if (this.closed) return;
    const stream = this.stream(connection);
    if (stream === undefined) {
      this.drop(messages);
      return;
    }
    const batch: SendRequest = { fromNodeId: this.options.nodeId, messages };
    if (!connection.writable) {
      if (connection.backlogMessages + messages.length > this.maxQueued) {
        this.drop(messages);
        return;
      }
      connection.backlog.push(batch);
      connection.backlogMessages += messages.length;
      return;
    }
    this.stats.batches += 1;
    this.stats.messages += messages.length;
    if (!stream.write(batch)) connection.writable = false;
  }

  private stream(connection: PeerConnection): ClientWritableStream<SendRequest> | undefined {
    if (connection.stream !== undefined) return connection.stream;
    if (Date.now() < connection.retryAtMs) return undefined;
    const address = this.options.peers.get(connection.nodeId);
    if (address === undefined) {
      this.options.logger.debug('no address for peer', { peer: connection.nodeId });
      return undefined;
    }
    connection.client ??= new RaftClient(address, credentials.createInsecure(), RAFT_CHANNEL_OPTIONS);
    const stream = connection.client.send((error: ServiceError | null) => {
      this.onStreamEnd(connection, stream, error);
    });
    stream.on('drain', () => this.onDrain(connection, stream));
    connection.stream = stream;
    connection.streamOpenedAtMs = Date.now();
    connection.writable = true;
    return stream;
  }

  private onDrain(connection: PeerConnection, stream: ClientWritableStream<SendRequest>): void {
    if (connection.stream !== stream) return;
    connection.writable = true;
    while (connection.backlog.length > 0 && connection.writable) {
      const batch = connection.backlog.shift();
      if (batch === undefined) break;
      connection.backlogMessages -= batch.messages.length;
      this.stats.batches += 1;
      this.stats.messages += batch.messages.length;
      if (!stream.write(batch)) connection.writable = false;
    }
  }

  private onStreamEnd(connection: PeerConnection, stream: ClientWritableStream<SendRequest>, error: ServiceError | null): void {
    if (connection.stream !== stream) return;
    connection.stream = undefined;
    connection.writable = true;
    for (const batch of connection.backlog) this.drop(batch.messages);
    connection.backlog = [];
    connection.backlogMessages = 0;
    if (this.closed) return;
    // A stream that lived a while failed for a new reason: start the backoff over.
    if (Date.now() - connection.streamOpenedAtMs > MAX_BACKOFF_MS) connection.backoffMs = INITIAL_BACKOFF_MS;
    connection.retryAtMs = Date.now() + connection.backoffMs;
    connection.backoffMs = Math.min(connection.backoffMs * 2, MAX_BACKOFF_MS);
    this.options.logger.debug('peer stream ended', { peer: connection.nodeId, error: error?.message });
    if (error !== null) this.options.reporter.reportPeerFailed?.(connection.nodeId);
  }

  private drop(messages: RaftMessage[]): void {
    this.stats.dropped += messages.length;
    for (const message of messages) this.options.reporter.reportUnreachable(message.shardId, message.to);
  }

  /** Forgets the peer's connection (its address changed); the next send reconnects. */
  resetPeer(nodeId: string): void {
    const connection = this.connections.get(nodeId);
    if (connection === undefined) return;
    connection.stream?.end();
    connection.stream = undefined;
    connection.client?.close();
    connection.client = undefined;
    connection.retryAtMs = 0;
    connection.backoffMs = INITIAL_BACKOFF_MS;
  }

  /**
   * Streams a snapshot message to a peer on its own stream, `data` in chunks; reports
   * `finish` once the peer accepted all of it, `failure` otherwise.
   */
  sendSnapshot(nodeId: string, header: RaftMessage, data: Uint8Array): void {
    const task = this.streamSnapshot(nodeId, header, data).then(
      (accepted) => {
        if (accepted) this.stats.snapshotsSent += 1;
        else this.stats.snapshotsFailed += 1;
        this.options.logger.info('snapshot sent', { peer: nodeId, shard: header.shardId, to: header.to, bytes: data.length, accepted });
        this.options.reporter.reportSnapshot(header.shardId, header.to, accepted ? 'finish' : 'failure');
      },
      (error: unknown) => {
        this.stats.snapshotsFailed += 1;
        this.options.logger.info('snapshot failed', { peer: nodeId, shard: header.shardId, to: header.to, error: String(error) });
        this.options.reporter.reportSnapshot(header.shardId, header.to, 'failure');
      },
    );
    this.snapshotsInFlight.add(task);
    void task.finally(() => this.snapshotsInFlight.delete(task));
  }

  private async streamSnapshot(nodeId: string, header: RaftMessage, data: Uint8Array): Promise<boolean> {
    const address = this.options.peers.get(nodeId);
    if (address === undefined || this.closed) return false;
    const connection = this.connection(nodeId);
    connection.client ??= new RaftClient(address, credentials.createInsecure(), RAFT_CHANNEL_OPTIONS);
    const client = connection.client;
    let call: ClientWritableStream<SendSnapshotRequest> | undefined;
    const answer = new Promise<boolean>((resolve) => {
      call = client.sendSnapshot((error: ServiceError | null, response?: SendSnapshotResponse) => {
        resolve(error === null && response?.accepted === true);
      });
    });
    if (call === undefined) return false;
    const stream = call;
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let offset = 0;
    do {
      const chunk = bytes.subarray(offset, offset + this.chunkBytes);
      offset += chunk.length;
      const last = offset >= bytes.length;
      const request: SendSnapshotRequest = { fromNodeId: this.options.nodeId, chunk, last };
      if (offset === chunk.length) request.message = header;
      if (!stream.write(request) && !last) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            stream.off('drain', done);
            stream.off('close', done);
            resolve();
          };
          stream.on('drain', done);
          stream.on('close', done);
        });
      }
      if (this.closed) {
        stream.cancel();
        break;
      }
    } while (offset < bytes.length);
    stream.end();
    return answer;
  }

  /** The server side: routes every received message to the host. */
  service(receiver: TransportReceiver): RaftServiceServer {
    const logger = this.options.logger;
    return {
      send: (call: ServerReadableStream<SendRequest, SendResponse>, callback: sendUnaryData<SendResponse>) => {
        call.on('data', (request: SendRequest) => {
          for (const message of request.messages) receiver.deliver(request.fromNodeId, message);
        });
        call.on('end', () => callback(null, {}));
        call.on('error', (error: Error) => logger.debug('peer stream failed', { error: error.message }));
      },
      sendSnapshot: (
        call: ServerReadableStream<SendSnapshotRequest, SendSnapshotResponse>,
        callback: sendUnaryData<SendSnapshotResponse>,
      ) => {
        let header: RaftMessage | undefined;
        let fromNodeId = '';
        let complete = false;
        let totalBytes = 0;
        const chunks: Buffer[] = [];
        call.on('data', (request: SendSnapshotRequest) => {
          if (request.message !== undefined) header = request.message;
          fromNodeId = request.fromNodeId;
          totalBytes += request.chunk.length;
          if (totalBytes > MAX_SNAPSHOT_BYTES) {
            call.destroy(new Error(`snapshot larger than ${MAX_SNAPSHOT_BYTES} bytes`));
            return;
          }
          chunks.push(request.chunk);
          if (request.last) complete = true;
        });
        call.on('end', () => {
          if (header === undefined || !complete) {
            callback(null, { accepted: false });
            return;
          }
          receiver.deliver(fromNodeId, header, Buffer.concat(chunks, totalBytes));
          callback(null, { accepted: true });
        });
        call.on('error', (error: Error) => logger.debug('snapshot stream failed', { error: error.message }));
      },
    };
  }

  /** Ends every stream and waits for snapshots in flight to settle. */
  async close(): Promise<void> {
    this.closed = true;
    for (const connection of this.connections.values()) {
      connection.stream?.end();
      connection.stream = undefined;
    }
    await Promise.allSettled([...this.snapshotsInFlight]);
    for (const connection of this.connections.values()) connection.client?.close();
    this.connections.clear();
  }
}
