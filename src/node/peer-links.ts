/**
 * The wire under the Raft transport: how a node opens its message stream to a peer
 * and streams a snapshot. {@link RaftTransport} does the batching, queueing and
 * reporting above it; production links are gRPC (`grpc-peer-links.ts`), the
 * whole-node simulator's are a simulated network.
 * @internal
 */
import type { RaftMessage, SendRequest } from '../gen/kvstore/v1/raft.js';

/** One open message stream to a peer node. */
export interface PeerStream {
  /**
   * Queues a batch. Returns false when the stream's buffer is full: write more only
   * after `onDrain` (the batch itself was accepted).
   */
  write(batch: SendRequest): boolean;
  /** Closes the stream; what was written still goes out. */
  end(): void;
}

/** What a stream reports back. */
export interface PeerStreamEvents {
  /** The stream can take writes again. */
  onDrain(): void;
  /** The stream ended; `failure` says why when it failed (connection lost, peer gone). */
  onEnd(failure: string | undefined): void;
}

/** A snapshot to send: its message (without data), its data, and the data's CRC32C. */
export interface OutgoingSnapshot {
  header: RaftMessage;
  data: Uint8Array;
  /** CRC32C of `data`, computed by the sender over what it read from storage. */
  dataCrc32c: number;
}

/** Opens streams to peers. */
export interface PeerLinks {
  /** Opens the message stream to `nodeId` at `address`. */
  openStream(nodeId: string, address: string, events: PeerStreamEvents): PeerStream;
  /**
   * Sends a snapshot message with its data and checksum on a stream of its own. Resolves
   * true once the peer accepted all of it, false (or rejects) otherwise — a peer refuses
   * data that does not match the checksum; stops early once `cancelled()` turns true.
   */
  sendSnapshot(nodeId: string, address: string, snapshot: OutgoingSnapshot, cancelled: () => boolean): Promise<boolean>;
  /** Forgets cached connections to `nodeId` (its address changed). */
  reset(nodeId: string): void;
  /** Releases every connection. */
  close(): void;
}
