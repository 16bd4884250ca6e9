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
import type { OutgoingSnapshot, PeerLinks, PeerStream, PeerStreamEvents } from './peer-links.js';
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
/**
 * Most snapshot bytes a node holds while receiving, over all its snapshot streams: a peer
 * that opens many streams at once must not exhaust memory. One largest snapshot fits; a
 * stream past the bound is refused, and its sender retries later.
 */
const MAX_RECEIVING_SNAPSHOT_BYTES = MAX_SNAPSHOT_BYTES;

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

  async sendSnapshot(nodeId: string, address: string, snapshot: OutgoingSnapshot, cancelled: () => boolean): Promise<boolean> {
    const { header, data, dataCrc32c } = snapshot;
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
      if (offset === chunk.length) {
        request.message = header;
        request.dataCrc32c = dataCrc32c;
      }
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

/**
 * The server side of `RaftService`: routes every received message to `receiver`, and each
 * whole snapshot, whose answer says whether `receiver` accepted it.
 */
export function raftService(receiver: TransportReceiver, logger: Logger): RaftServiceServer {
  /** Snapshot bytes held by the streams being received (bounded by MAX_RECEIVING_SNAPSHOT_BYTES). */
  let receivingBytes = 0;
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
      /** The sender as the header's chunk names it, else as the first chunk does (for refusals). */
      let fromNodeId: string | undefined;
      let dataCrc32c: number | undefined;
      let complete = false;
      let refused = false;
      let totalBytes = 0;
      let chunks: Buffer[] = [];
      const release = (): void => {
        receivingBytes -= totalBytes;
        totalBytes = 0;
        chunks = [];
      };
      call.on('data', (request: SendSnapshotRequest) => {
        if (complete || refused) return; // nothing counts after the last chunk
        if (header === undefined && request.message !== undefined) {
          header = request.message;
          fromNodeId = request.fromNodeId;
          dataCrc32c = request.dataCrc32c;
        }
        fromNodeId ??= request.fromNodeId;
        totalBytes += request.chunk.length;
        receivingBytes += request.chunk.length;
        if (totalBytes > MAX_SNAPSHOT_BYTES || receivingBytes > MAX_RECEIVING_SNAPSHOT_BYTES) {
          if (totalBytes > MAX_SNAPSHOT_BYTES) {
            receiver.refuseSnapshotStream(fromNodeId, `snapshot stream past ${MAX_SNAPSHOT_BYTES} bytes`);
          } else {
            // Routine under load (several large snapshots at once): the sender retries later.
            logger.debug('snapshot stream refused: too many bytes being received', { peer: fromNodeId.slice(0, 64), bytes: totalBytes, receivingBytes });
          }
          refused = true;
          release();
          call.destroy(new Error(`snapshot larger than ${MAX_SNAPSHOT_BYTES} bytes, or too many being received`));
          return;
        }
        chunks.push(request.chunk);
        if (request.last) complete = true;
      });
      call.on('end', () => {
        if (refused || header === undefined || !complete) {
          release();
          if (!refused) receiver.refuseSnapshotStream(fromNodeId ?? '', header === undefined ? 'snapshot stream ended without its header' : 'snapshot stream ended without its last chunk');
          callback(null, { accepted: false });
          return;
        }
        const data = Buffer.concat(chunks, totalBytes);
        release();
        callback(null, { accepted: receiver.deliverSnapshot(fromNodeId ?? '', header, data, dataCrc32c) });
      });
      call.on('error', (error: Error) => {
        release();
        logger.debug('snapshot stream failed', { error: error.message });
      });
      // A stream cancelled or torn down without 'end' or 'error' must give its bytes back too.
      call.on('cancelled', release);
      call.on('close', release);
    },
  };
}
