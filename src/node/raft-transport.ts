/**
 * The Raft transport between storage nodes: one long-lived message stream per peer
 * node carries the messages of every group. The host queues the messages of a turn
 * with {@link RaftTransport.send} and calls {@link RaftTransport.flush} once per turn,
 * so each peer gets at most one `SendRequest` per turn — the heartbeats of all groups
 * travel together (C `raft_transport.go`).
 *
 * Raft tolerates loss, so the transport never blocks the host: when a peer's queue is
 * full or the peer is unreachable, messages are dropped and the sender's replica is
 * told (`reportUnreachable`). Snapshots travel on a stream of their own. The wire
 * itself is a {@link PeerLinks}: gRPC in production, a simulated network in test/sim.
 * @internal
 */
import type { Logger } from '../common/index.js';
import type { RaftMessage, SendRequest } from '../gen/kvstore/v1/raft.js';
import type { PeerDirectory } from './peer-directory.js';
import type { PeerLinks, PeerStream } from './peer-links.js';
import type { NodeRuntime } from './runtime.js';
import { splitBySize } from './server-limits.js';
import { snapshotChecksum } from './snapshot-check.js';

/** Receives what peers send; implemented by the host, which checks all of it first (`inbound-gate.ts`). */
export interface TransportReceiver {
  /** A message from a peer's message stream for the local replica `(message.shardId, message.to)`. */
  deliver(fromNodeId: string, message: RaftMessage): void;
  /** A `SendRequest` arrived from the peer (before its messages are delivered): it is alive (`peer-liveness.ts`). */
  heardFrom(fromNodeId: string): void;
  /**
   * A whole snapshot from a peer's snapshot stream, reassembled, with the sender's CRC32C of
   * its data (undefined from a node older than it). Returns whether it was accepted: the
   * stream's answer.
   */
  deliverSnapshot(fromNodeId: string, message: RaftMessage, data: Buffer, dataCrc32c: number | undefined): boolean;
  /**
   * A peer's snapshot stream was refused before it made a whole snapshot: it ended without
   * its header or its last chunk, or grew past the size limit. A correct sender never does
   * either (it cancels a stream it gives up on); `detail` says which.
   */
  refuseSnapshotStream(fromNodeId: string, detail: string): void;
}

/** Tells the host what happened to what it sent. */
export interface TransportReporter {
  /** A message to `(shardId, replicaId)` was dropped. */
  reportUnreachable(shardId: number, replicaId: number): void;
  /** A snapshot stream to `(shardId, replicaId)` ended. */
  reportSnapshot(shardId: number, replicaId: number, status: 'finish' | 'failure'): void;
  /** The stream to `nodeId` failed (connection lost: the peer may have crashed). */
  reportPeerFailed?(nodeId: string): void;
  /**
   * Whether a snapshot that waited for a send slot is still wanted (its sender still leads
   * in `term` and the follower still waits for one); one that is not is dropped unsent.
   * Absent: every snapshot is sent.
   */
  snapshotWanted?(shardId: number, replicaId: number, term: number): boolean;
}

/** Transport settings. */
export interface RaftTransportOptions {
  nodeId: string;
  peers: PeerDirectory;
  logger: Logger;
  reporter: TransportReporter;
  links: PeerLinks;
  runtime: NodeRuntime;
  /**
   * Messages that may wait per peer while its stream is not writable. Default 10,000:
   * enough for several turns of every group's traffic; past it Raft's own retries are
   * cheaper than an unbounded queue.
   */
  maxQueuedMessagesPerPeer?: number;
  /** Snapshot streams this node sends at once; more wait their turn. Default {@link MAX_CONCURRENT_SNAPSHOT_SENDS}. */
  maxConcurrentSnapshotSends?: number;
}

/**
 * Snapshot streams a node sends at once, by default. Each reads its snapshot from memory
 * the replica already holds and uses a peer's receive slot (`snapshot-spool.ts`, 4 at
 * once): two keep a node's uplink busy without starving its Raft traffic, and let the
 * manager's many concurrent moves proceed a few at a time instead of all failing together.
 */
export const MAX_CONCURRENT_SNAPSHOT_SENDS = 2;

/** A snapshot waiting for a send slot. */
interface QueuedSnapshot {
  nodeId: string;
  header: RaftMessage;
  data: Uint8Array;
}

const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;

