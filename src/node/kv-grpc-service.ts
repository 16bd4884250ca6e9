/**
 * The gRPC handlers of the client-facing KvService: unary Get/Put/Delete/Cas and the
 * bidirectional Batch stream, over a {@link KvRequestExecutor}, with admission control
 * (`admission.ts`): every request takes room from its connection's and the node's budgets
 * before it runs and gives it back when answered; past them it is answered RESOURCE_EXHAUSTED
 * at once, not run.
 *
 * On the Batch stream each item is answered as it completes, and answers that complete in one
 * host turn leave together (in BatchResponses of at most MAX_BATCH_ITEMS). A stream with
 * {@link MAX_STREAM_REQUESTS_IN_FLIGHT} requests (or {@link MAX_STREAM_REQUEST_BYTES}) in flight
 * is not read further until answers bring it under half: HTTP/2 flow control then holds the
 * client back, and nothing is refused. The same happens while the client does not take answers.
 * @internal
 */
import type { sendUnaryData, ServerDuplexStream, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import { batchChunkLength, MAX_BATCH_ITEMS, MAX_VALUE_BYTES } from '../common/index.js';
import {
  type BatchRequest,
  type BatchRequestItem,
  type BatchResponse,
  type BatchResponseItem,
  type CasRequest,
  type CasResponse,
  type DeleteRequest,
  type DeleteResponse,
  type Error as KvError,
  ErrorCode,
  type GetRequest,
  type GetResponse,
  type KvServiceServer,
  type PutRequest,
  type PutResponse,
  type Session,
  type ReadShardRequest,
  type ReadShardResponse,
  type TxnRequest,
  type TxnResponse,
} from '../gen/kvstore/v1/kvstore.js';
import {
  type AdmissionControl,
  MAX_STREAM_REQUEST_BYTES,
  MAX_STREAM_REQUESTS_IN_FLIGHT,
  type RefusalReason,
  requestBytes,
} from './admission.js';
import { errorItem, type KvRequestExecutor, kvError, type ShardExport } from './kv-service.js';

type Done<T> = (response: T) => void;

/** What the handlers run requests with: a {@link KvRequestExecutor} (tests give a fake). */
export type KvRequestRunner = Pick<KvRequestExecutor, 'get' | 'put' | 'delete' | 'cas' | 'txn' | 'item' | 'readShard'>;

/** Entries per ReadShardResponse: at most ~540 KB with the largest keys and values. */
const READ_SHARD_CHUNK_ENTRIES = 512;

/** The bounds a Batch stream reads under. */
export interface StreamLimits {
  requests: number;
  bytes: number;
}

/** What the handlers need besides the executor. */
export interface KvGrpcServiceOptions {
  admission: AdmissionControl;
  /** Counts refusals the handlers make themselves (oversized batches); admission counts its own. */
  refused?(reason: RefusalReason, count?: number): void;
  /** Per-stream bounds; default the `admission.ts` constants. */
  streamLimits?: StreamLimits;
}

const EMPTY = Buffer.alloc(0);

function sessionBytes(session: Session | undefined): number {
  return session === undefined ? 0 : session.clientId.length;
}

/** The bytes a Batch item is charged against the budgets (`admission.ts`). */
export function itemBytes(item: BatchRequestItem): number {
  const op = item.op;
  switch (op?.$case) {
    case 'get':
      return requestBytes(op.value.key.length);
    case 'put':
      return requestBytes(op.value.key.length, op.value.value.length, sessionBytes(op.value.session));
    case 'delete':
      return requestBytes(op.value.key.length, 0, sessionBytes(op.value.session));
    case 'cas':
      return requestBytes(op.value.key.length, op.value.value.length, sessionBytes(op.value.session));
    case 'txn':
      return txnBytes(op.value);
    case undefined:
      return requestBytes(0);
  }
}

/** What a transaction is charged: every key and value in it, its session, and the largest value each get may answer. */
function txnBytes(request: TxnRequest): number {
  let bytes = 0;
  for (const compare of request.compares) bytes += compare.key.length + (compare.target?.$case === 'value' ? compare.target.value.length : 0);
  for (const op of [...request.success, ...request.failure]) {
    const inner = op.op;
    if (inner !== undefined) bytes += inner.value.key.length + (inner.$case === 'put' ? inner.value.value.length : 0) + (inner.$case === 'get' ? MAX_VALUE_BYTES : 0);
  }
  return requestBytes(bytes, 0, sessionBytes(request.session));
}

/** The gRPC implementation of KvService over an executor, under admission control. */
export function kvGrpcService(executor: KvRequestRunner, options: KvGrpcServiceOptions): KvServiceServer {
  const admission = options.admission;
  const unary = <Req, Res>(bytesOf: (request: Req) => number, run: (request: Req, done: Done<Res>) => void, refused: (error: KvError) => Res) =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
      const peer = call.getPeer();
      const bytes = bytesOf(call.request);
      const refusal = admission.admit(peer, bytes);
      if (refusal !== undefined) {
        callback(null, refused(kvError(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, admission.refusalMessage(refusal))));
        return;
      }
      run(call.request, (response) => {
        admission.release(peer, bytes);
        callback(null, response);
      });
    };
  return {
    get: unary(
      (request: GetRequest) => requestBytes(request.key.length),
      (request: GetRequest, done: Done<GetResponse>) => executor.get(request, done),
      (error): GetResponse => ({ error, found: false, value: EMPTY, version: 0, expiresAtMs: 0, expiresInMs: 0 }),
    ),
    put: unary(
      (request: PutRequest) => requestBytes(request.key.length, request.value.length, sessionBytes(request.session)),
      (request: PutRequest, done: Done<PutResponse>) => executor.put(request, done),
      (error): PutResponse => ({ error, version: 0 }),
    ),
    delete: unary(
      (request: DeleteRequest) => requestBytes(request.key.length, 0, sessionBytes(request.session)),
      (request: DeleteRequest, done: Done<DeleteResponse>) => executor.delete(request, done),
      (error): DeleteResponse => ({ error, existed: false }),
    ),
    cas: unary(
      (request: CasRequest) => requestBytes(request.key.length, request.value.length, sessionBytes(request.session)),
      (request: CasRequest, done: Done<CasResponse>) => executor.cas(request, done),
      (error): CasResponse => ({ error, version: 0, currentVersion: 0 }),
    ),
    txn: unary(
      txnBytes,
      (request: TxnRequest, done: Done<TxnResponse>) => executor.txn(request, done),
      (error): TxnResponse => ({ error, succeeded: false, results: [] }),
    ),
    readShard: (call: ServerWritableStream<ReadShardRequest, ReadShardResponse>) => {
      executor.readShard(call.request.shardId, (result) => void streamShard(call, result));
    },
    batch: (call: ServerDuplexStream<BatchRequest, BatchResponse>) => {
      new BatchStream(call, executor, options).start();
    },
  };
}

