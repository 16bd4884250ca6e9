/**
 * The Raft transport's production wire: gRPC `RaftService`. `Send` is one long-lived
 * client stream per peer node; `SendSnapshot` streams a snapshot in chunks. The server
 * side hands what arrives to the host ({@link raftService}).
 * @internal
 */
import {
  type ClientWritableStream,
  makeGenericClientConstructor,
  type sendUnaryData,
  type ServerReadableStream,
  type ServiceError,
  status as Status,
  connectivityState,
} from '@grpc/grpc-js';
import { ChannelSecurity } from '../security/index.js';
import type { PeerReachability } from './peer-reachability.js';
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
import type { SnapshotSpool, SpooledReception } from './snapshot-spool.js';
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

/**
 * A snapshot stream that sends neither a chunk nor its end for this long is refused and
 * gives its receive slot back. A correct sender streams without pause (the receiver's flow control is what
 * holds it, and a chunk's write takes milliseconds).
 */
const SNAPSHOT_IDLE_TIMEOUT_MS = 30_000;
/**
 * After a minute of waiting for the peer, a snapshot stream that averaged less than this over
 * the peer's time (this node's own writes not counted) is refused too: a trickle holds a
 * receive slot as surely as silence. (1 GiB at this rate takes over an hour.)
 */
const MIN_SNAPSHOT_BYTES_PER_SECOND = 256 * 1024;
const SNAPSHOT_RATE_GRACE_MS = 60_000;
/**
 * How long a sender waits for the answer after its last chunk: the receiver reads the snapshot
 * back (up to 1 GiB), checks and decodes it. Past it the stream is cancelled and reported failed.
 */
const SNAPSHOT_ANSWER_TIMEOUT_MS = 5 * 60_000;

/**
 * Waits until `done()` holds, looking each time one of `wakeups` settles and at least every
 * second (for `cancelled()`: the transport closing), for at most `timeoutMs`. True when `done()`
 * held; false when cancelled or timed out.
 */
async function waitUntil(done: () => boolean, wakeups: Promise<unknown>[], cancelled: () => boolean, timeoutMs: number): Promise<boolean> {
  for (let waitedMs = 0; !done() && !cancelled() && waitedMs < timeoutMs; waitedMs += 1_000) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([...wakeups, new Promise<void>((resolve) => { timer = setTimeout(resolve, 1_000); })]);
    clearTimeout(timer);
  }
  return done();
}

/** gRPC channel options shared by the node's server and its peer clients. */
export const RAFT_CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Reconnect within seconds of a peer coming back (grpc-js's default backs off to 120 s, and a
  // channel in TRANSIENT_FAILURE fails every stream at once, so Raft messages to it are dropped).
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 5000,
} as const;

/** Peer links over gRPC: one client (channel) per peer node. */
export class GrpcPeerLinks implements PeerLinks {
  private readonly clients = new Map<string, RaftServiceClient>();

  /**
   * @param localNodeId This node's id, sent with every snapshot chunk.
   * @param snapshotChunkBytes Snapshot chunk size. Default 1 MiB: below gRPC's 4 MiB
   *   message limit, large enough to stream fast.
   * @param snapshotAnswerTimeoutMs How long a snapshot send waits for the answer after its
   *   last chunk ({@link SNAPSHOT_ANSWER_TIMEOUT_MS}).
   */
  constructor(
    private readonly localNodeId: string,
    private readonly security: ChannelSecurity = ChannelSecurity.NONE,
    private readonly snapshotChunkBytes = 1024 * 1024,
    private readonly snapshotAnswerTimeoutMs = SNAPSHOT_ANSWER_TIMEOUT_MS,
    /** Told of every channel's connectivity changes and stream failures (`peer-reachability.ts`). */
    private readonly reachability?: PeerReachability,
  ) {}

  private client(nodeId: string, address: string): RaftServiceClient {
    let client = this.clients.get(nodeId);
    if (client === undefined) {
      const target = this.security.forTarget(address);
      client = new RaftClient(address, target.credentials, { ...RAFT_CHANNEL_OPTIONS, ...target.options, interceptors: this.security.interceptors });
      this.clients.set(nodeId, client);
      if (this.reachability !== undefined) watchChannel(client, nodeId, address, this.reachability);
    }
    return client;
  }