class PeerConnection {
  stream: PeerStream | undefined;
  streamOpenedAtMs = 0;
  /** Messages of the current turn. */
  outgoing: RaftMessage[] = [];
  /** Batches waiting for 'drain'. */
  backlog: SendRequest[] = [];
  backlogMessages = 0;
  writable = true;
  retryAtMs = 0;
  backoffMs = INITIAL_BACKOFF_MS;
  /** Monotonic ms of the last batch written (or queued for 'drain') on this connection. */
  lastWriteMs = Number.NEGATIVE_INFINITY;

  constructor(readonly nodeId: string) {}
}

/** One node's side of the Raft transport: batching and queueing over its peer links. */
export class RaftTransport {
  private readonly connections = new Map<string, PeerConnection>();
  private readonly dirty = new Set<PeerConnection>();
  private readonly maxQueued: number;
  private readonly runtime: NodeRuntime;
  private closed = false;
  private readonly snapshotsInFlight = new Set<Promise<void>>();
  /** Snapshots waiting for a send slot, oldest first; at most one per destination replica. */
  private readonly snapshotQueue: QueuedSnapshot[] = [];
  private readonly maxSnapshotSends: number;
  /** Counters for tests and metrics: SendRequests written, messages sent, messages dropped, snapshot streams by outcome, snapshots that waited for a slot and those no longer wanted when their turn came. */
  readonly stats = { batches: 0, messages: 0, dropped: 0, keepAlives: 0, snapshotsSent: 0, snapshotsFailed: 0, snapshotsWaited: 0, snapshotsDropped: 0 };