/** Streams a shard's export in chunks, waiting for the client to drain each one it cannot take yet. */
async function streamShard(call: ServerWritableStream<ReadShardRequest, ReadShardResponse>, result: ShardExport | { error: KvError }): Promise<void> {
  const empty = { appliedIndex: 0, term: 0, keyCount: 0, entries: [], last: true };
  if ('error' in result) {
    call.write({ ...empty, error: result.error });
    call.end();
    return;
  }
  const { entries } = result;
  let cancelled = false;
  call.on('cancelled', () => { cancelled = true; });
  for (let start = 0; start === 0 || start < entries.length; start += READ_SHARD_CHUNK_ENTRIES) {
    if (cancelled) return;
    const chunk = entries.slice(start, start + READ_SHARD_CHUNK_ENTRIES).map((entry) => ({
      key: Buffer.from(entry.key, 'latin1'), value: entry.value, version: entry.version, expiresInMs: entry.expiresInMs,
    }));
    const last = start + READ_SHARD_CHUNK_ENTRIES >= entries.length;
    const more = call.write({ appliedIndex: result.appliedIndex, term: result.term, keyCount: entries.length, entries: chunk, last });
    if (!more && !last) await new Promise<void>((resolve) => call.once('drain', resolve));
  }
  call.end();
}

