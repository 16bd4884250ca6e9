/**
 * Issue 15, admission control at the client service's gRPC layer (src/node/kv-grpc-service.ts,
 * src/node/client-limits.ts), on a real grpc-js server on loopback with small bounds and an
 * executor that answers only when the test says: a Batch stream at its bound is not read
 * further (flow control), past the connection's or the node's bounds requests are answered
 * RESOURCE_EXHAUSTED, past the open-call bound a call ends RESOURCE_EXHAUSTED, and a message
 * past the client limit ends its call without being decoded.
 */
import { type ClientDuplexStream, credentials, Server, ServerCredentials, type ServiceError, status as GrpcStatus } from '@grpc/grpc-js';
import { expect } from 'chai';
import {
  type BatchRequest,
  type BatchRequestItem,
  type BatchResponse,
  type BatchResponseItem,
  ErrorCode,
  type GetRequest,
  type GetResponse,
  KvServiceClient,
} from '../../src/gen/kvstore/v1/kvstore.js';
import { AdmissionControl, type AdmissionLimits, type RefusalReason } from '../../src/node/admission.js';
import { clientCallInterceptor, KV_SERVICE, MAX_BATCH_REQUEST_BYTES } from '../../src/node/client-limits.js';
import { kvGrpcService, type KvRequestRunner } from '../../src/node/kv-grpc-service.js';
import { SERVER_MAX_RECEIVE_MESSAGE_BYTES } from '../../src/node/server-limits.js';
import { waitFor } from '../support/wait-for.js';

/** Holds every request until the test answers it. */
class HeldExecutor implements KvRequestRunner {
  readonly items: { item: BatchRequestItem; done: (answer: BatchResponseItem) => void }[] = [];
  readonly gets: { done: (answer: GetResponse) => void }[] = [];
  seen = 0;

  get(_request: GetRequest, done: (answer: GetResponse) => void): void {
    this.seen += 1;
    this.gets.push({ done });
  }
  put(): void {
    throw new Error('not used');
  }
  txn(): void {
    throw new Error('not used');
  }
  readShard(): void {
    throw new Error('not used');
  }
  delete(): void {
    throw new Error('not used');
  }
  cas(): void {
    throw new Error('not used');
  }
  item(item: BatchRequestItem, done: (answer: BatchResponseItem) => void): void {
    this.seen += 1;
    this.items.push({ item, done });
  }

  /** Answers every held request (found: false). */
  answerAll(): void {
    for (const { item, done } of this.items.splice(0)) {
      done({ requestId: item.requestId, result: { $case: 'get', value: { found: false, value: Buffer.alloc(0), version: 0, expiresAtMs: 0, expiresInMs: 0 } } });
    }
    for (const { done } of this.gets.splice(0)) done({ found: false, value: Buffer.alloc(0), version: 0, expiresAtMs: 0, expiresInMs: 0 });
  }
}

const get = (requestId: number): BatchRequestItem => ({ requestId, op: { $case: 'get', value: { key: Buffer.from(`k${requestId}`), epoch: 0 } } });
const gets = (from: number, count: number): BatchRequest => ({ items: Array.from({ length: count }, (_unused, i) => get(from + i)) });

/** A Batch stream that records its answers and how it ended. */
class BatchCall {
  readonly answers: BatchResponseItem[] = [];
  status: ServiceError | 'ok' | undefined;
  readonly stream: ClientDuplexStream<BatchRequest, BatchResponse>;

  constructor(client: KvServiceClient) {
    this.stream = client.batch();
    this.stream.on('data', (response: BatchResponse) => this.answers.push(...response.items));
    this.stream.on('error', (error: ServiceError) => (this.status = error));
    this.stream.on('end', () => (this.status ??= 'ok'));
  }

  codes(): (ErrorCode | undefined)[] {
    return this.answers.map((answer) => (answer.result?.$case === 'get' ? answer.result.value.error?.code : undefined));
  }
}