  constructor(private readonly options: RaftTransportOptions) {
    this.maxQueued = options.maxQueuedMessagesPerPeer ?? 10_000;
    this.maxSnapshotSends = options.maxConcurrentSnapshotSends ?? MAX_CONCURRENT_SNAPSHOT_SENDS;
    this.runtime = options.runtime;
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

  /**
   * Writes one `SendRequest` per peer with everything queued since the last flush — several
   * when it holds more than ~1 MiB, so none nears the peer's receive limit (`server-limits.ts`).
   */
  flush(): void {
    for (const connection of this.dirty) {
      const messages = connection.outgoing;
      connection.outgoing = [];
      if (messages.length > 0) for (const run of splitBySize(messages)) this.write(connection, run);
    }
    this.dirty.clear();
  }

  /**
   * Writes an empty `SendRequest` to every peer this node has written nothing to for
   * `idleMs`: the peer's proof that this node is alive when none of their shared groups
   * speaks (quiesced groups send nothing; `peer-liveness.ts`). A stream that failed is
   * reopened once its backoff allows.
   */
  keepAlive(idleMs: number): void {
    if (this.closed) return;
    const nowMs = this.runtime.monotonicMs();
    for (const connection of this.connections.values()) {
      if (nowMs - connection.lastWriteMs < idleMs || !connection.writable) continue;
      const stream = this.stream(connection);
      if (stream === undefined) continue;
      connection.lastWriteMs = nowMs;
      this.stats.keepAlives += 1;
      if (!stream.write({ fromNodeId: this.options.nodeId, messages: [] })) connection.writable = false;
    }
  }

  private write(connection: PeerConnection, messages: RaftMessage[]): void {
    if (this.closed) return;
    const stream = this.stream(connection);
    if (stream === undefined) {
      this.drop(messages);
      return;
    }
    connection.lastWriteMs = this.runtime.monotonicMs();
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

  private stream(connection: PeerConnection): PeerStream | undefined {
    if (connection.stream !== undefined) return connection.stream;
    const nowMs = this.runtime.monotonicMs();
    if (nowMs < connection.retryAtMs) return undefined;
    const address = this.options.peers.get(connection.nodeId);
    if (address === undefined) {
      this.options.logger.debug('no address for peer', { peer: connection.nodeId });
      return undefined;
    }
    const stream: PeerStream = this.options.links.openStream(connection.nodeId, address, {
      onDrain: () => this.onDrain(connection, stream),
      onEnd: (failure) => this.onStreamEnd(connection, stream, failure),
    });
    connection.stream = stream;
    connection.streamOpenedAtMs = nowMs;
    connection.writable = true;
    return stream;
  }

  private onDrain(connection: PeerConnection, stream: PeerStream): void {
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

  private onStreamEnd(connection: PeerConnection, stream: PeerStream, failure: string | undefined): void {
    if (connection.stream !== stream) return;
    connection.stream = undefined;
    connection.writable = true;
    for (const batch of connection.backlog) this.drop(batch.messages);
    connection.backlog = [];
    connection.backlogMessages = 0;
    if (this.closed) return;
    // A stream that lived a while failed for a new reason: start the backoff over.
    const nowMs = this.runtime.monotonicMs();
    if (nowMs - connection.streamOpenedAtMs > MAX_BACKOFF_MS) connection.backoffMs = INITIAL_BACKOFF_MS;
    connection.retryAtMs = nowMs + connection.backoffMs;
    connection.backoffMs = Math.min(connection.backoffMs * 2, MAX_BACKOFF_MS);
    this.options.logger.debug('peer stream ended', { peer: connection.nodeId, error: failure });
    if (failure !== undefined) this.options.reporter.reportPeerFailed?.(connection.nodeId);
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
    this.options.links.reset(nodeId);
    connection.retryAtMs = 0;
    connection.backoffMs = INITIAL_BACKOFF_MS;
  }

  /**
   * Streams a snapshot message to a peer on its own stream; reports `finish` once the
   * peer accepted all of it, `failure` otherwise. `data` is the snapshot as read from
   * storage: its CRC32C, taken here before any chunking or copying, travels with it and
   * the receiver checks it BEFORE its replica or storage sees any of it (`snapshot-check.ts`).
   *
   * At most `maxConcurrentSnapshotSends` streams run at once; the others wait in order.
   * A newer snapshot for a replica that already has one waiting takes its place (the
   * replica's progress tracks only the newest; the one replaced is never reported).
   * A waiting snapshot holds the storage's snapshot bytes it was made from (no copy), so at
   * most one old snapshot per replica led; one no longer wanted when its turn comes is
   * dropped unsent (`TransportReporter.snapshotWanted`).
   */
  sendSnapshot(nodeId: string, header: RaftMessage, data: Uint8Array): void {
    const waiting = this.snapshotQueue.find((queued) => queued.nodeId === nodeId && queued.header.shardId === header.shardId && queued.header.to === header.to);
    if (waiting !== undefined) {
      waiting.header = header;
      waiting.data = data;
      return;
    }
    this.snapshotQueue.push({ nodeId, header, data });
    this.startSnapshots();
    if (this.snapshotQueue.length > 0) this.stats.snapshotsWaited += 1;
  }

  /** Snapshots waiting for a send slot. */
  get snapshotsWaiting(): number {
    return this.snapshotQueue.length;
  }

  /** Snapshot streams running now. */
  get snapshotsSending(): number {
    return this.snapshotsInFlight.size;
  }

  /** Starts waiting snapshots while slots are free; `waited`: the queue's head waited for a slot. */
  private startSnapshots(waited = false): void {
    while (!this.closed && this.snapshotsInFlight.size < this.maxSnapshotSends) {
      const next = this.snapshotQueue.shift();
      if (next === undefined) return;
      const { header } = next;
      if (waited && this.options.reporter.snapshotWanted?.(header.shardId, header.to, header.term) === false) {
        this.stats.snapshotsDropped += 1;
        this.options.logger.debug('waiting snapshot no longer wanted', { peer: next.nodeId, shard: header.shardId, to: header.to, term: header.term });
        continue;
      }
      this.streamSnapshot(next);
    }
  }

  private streamSnapshot({ nodeId, header, data }: QueuedSnapshot): void {
    const address = this.options.peers.get(nodeId);
    const sent = address === undefined || this.closed
      ? Promise.resolve(false)
      : this.options.links.sendSnapshot(nodeId, address, { header, data, dataCrc32c: snapshotChecksum(data) }, () => this.closed);
    const task = sent.then(
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
    void task.finally(() => {
      this.snapshotsInFlight.delete(task);
      this.startSnapshots(true);
    });
  }

  /** Ends every stream and waits for snapshots in flight to settle. */
  async close(): Promise<void> {
    this.closed = true;
    this.snapshotQueue.length = 0;
    for (const connection of this.connections.values()) {
      connection.stream?.end();
      connection.stream = undefined;
    }
    await Promise.allSettled([...this.snapshotsInFlight]);
    this.options.links.close();
    this.connections.clear();
  }
}