/** One Batch stream being served. */
class BatchStream {
  private readonly peer: string;
  private readonly limits: StreamLimits;
  private outbox: BatchResponseItem[] = [];
  private flushScheduled = false;
  private inFlight = 0;
  private inFlightBytes = 0;
  private inputEnded = false;
  private finished = false;
  /** The client does not take answers (`write() === false` until 'drain'). */
  private writeBlocked = false;
  /** The stream's requests in flight reached its bounds. */
  private full = false;
  private paused = false;

  constructor(
    private readonly call: ServerDuplexStream<BatchRequest, BatchResponse>,
    private readonly executor: KvRequestRunner,
    private readonly options: KvGrpcServiceOptions,
  ) {
    this.peer = call.getPeer();
    this.limits = options.streamLimits ?? { requests: MAX_STREAM_REQUESTS_IN_FLIGHT, bytes: MAX_STREAM_REQUEST_BYTES };
  }

  start(): void {
    const call = this.call;
    call.on('data', (request: BatchRequest) => this.receive(request));
    call.on('end', () => {
      this.inputEnded = true;
      if (this.inFlight === 0 && !this.flushScheduled) this.finish();
    });
    call.on('cancelled', () => {
      this.finished = true;
    });
    call.on('error', () => {
      this.finished = true;
    });
  }

  private receive(request: BatchRequest): void {
    const items = request.items;
    if (items.length > MAX_BATCH_ITEMS) {
      // The whole message is refused: a client that ignores the limit learns it at once.
      this.options.refused?.('batch_items', items.length);
      const failure = kvError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, `a BatchRequest holds ${items.length} items: the limit is ${MAX_BATCH_ITEMS}`);
      for (const item of items) this.queueAnswer(errorItem(item, failure));
      return;
    }
    const admission = this.options.admission;
    for (const item of items) {
      const bytes = itemBytes(item);
      const refusal = admission.admit(this.peer, bytes);
      if (refusal !== undefined) {
        this.queueAnswer(errorItem(item, kvError(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED, admission.refusalMessage(refusal))));
        continue;
      }
      this.inFlight += 1;
      this.inFlightBytes += bytes;
      this.executor.item(item, (answer) => this.answered(answer, bytes));
    }
    if (this.inFlight >= this.limits.requests || this.inFlightBytes >= this.limits.bytes) {
      this.full = true;
      this.updateReading();
    }
  }

  private answered(item: BatchResponseItem, bytes: number): void {
    this.inFlight -= 1;
    this.inFlightBytes -= bytes;
    // Released whether or not the stream is still there: the request was held until now.
    this.options.admission.release(this.peer, bytes);
    if (this.full && this.inFlight <= this.limits.requests / 2 && this.inFlightBytes <= this.limits.bytes / 2) {
      this.full = false;
      this.updateReading();
    }
    this.queueAnswer(item);
  }

  private queueAnswer(item: BatchResponseItem): void {
    if (this.finished) return;
    this.outbox.push(item);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Reads on demand: the stream is read while it is under its bounds and the client takes answers. */
  private updateReading(): void {
    if (this.finished) return;
    const pause = this.writeBlocked || this.full;
    if (pause && !this.paused) {
      this.paused = true;
      this.call.pause();
    } else if (!pause && this.paused) {
      this.paused = false;
      this.call.resume();
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.finished || this.outbox.length === 0) return;
    const items = this.outbox;
    this.outbox = [];
    let writable = true;
    // Messages of at most MAX_BATCH_ITEMS items' room, a transaction's answer taking TXN_BATCH_SLOTS
    // (up to 64 values), so no message outgrows what the client receives.
    for (let start = 0; start < items.length;) {
      const length = batchChunkLength(items, (item) => item.result?.$case === 'txn', start);
      const chunk = start === 0 && length === items.length ? items : items.slice(start, start + length);
      if (!this.call.write({ items: chunk })) writable = false;
      start += length;
    }
    if (!writable && !this.writeBlocked) {
      this.writeBlocked = true;
      this.updateReading();
      this.call.once('drain', () => {
        this.writeBlocked = false;
        this.updateReading();
      });
    }
    if (this.inputEnded && this.inFlight === 0) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.call.end();
  }
}
