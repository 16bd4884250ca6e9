/**
 * The Raft transport's production wire: gRPC `RaftService`. `Send` is one long-lived
 * client stream per peer node; `SendSnapshot` streams a snapshot in chunks. The server
 * side hands what arrives to the host ({@link raftService}).
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
import type { PeerLinks, PeerStream, PeerStreamEvents } from './peer-links.js';
import type { TransportReceiver } from './raft-transport.js';
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

/** Largest snapshot a node accepts (bytes). */
const MAX_SNAPSHOT_BYTES = 1 << 30;

/** gRPC channel options shared by the node's server and its peer clients. */
export const RAFT_CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

/** Peer links over gRPC: one client (channel) per peer node. */
export class GrpcPeerLinks implements PeerLinks {
  private readonly clients = new Map<string, RaftServiceClient>();

  /**
   * @param localNodeId This node's id, sent with every snapshot chunk.
   * @param snapshotChunkBytes Snapshot chunk size. Default 1 MiB: below gRPC's 4 MiB
   *   message limit, large enough to stream fast.
   */
  constructor(
    private readonly localNodeId: string,
    private readonly snapshotChunkBytes = 1024 * 1024,
  ) {}

  private client(nodeId: string, address: string): RaftServiceClient {
    let client = this.clients.get(nodeId);
    if (client === undefined) {
      client = new RaftClient(address, credentials.createInsecure(), RAFT_CHANNEL_OPTIONS);
      this.clients.set(nodeId, client);
    }
    return client;
  }

  openStream(nodeId: string, address: string, events: PeerStreamEvents): PeerStream {
    const stream = this.client(nodeId, address).send((error: ServiceError | null) => {
      events.onEnd(error === null ? undefined : error.message);
    });
    stream.on('drain', () => events.onDrain());
    return stream;
  }

  async sendSnapshot(nodeId: string, address: string, header: RaftMessage, data: Uint8Array, cancelled: () => boolean): Promise<boolean> {
    const client = this.client(nodeId, address);
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
      const chunk = bytes.subarray(offset, offset + this.snapshotChunkBytes);
      offset += chunk.length;
      const last = offset >= bytes.length;
      const request: SendSnapshotRequest = { fromNodeId: this.localNodeId, chunk, last };
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
      if (cancelled()) {
        stream.cancel();
        break;
      }
    } while (offset < bytes.length);
    stream.end();
    return answer;
  }

  reset(nodeId: string): void {
    this.clients.get(nodeId)?.close();
    this.clients.delete(nodeId);
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/** The server side of `RaftService`: routes every received message to `receiver`. */
export function raftService(receiver: TransportReceiver, logger: Logger): RaftServiceServer {
  return {
    send: (call: ServerReadableStream<SendRequest, SendResponse>, callback: sendUnaryData<SendResponse>) => {
      call.on('data', (request: SendRequest) => {
        for (const message of request.messages) receiver.deliver(request.fromNodeId, message);
      });
      call.on('end', () => callback(null, {}));
      call.on('error', (error: Error) => logger.debug('peer stream failed', { error: error.message }));
    },
    sendSnapshot: (call: ServerReadableStream<SendSnapshotRequest, SendSnapshotResponse>, callback: sendUnaryData<SendSnapshotResponse>) => {
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