describe('node/kv-grpc-service: admission control on loopback gRPC', function () {
  this.timeout(30_000);
  let server: Server | undefined;
  let address = '';
  let executor: HeldExecutor;
  let admission: AdmissionControl;
  let refusals: RefusalReason[];
  const clients: KvServiceClient[] = [];

  async function start(limits: AdmissionLimits, streamLimits = { requests: 10, bytes: 1 << 20 }): Promise<void> {
    executor = new HeldExecutor();
    refusals = [];
    const refused = (reason: RefusalReason, count = 1): void => {
      for (let i = 0; i < count; i++) refusals.push(reason);
    };
    admission = new AdmissionControl(limits, refused);
    server = new Server({ 'grpc.max_receive_message_length': SERVER_MAX_RECEIVE_MESSAGE_BYTES, interceptors: [clientCallInterceptor(admission, refused)] });
    server.addService(KV_SERVICE, kvGrpcService(executor, { admission, refused, streamLimits }));
    const port = await new Promise<number>((resolve, reject) => {
      server?.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error)));
    });
    address = `127.0.0.1:${port}`;
  }

  /** A client on its own connection. */
  function client(): KvServiceClient {
    const created = new KvServiceClient(address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    clients.push(created);
    return created;
  }

  function unaryGet(on: KvServiceClient, requestId: number): Promise<GetResponse> {
    return new Promise((resolve, reject) => {
      on.get({ key: Buffer.from(`u${requestId}`), epoch: 0 }, (error, response) => (error === null ? resolve(response) : reject(error)));
    });
  }

  const LOOSE: AdmissionLimits = { connectionRequests: 1000, connectionBytes: 1 << 30, nodeRequests: 1000, nodeBytes: 1 << 30, nodeCalls: 100 };

  afterEach(() => {
    for (const created of clients.splice(0)) created.close();
    server?.forceShutdown();
    server = undefined;
  });

  it('stops reading a Batch stream at its bound and reads on once answers bring it under half; nothing refused', async () => {
    await start(LOOSE);
    const connection = client();
    const call = new BatchCall(connection);
    for (let i = 0; i < 40; i++) call.stream.write(gets(i * 8, 8)); // 320 requests in flight from the client
    await waitFor('the first messages to arrive', () => executor.items.length >= 16, 5000, 10);
    // A unary call on the same connection is answered only after the server read past the
    // stream's frames that reached it: by then the stream must hold still at its bound.
    const probe = unaryGet(connection, 1);
    await waitFor('the probe to reach the executor', () => executor.gets.length === 1, 5000, 10);
    executor.gets.splice(0)[0]?.done({ found: false, value: Buffer.alloc(0), version: 0, expiresAtMs: 0, expiresInMs: 0 });
    await probe;
    const held = executor.items.length;
    // 10 is the bound; a message of 8 can overshoot it, and grpc-js decodes up to 16 messages
    // ahead of a paused stream, which the executor does not see.
    expect(held, 'requests the stream handed on while at its bound').to.be.at.most(16);
    expect(admission.usage.requests, "what it holds is what it counts").to.equal(held);
    // Answering lets it read on, until all 320 came through.
    await waitFor('every request to be answered', () => {
      executor.answerAll();
      return call.answers.length === 320;
    }, 10_000, 5);
    expect(call.codes().every((code) => code === undefined), 'flow control, not refusals').to.equal(true);
    expect(refusals).to.deep.equal([]);
    call.stream.end();
    await waitFor('the stream to end', () => call.status === 'ok', 5000, 10);
    expect(admission.usage).to.deep.equal({ requests: 0, bytes: 0, connections: 0, calls: 0 });
  });

  it('refuses with RESOURCE_EXHAUSTED past a connection\'s requests in flight, over all its streams', async () => {
    await start({ ...LOOSE, connectionRequests: 20 });
    const connection = client();
    const first = new BatchCall(connection);
    first.stream.write(gets(0, 16));
    await waitFor('16 held from the first stream', () => executor.items.length === 16, 5000, 10);
    const second = new BatchCall(connection);
    second.stream.write(gets(100, 8));
    await waitFor('the second stream answered in part', () => second.answers.length === 4, 5000, 10);
    expect(second.codes()).to.deep.equal(Array(4).fill(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED));
    const message = second.answers[0]?.result?.$case === 'get' ? second.answers[0].result.value.error?.message : '';
    expect(message).to.contain('this connection has 20 requests in flight');
    expect(executor.items.length, '16 + 4 admitted').to.equal(20);
    expect(refusals).to.deep.equal(Array(4).fill('connection_requests'));
    // Another connection is not affected.
    const other = new BatchCall(client());
    other.stream.write(gets(200, 4));
    await waitFor('the other connection\'s requests held', () => executor.items.length === 24, 5000, 10);
    executor.answerAll();
    await waitFor('answers', () => first.answers.length === 16 && other.answers.length === 4 && second.answers.length === 8, 5000, 10);
    expect(admission.usage.requests).to.equal(0);
  });

  it('refuses past the node\'s requests in flight, for Batch items and unary calls alike', async () => {
    await start({ ...LOOSE, nodeRequests: 12 });
    const calls = [new BatchCall(client()), new BatchCall(client())];
    calls[0]?.stream.write(gets(0, 8));
    await waitFor('8 held', () => executor.items.length === 8, 5000, 10);
    calls[1]?.stream.write(gets(100, 8));
    await waitFor('4 refused', () => calls[1]?.answers.length === 4, 5000, 10);
    expect(calls[1]?.codes()).to.deep.equal(Array(4).fill(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED));
    const unary = await unaryGet(client(), 1);
    expect(unary.error?.code).to.equal(ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED);
    expect(unary.error?.message).to.contain('this node has 12 requests in flight');
    expect(refusals).to.deep.equal(Array(5).fill('node_requests'));
    executor.answerAll();
    await waitFor('room again', async () => {
      const again = unaryGet(client(), 2);
      await waitFor('held', () => executor.gets.length === 1, 5000, 10);
      executor.answerAll();
      return (await again).error === undefined;
    }, 5000, 10);
  });

  it('ends a call whose message is past the client limit, without decoding it', async () => {
    await start(LOOSE);
    const tooLarge = new BatchCall(client());
    // 256 puts of 2 KiB values: ~530 KB, under the server's 4 MiB but over the Batch limit.
    const items: BatchRequestItem[] = Array.from({ length: 256 }, (_unused, i) => ({
      requestId: i, op: { $case: 'put', value: { key: Buffer.from(`k${i}`), value: Buffer.alloc(2048), epoch: 0, ttlMs: 0 } },
    }));
    tooLarge.stream.write({ items });
    await waitFor('the call to end', () => tooLarge.status !== undefined, 5000, 10);
    const status = tooLarge.status as ServiceError;
    expect(status.code).to.equal(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(status.details).to.contain(`larger than the client limit of ${MAX_BATCH_REQUEST_BYTES} bytes`);
    expect(executor.seen).to.equal(0);
    expect(refusals).to.deep.equal(['message_bytes']);
    // Past the server's own limit grpc-js refuses it from its length prefix.
    const huge = new BatchCall(client());
    huge.stream.write({ items: [{ requestId: 1, op: { $case: 'put', value: { key: Buffer.from('k'), value: Buffer.alloc(5 << 20), epoch: 0, ttlMs: 0 } } }] });
    await waitFor('the call to end', () => huge.status !== undefined, 5000, 10);
    expect((huge.status as ServiceError).code).to.equal(GrpcStatus.RESOURCE_EXHAUSTED);
    await waitFor('calls closed', () => admission.usage.calls === 0, 5000, 10);
  });

  it('answers every item of a BatchRequest of more than 256 items INVALID_ARGUMENT', async () => {
    await start(LOOSE);
    const call = new BatchCall(client());
    call.stream.write(gets(0, 300));
    await waitFor('300 answers', () => call.answers.length === 300, 5000, 10);
    expect(new Set(call.codes())).to.deep.equal(new Set([ErrorCode.ERROR_CODE_INVALID_ARGUMENT]));
    expect(executor.seen).to.equal(0);
    expect(refusals.length).to.equal(300);
  });

  it('ends a call past the open-call bound at once, and frees the slot when a call ends', async () => {
    await start({ ...LOOSE, nodeCalls: 2 });
    const open = [new BatchCall(client()), new BatchCall(client())];
    for (const call of open) call.stream.write(gets(0, 1));
    await waitFor('both open', () => executor.items.length === 2, 5000, 10);
    const third = new BatchCall(client());
    third.stream.write(gets(10, 1));
    await waitFor('the third call to end', () => third.status !== undefined, 5000, 10);
    expect((third.status as ServiceError).code).to.equal(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(executor.items.length, 'nothing of it read').to.equal(2);
    expect(refusals).to.deep.equal(['node_calls']);
    executor.answerAll();
    open[0]?.stream.end();
    await waitFor('the first call to end', () => open[0]?.status === 'ok', 5000, 10);
    await waitFor('one slot free', () => admission.usage.calls === 1, 5000, 10);
    const fourth = new BatchCall(client());
    fourth.stream.write(gets(20, 1));
    await waitFor('the fourth call served', () => executor.items.length === 1, 5000, 10);
    open[1]?.stream.cancel();
    await waitFor('the cancelled call closed', () => admission.usage.calls === 1, 5000, 10);
  });
});
