/**
 * One storage node as the client sees it: one gRPC channel, and one bidirectional `Batch` stream that
 * carries every concurrent request to that node (DESIGN.md §4). Requests issued in the same turn of the
 * event loop go out in one BatchRequest; responses are matched by request id as they arrive, so a slow
 * request blocks nobody. A broken stream fails the requests in flight on it (the router retries them,
 * writes with the same session) and the next request opens a new stream.
 */
import { status as GrpcStatus, makeGenericClientConstructor, Metadata, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { batchChunkLength } from '../common/index.js';
import {
  KvServiceService,
  type KvServiceClient,
  type BatchRequest,
  type BatchRequestItem,
  type BatchResponse,
  type BatchResponseItem,
} from '../gen/kvstore/v1/kvstore.js';
import { ChannelSecurity, securityFailure } from '../security/channel-security.js';
import { encodeBatchRequest } from './batch-codec.js';
import { CHANNEL_OPTIONS } from './channel-options.js';

/** `KvService` as the generated client, with the `Batch` stream's requests encoded by `batch-codec.ts`. */
const KvClient = makeGenericClientConstructor(
  { ...KvServiceService, batch: { ...KvServiceService.batch, requestSerialize: encodeBatchRequest } },
  'kvstore.v1.KvService',
) as unknown as typeof KvServiceClient;

/** One request: the `op` of a BatchRequestItem. */
export type NodeRequest = NonNullable<BatchRequestItem['op']>;
/** One answer: the `result` of a BatchResponseItem. */
export type NodeResponse = NonNullable<BatchResponseItem['result']>;

/**
 * The request did not get an answer from this node: the stream or channel broke, the node is
 * unreachable, or the attempt timed out. For a write the outcome is unknown (`maybeDelivered`).
 */
export class NodeTransportError extends Error {
  /** The gRPC status code, when there was one. */
  readonly grpcCode: number | undefined;
  /** False only when the request certainly never left this process. */
  readonly maybeDelivered: boolean;
  constructor(message: string, options: { grpcCode?: number; maybeDelivered: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NodeTransportError';
    this.grpcCode = options.grpcCode;
    this.maybeDelivered = options.maybeDelivered;
  }
}


/** The deadline of one call, as a connection needs it (a `CallDeadline`). */
export interface AttemptDeadline {
  /** The call's deadline in `performance.now()` ms. */
  readonly deadlineAtMs: number;
  /** The caller's own signal, if any: aborting it fails the request at once. */
  readonly userSignal: AbortSignal | undefined;
}

interface Pending {
  request: NodeRequest;
  resolve: (response: NodeResponse) => void;
  reject: (error: Error) => void;
  /** The stream it was written to; undefined while queued. */
  stream: ClientDuplexStream<BatchRequest, BatchResponse> | undefined;
  /** `performance.now()` ms after which it fails: its attempt timeout or the call's deadline. */
  expiresAtMs: number;
  /** The message it fails with then. */
  expiry: string;
  /** Stops listening to the caller's signal (a no-op without one). */
  cleanup: () => void;
}

const NO_CLEANUP = (): void => undefined;

/**
 * The channel and Batch stream to one node. Falls back to unary calls if the node does not implement
 * Batch (UNIMPLEMENTED), which keeps the client usable against minimal servers.
 */
export class NodeConnection {
  /** The node's `host:port`. */
  readonly address: string;
  private readonly client: KvServiceClient;
  private stream: ClientDuplexStream<BatchRequest, BatchResponse> | undefined;
  private readonly pending = new Map<number, Pending>();
  private queue: BatchRequestItem[] = [];
  private nextRequestId = 1;
  private flushScheduled = false;
  private writeBlocked = false;
  private unaryOnly = false;
  private closed = false;
  /**
   * One timer for every request's expiry (not one per request): armed for the earliest known
   * expiry; when it fires it fails what expired and re-arms for the next. Answers arrive long
   * before expiries, so it rarely fires, and arming it costs nothing per request while the
   * earliest stays armed.
   */
  private expiryTimer: NodeJS.Timeout | undefined;
  private expiryTimerAtMs = Number.POSITIVE_INFINITY;

  constructor(address: string, private readonly security: ChannelSecurity = ChannelSecurity.NONE) {
    this.address = address;
    const target = security.forTarget(address);
    this.client = new KvClient(address, target.credentials, { ...CHANNEL_OPTIONS, ...target.options, interceptors: security.interceptors });
  }

  /** Requests in flight on this connection (for tests and metrics). */
  get inFlightCount(): number {
    return this.pending.size;
  }

  /**
   * Sends one request and resolves with the node's answer. Rejects with {@link NodeTransportError} when
   * the node did not answer within `attemptTimeoutMs` or by the call's deadline, the stream broke, or
   * the caller's signal aborted.
   */
  send(request: NodeRequest, deadline: AttemptDeadline, attemptTimeoutMs: number): Promise<NodeResponse> {
    if (this.closed) return Promise.reject(new NodeTransportError('connection closed', { maybeDelivered: false }));
    const userSignal = deadline.userSignal;
    if (userSignal?.aborted === true) return Promise.reject(new NodeTransportError('aborted', { maybeDelivered: false }));
    if (this.unaryOnly) return this.sendUnary(request, deadline, attemptTimeoutMs);
    const requestId = this.nextRequestId++;
    const nowMs = performance.now();
    const leftMs = deadline.deadlineAtMs - nowMs;
    const expiresAtMs = nowMs + Math.min(attemptTimeoutMs, leftMs);
    const expiry = leftMs < attemptTimeoutMs ? 'the call\'s deadline passed' : `no answer from ${this.address} within ${attemptTimeoutMs} ms`;
    return new Promise<NodeResponse>((resolve, reject) => {
      let cleanup = NO_CLEANUP;
      if (userSignal !== undefined) {
        const onAbort = (): void => this.fail(requestId, 'aborted');
        userSignal.addEventListener('abort', onAbort, { once: true });
        cleanup = () => userSignal.removeEventListener('abort', onAbort);
      }
      this.pending.set(requestId, { request, resolve, reject, stream: undefined, expiresAtMs, expiry, cleanup });
      if (expiresAtMs < this.expiryTimerAtMs) this.armExpiry(expiresAtMs, nowMs);
      this.queue.push({ requestId, op: request });
      this.scheduleFlush();
    });
  }

  /** Takes a request out of the pending set; the expiry timer goes with the last one, so no timer holds the process. */
  private removePending(requestId: number, entry: Pending): void {
    this.pending.delete(requestId);
    if (this.pending.size === 0) this.disarmExpiry();
    entry.cleanup();
  }

  /** Fails one request in flight with a transport error (timeout, abort). */
  private fail(requestId: number, message: string): void {
    const entry = this.pending.get(requestId);
    if (entry === undefined) return;
    this.removePending(requestId, entry);
    entry.reject(new NodeTransportError(message, { maybeDelivered: entry.stream !== undefined }));
  }

  private armExpiry(atMs: number, nowMs: number): void {
    if (this.expiryTimer !== undefined) clearTimeout(this.expiryTimer);
    this.expiryTimerAtMs = atMs;
    this.expiryTimer = setTimeout(() => this.expire(), Math.max(0, atMs - nowMs));
  }

  private disarmExpiry(): void {
    if (this.expiryTimer === undefined) return;
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    this.expiryTimerAtMs = Number.POSITIVE_INFINITY;
  }

  /** The expiry timer fired: fails every request past its expiry, re-arms for the earliest left. */
  private expire(): void {
    this.expiryTimer = undefined;
    this.expiryTimerAtMs = Number.POSITIVE_INFINITY;
    const nowMs = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [requestId, entry] of this.pending) {
      if (entry.expiresAtMs <= nowMs) this.fail(requestId, entry.expiry);
      else if (entry.expiresAtMs < next) next = entry.expiresAtMs;
    }
    if (next !== Number.POSITIVE_INFINITY && !this.closed) this.armExpiry(next, nowMs);
  }

  /** Fails everything in flight, cancels the stream and closes the channel. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.failPending(() => true, 'connection closed', undefined);
    this.disarmExpiry();
    const stream = this.stream;
    this.stream = undefined;
    if (stream !== undefined) {
      stream.end();
      stream.cancel();
    }
    this.client.close();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes queued requests, many per message, until the stream pushes back (`write() === false`). */
  private flush(): void {
    while (!this.closed && !this.writeBlocked && this.queue.length > 0) {
      if (this.unaryOnly) {
        this.moveQueueToUnary();
        return;
      }
      const stream = this.ensureStream();
      const chunk = this.queue.splice(0, batchChunkLength(this.queue, (item) => item.op?.$case === 'txn'));
      const items: BatchRequestItem[] = [];
      for (const item of chunk) {
        const entry = this.pending.get(item.requestId);
        if (entry === undefined) continue; // aborted while queued
        entry.stream = stream;
        items.push(item);
      }
      if (items.length === 0) continue;
      if (!stream.write({ items })) this.writeBlocked = true;
    }
  }

  private ensureStream(): ClientDuplexStream<BatchRequest, BatchResponse> {
    if (this.stream !== undefined) return this.stream;
    const stream = this.client.batch();
    this.stream = stream;
    stream.on('data', (response: BatchResponse) => {
      for (const item of response.items) this.settle(item);
    });
    stream.on('drain', () => {
      if (this.stream !== stream) return;
      this.writeBlocked = false;
      this.flush();
    });
    stream.on('error', (error: ServiceError) => this.onStreamEnd(stream, error));
    stream.on('end', () => this.onStreamEnd(stream, undefined));
    stream.on('close', () => this.onStreamEnd(stream, undefined));
    return stream;
  }

  private settle(item: BatchResponseItem): void {
    const entry = this.pending.get(item.requestId);
    if (entry === undefined) return; // timed out or aborted already
    this.removePending(item.requestId, entry);
    if (item.result === undefined) {
      entry.reject(new NodeTransportError(`empty response from ${this.address}`, { maybeDelivered: true }));
    } else {
      entry.resolve(item.result);
    }
  }

  private onStreamEnd(stream: ClientDuplexStream<BatchRequest, BatchResponse>, error: ServiceError | undefined): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    this.writeBlocked = false;
    if (error?.code === GrpcStatus.UNIMPLEMENTED) this.unaryOnly = true;
    const security = error === undefined ? undefined : securityFailure(error.code, error.details || error.message, this.security.secure, this.address);
    if (security !== undefined) {
      // Refused before any request was read (credentials, or a TLS handshake that failed): none was applied.
      this.failPending((entry) => entry.stream === stream, security, error, GrpcStatus.UNAUTHENTICATED);
    } else {
      const why = error === undefined ? 'stream ended' : `stream failed: ${error.details || error.message}`;
      this.failPending((entry) => entry.stream === stream, `${this.address}: ${why}`, error);
    }
    if (this.queue.length > 0) this.scheduleFlush();
  }

  private failPending(which: (entry: Pending) => boolean, message: string, error: ServiceError | undefined, unauthenticated?: number): void {
    for (const [requestId, entry] of this.pending) {
      if (!which(entry)) continue;
      this.removePending(requestId, entry);
      const options = { maybeDelivered: unauthenticated === undefined && entry.stream !== undefined, cause: error };
      entry.reject(new NodeTransportError(message, error === undefined ? options : { ...options, grpcCode: unauthenticated ?? error.code }));
    }
  }

  /** After the node said it has no Batch: send what was queued as unary calls. */
  private moveQueueToUnary(): void {
    const queued = this.queue;
    this.queue = [];
    for (const item of queued) {
      const entry = this.pending.get(item.requestId);
      if (entry === undefined) continue;
      this.removePending(item.requestId, entry);
      entry.reject(new NodeTransportError(`${this.address} has no Batch stream`, { maybeDelivered: false }));
    }
  }

  private sendUnary(request: NodeRequest, deadline: AttemptDeadline, attemptTimeoutMs: number): Promise<NodeResponse> {
    const signal = deadline.userSignal;
    return new Promise<NodeResponse>((resolve, reject) => {
      const options = { deadline: new Date(Date.now() + Math.min(attemptTimeoutMs, deadline.deadlineAtMs - performance.now())) };
      const metadata = new Metadata();
      const done = (error: ServiceError | null, response: NodeResponse | undefined): void => {
        signal?.removeEventListener('abort', onAbort);
        if (error === null && response !== undefined) resolve(response);
        else {
          const security = error === null ? undefined : securityFailure(error.code, error.details || error.message, this.security.secure, this.address);
          if (error !== null && security !== undefined) {
            reject(new NodeTransportError(security, { maybeDelivered: false, grpcCode: GrpcStatus.UNAUTHENTICATED, cause: error }));
            return;
          }
          const message = `${this.address}: ${error?.details || error?.message || 'no response'}`;
          reject(new NodeTransportError(message, error === null ? { maybeDelivered: true } : { maybeDelivered: true, grpcCode: error.code, cause: error }));
        }
      };
      let call: { cancel(): void };
      switch (request.$case) {
        case 'get':
          call = this.client.get(request.value, metadata, options, (e, r) => done(e, r === undefined ? undefined : { $case: 'get', value: r }));
          break;
        case 'put':
          call = this.client.put(request.value, metadata, options, (e, r) => done(e, r === undefined ? undefined : { $case: 'put', value: r }));
          break;
        case 'delete':
          call = this.client.delete(request.value, metadata, options, (e, r) => done(e, r === undefined ? undefined : { $case: 'delete', value: r }));
          break;
        case 'cas':
          call = this.client.cas(request.value, metadata, options, (e, r) => done(e, r === undefined ? undefined : { $case: 'cas', value: r }));
          break;
        case 'txn':
          call = this.client.txn(request.value, metadata, options, (e, r) => done(e, r === undefined ? undefined : { $case: 'txn', value: r }));
          break;
      }
      const onAbort = (): void => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