  openStream(nodeId: string, address: string, events: PeerStreamEvents): PeerStream {
    const stream = this.client(nodeId, address).send((error: ServiceError | null) => {
      if (error !== null) this.reachability?.streamFailed(nodeId, error.details || error.message);
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
    // The receiver may answer before it has read everything (it refused the stream): then no
    // 'drain' or 'close' follows, so every wait below also ends when the answer comes.
    let answered = false;
    void answer.then(() => {
      answered = true;
    });
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
        let stop = (): void => undefined;
        const writable = new Promise<void>((resolve) => {
          stop = (): void => {
            stream.off('drain', stop);
            stream.off('close', stop);
            resolve();
          };
          stream.on('drain', stop);
          stream.on('close', stop);
        });
        let drained = false;
        void writable.then(() => {
          drained = true;
        });
        const resumed = await waitUntil(() => drained || answered, [writable, answer], cancelled, SNAPSHOT_IDLE_TIMEOUT_MS);
        stop();
        if (!resumed && !cancelled()) {
          stream.cancel(); // the receiver read nothing for as long as it would wait for us
          break;
        }
      }
      if (answered) break;
      if (cancelled()) {
        stream.cancel();
        break;
      }
    } while (offset < bytes.length);
    stream.end();
    // The receiver answers once it has read back, checked and handed over the snapshot; one that
    // never does (its disk stalled) must not hold this send slot, or the transport's close, for good.
    if (!(await waitUntil(() => answered, [answer], cancelled, this.snapshotAnswerTimeoutMs))) stream.cancel();
    return answer;
  }

  reset(nodeId: string): void {
    this.clients.get(nodeId)?.close();
    this.clients.delete(nodeId);
    this.reachability?.forget(nodeId);
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/**
 * The server side of `RaftService`: routes every received message to `receiver`, and each
 * whole snapshot, whose answer says whether `receiver` accepted it. A snapshot's chunks go
 * to `spool` as they arrive (`snapshot-spool.ts`): the stream is paused while a chunk is
 * written, so gRPC's flow control holds the sender back and a transfer holds the few chunks
 * gRPC reads ahead (at most 16 messages), not the snapshot. Past the spool's concurrent streams the new one is refused (the sender retries).
 */
export function raftService(receiver: TransportReceiver, spool: SnapshotSpool, logger: Logger): RaftServiceServer {
  return {
    send: (call: ServerReadableStream<SendRequest, SendResponse>, callback: sendUnaryData<SendResponse>) => {
      call.on('data', (request: SendRequest) => {
        receiver.heardFrom(request.fromNodeId);
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
      /** The sender half-closed the stream: no chunk can follow. */
      let sawEnd = false;
      let ended = false;
      /** The call was cancelled or failed: its reception is aborted, nothing more is answered or logged. */
      let gone = false;
      let reception: SpooledReception | undefined;
      /** Time spent waiting for the peer's chunks, not counting this node's own writes (ms), and since when it waits. */
      let peerMs = 0;
      let waitingSinceMs = 0;
      const release = (): void => {
        reception?.abort().catch((error: unknown) => logger.warn('snapshot spool file not removed', { error: String(error) }));
      };
      /** A stream that stops sending gives its slot back: a peer cannot hold them all by going quiet. */
      let idle: ReturnType<typeof setTimeout> | undefined;
      const stopIdleTimer = (): void => {
        if (idle !== undefined) clearTimeout(idle);
        idle = undefined;
      };
      /** The chunk being written: 'end' waits for it. */
      let writing: Promise<void> = Promise.resolve();
      const answer = (accepted: boolean): void => {
        stopIdleTimer();
        if (ended) return;
        ended = true;
        callback(null, { accepted });
      };
      /** Answers with an error status at once; the rest of the stream is read and ignored. */
      const refuse = (detail: string | undefined, code: Status, message: string): void => {
        stopIdleTimer();
        if (ended) return;
        ended = true;
        release();
        if (detail !== undefined) receiver.refuseSnapshotStream(fromNodeId ?? '', detail);
        call.resume();
        callback({ code, details: message });
      };
      call.on('data', (request: SendSnapshotRequest) => {
        if (complete || ended) return; // nothing counts after the last chunk
        if (header === undefined && request.message !== undefined) {
          header = request.message;
          fromNodeId = request.fromNodeId;
          dataCrc32c = request.dataCrc32c;
        }
        fromNodeId ??= request.fromNodeId;
        if (reception === undefined) {
          reception = spool.begin();
          if (reception === undefined) {
            // Routine while several replicas move at once: the sender retries later.
            logger.debug('snapshot stream refused: too many being received', { peer: fromNodeId.slice(0, 64), receiving: spool.active });
            refuse(undefined, Status.RESOURCE_EXHAUSTED, `too many snapshots being received (limit ${spool.maxReceiving})`);
            return;
          }
          waitingSinceMs = performance.now();
        }
        peerMs += performance.now() - waitingSinceMs;
        // A trickle holds a slot as surely as silence does. Judged on the peer's time only (a slow disk
        // here is not the sender's fault), and never on the last chunk: a whole snapshot is not wasted.
        if (!request.last && peerMs > SNAPSHOT_RATE_GRACE_MS && (reception.bytes * 1000) / peerMs < MIN_SNAPSHOT_BYTES_PER_SECOND) {
          logger.debug('snapshot stream refused: too slow', { peer: fromNodeId.slice(0, 64), bytes: reception.bytes, ms: Math.round(peerMs) });
          refuse(undefined, Status.DEADLINE_EXCEEDED, `snapshot stream slower than ${MIN_SNAPSHOT_BYTES_PER_SECOND} bytes/s`);
          return;
        }
        if (request.last) complete = true;
        stopIdleTimer();
        const target = reception;
        call.pause();
        writing = writing.then(() => target.append(request.chunk)).then(
          () => {
            if (gone || ended || sawEnd) return;
            waitingSinceMs = performance.now();
            call.resume();
            // Counted from here: the time this node took to write the chunk is not the peer's.
            stopIdleTimer();
            idle = setTimeout(() => {
              logger.debug('snapshot stream refused: it went quiet', { peer: (fromNodeId ?? '').slice(0, 64), ms: SNAPSHOT_IDLE_TIMEOUT_MS });
              refuse(undefined, Status.DEADLINE_EXCEEDED, `no snapshot chunk or end for ${SNAPSHOT_IDLE_TIMEOUT_MS} ms`);
            }, SNAPSHOT_IDLE_TIMEOUT_MS);
            idle.unref();
          },
          (error: unknown) => {
            if (gone || ended) return;
            const detail = error instanceof Error ? error.message : String(error);
            const tooLarge = detail.startsWith('snapshot stream past');
            if (!tooLarge) logger.warn('snapshot spool write failed', { peer: (fromNodeId ?? '').slice(0, 64), error: detail });
            refuse(tooLarge ? detail : undefined, tooLarge ? Status.INVALID_ARGUMENT : Status.UNAVAILABLE, detail);
          },
        );
      });
      call.on('end', () => {
        sawEnd = true;
        stopIdleTimer();
        void writing.then(async () => {
          if (ended || gone) return;
          if (header === undefined || !complete || reception === undefined) {
            // A sender that cancels also ends the stream, and 'cancelled' may come a moment after 'end'.
            await new Promise((resolve) => setImmediate(resolve));
            release();
            if (ended || gone || call.cancelled) return;
            receiver.refuseSnapshotStream(fromNodeId ?? '', header === undefined ? 'snapshot stream ended without its header' : 'snapshot stream ended without its last chunk');
            answer(false);
            return;
          }
          let data: Buffer;
          try {
            data = await reception.finish();
          } catch (error) {
            logger.debug('snapshot spool read failed', { peer: (fromNodeId ?? '').slice(0, 64), error: error instanceof Error ? error.message : String(error) });
            answer(false);
            return;
          }
          if (!ended && !gone) answer(receiver.deliverSnapshot(fromNodeId ?? '', header, data, dataCrc32c));
        }).catch((error: unknown) => {
          logger.error('snapshot stream handling failed', { peer: (fromNodeId ?? '').slice(0, 64), error: error instanceof Error ? error.stack ?? error.message : String(error) });
          release();
          answer(false);
        });
      });
      const teardown = (): void => {
        gone = true;
        stopIdleTimer();
        release();
      };
      call.on('error', (error: Error) => {
        teardown();
        logger.debug('snapshot stream failed', { error: error.message });
      });
      // A stream cancelled or torn down without 'end' or 'error' must give its slot back too.
      call.on('cancelled', teardown);
      call.on('close', () => {
        if (!complete || ended) teardown();
      });
    },
  };
}

/** Follows a peer channel's connectivity until it shuts down, telling `reachability` of each state. */
function watchChannel(client: RaftServiceClient, nodeId: string, address: string, reachability: PeerReachability): void {
  const channel = client.getChannel();
  const watch = (last: connectivityState): void => {
    channel.watchConnectivityState(last, Infinity, (error?: Error) => {
      if (error !== undefined) return;
      const state = channel.getConnectivityState(false);
      if (state === connectivityState.SHUTDOWN) return; // closed: reset() or close()
      reachability.channelState(nodeId, address, state);
      watch(state);
    });
  };
  watch(channel.getConnectivityState(false));
}
