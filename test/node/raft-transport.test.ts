import { type sendUnaryData, Server, ServerCredentials, type ServerReadableStream } from '@grpc/grpc-js';
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { createSilentLogger } from '../../src/common/index.js';
import {
  type RaftMessage,
  RaftMessageType,
  RaftServiceService,
  type RaftServiceServer,
  type SendRequest,
  type SendResponse,
  type SendSnapshotRequest,
  type SendSnapshotResponse,
} from '../../src/gen/kvstore/v1/raft.js';
import { GrpcPeerLinks, raftService } from '../../src/node/grpc-peer-links.js';
import { PeerDirectory } from '../../src/node/peer-directory.js';
import { RaftTransport } from '../../src/node/raft-transport.js';
import { systemRuntime } from '../../src/node/runtime.js';
import { crc32c } from '../../src/raft/index.js';
import { waitFor } from './support/node-cluster.js';

function heartbeat(shardId: number, to: number): RaftMessage {
  return {
    shardId, type: RaftMessageType.RAFT_MESSAGE_TYPE_HEARTBEAT, to, from: 100 + shardId, term: 1, logTerm: 0, index: 0,
    entries: [], commit: 0, reject: false, rejectHint: 0, context: Buffer.alloc(0),
  };
}

describe('node/raft-transport', () => {
  let server: Server | undefined;
  let transport: RaftTransport | undefined;
  const received: SendRequest[] = [];
  const snapshots: { header: RaftMessage; data: Buffer; dataCrc32c: number | undefined }[] = [];
  const unreachable: [number, number][] = [];
  const snapshotReports: [number, number, string][] = [];
  let address = '';
  /** The receiver refuses every snapshot (its checks failed). */
  let refuseSnapshots = false;

  before(async () => {
    server = new Server();
    // Record whole SendRequests (to see the batching) and reassembled snapshots.
    const service = raftService({
      deliver: () => undefined,
      deliverSnapshot: (_from, message, data, dataCrc32c) => {
        snapshots.push({ header: message, data, dataCrc32c });
        return !refuseSnapshots;
      },
      refuseSnapshotStream: () => undefined,
    }, createSilentLogger());
    const recordingService: RaftServiceServer = {
      send: (call: ServerReadableStream<SendRequest, SendResponse>, callback: sendUnaryData<SendResponse>) => {
        call.on('data', (request: SendRequest) => received.push(request));
        call.on('end', () => callback(null, {}));
      },
      sendSnapshot: service.sendSnapshot,
    };
    server.addService(RaftServiceService, recordingService);
    const port = await new Promise<number>((resolve, reject) => {
      server?.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    address = `127.0.0.1:${port}`;
  });

  beforeEach(() => {
    const peers = new PeerDirectory();
    peers.update([{ nodeId: 'peer', address }]);
    transport = new RaftTransport({
      nodeId: 'sender', peers, logger: createSilentLogger(), links: new GrpcPeerLinks('sender', 1000), runtime: systemRuntime,
      reporter: {
        reportUnreachable: (shardId, replicaId) => unreachable.push([shardId, replicaId]),
        reportSnapshot: (shardId, replicaId, status) => snapshotReports.push([shardId, replicaId, status]),
      },
    });
    received.length = 0;
  });

  afterEach(async () => {
    await transport?.close();
  });

  after(() => {
    server?.forceShutdown();
  });

  it('sends one SendRequest per peer per turn carrying every group\'s messages', async () => {
    const t = transport as RaftTransport;
    for (let shard = 0; shard < 64; shard++) t.send('peer', heartbeat(shard, shard + 1));
    t.flush();
    for (let shard = 0; shard < 10; shard++) t.send('peer', heartbeat(shard, shard + 1));
    t.flush();
    t.flush(); // an empty turn sends nothing
    await waitFor('both batches', () => received.length === 2);
    expect(received.map((request) => request.messages.length)).to.deep.equal([64, 10]);
    expect(received[0]?.fromNodeId).to.equal('sender');
    expect(received[0]?.messages.map((message) => message.shardId)).to.deep.equal([...Array(64).keys()]);
    expect(t.stats).to.deep.include({ batches: 2, messages: 74, dropped: 0 });
  });

  it('splits a turn of 8 MiB to one peer into SendRequests that a server with gRPC\'s default 4 MiB limit takes', async () => {
    const t = transport as RaftTransport;
    // Eight groups each sending a 1 MiB append in one turn (this test's server takes at most 4 MiB).
    const append = (shardId: number): RaftMessage => ({
      ...heartbeat(shardId, shardId + 1), type: RaftMessageType.RAFT_MESSAGE_TYPE_APPEND,
      entries: Array.from({ length: 16 }, (_unused, i) => ({ term: 1, index: i + 1, type: 0, data: Buffer.alloc(64 * 1024, shardId) })),
    });
    for (let shard = 0; shard < 8; shard++) t.send('peer', append(shard));
    t.flush();
    await waitFor('every append', () => received.reduce((sum, request) => sum + request.messages.length, 0) === 8);
    expect(received.length, 'one SendRequest per append, none past the limit').to.equal(8);
    expect(received.flatMap((request) => request.messages.map((message) => message.shardId))).to.deep.equal([...Array(8).keys()]);
    expect(t.stats).to.deep.include({ batches: 8, messages: 8, dropped: 0 });
  });

  it('drops messages to a peer with no address and reports them unreachable', () => {
    const t = transport as RaftTransport;
    unreachable.length = 0;
    t.send('nowhere', heartbeat(3, 7));
    t.send('nowhere', heartbeat(4, 8));
    t.flush();
    expect(unreachable).to.deep.equal([[3, 7], [4, 8]]);
    expect(t.stats.dropped).to.equal(2);
  });

  it('streams a snapshot in chunks and reports finish', async () => {
    const t = transport as RaftTransport;
    const data = Buffer.from(Array.from({ length: 4500 }, (_, i) => i % 251));
    const header = { ...heartbeat(5, 9), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT };
    t.sendSnapshot('peer', header, data);
    await waitFor('snapshot report', () => snapshotReports.length === 1);
    expect(snapshotReports[0]).to.deep.equal([5, 9, 'finish']);
    expect(snapshots).to.have.length(1);
    expect(snapshots[0]?.data.equals(data)).to.equal(true);
    expect(snapshots[0]?.header.shardId).to.equal(5);
    expect(snapshots[0]?.dataCrc32c, 'the sender\'s CRC32C of the data travels with it').to.equal(crc32c(data));
  });

  it('holds at most 1 GiB of snapshots being received, over all streams, and gives it back when a stream ends', () => {
    const refusals: [string, string][] = [];
    const service = raftService({
      deliver: () => undefined,
      deliverSnapshot: () => true,
      refuseSnapshotStream: (from, detail) => refusals.push([from, detail]),
    }, createSilentLogger());
    const mib = Buffer.alloc(1024 * 1024);
    /** A server-side snapshot stream the test drives. */
    const open = (): { call: EventEmitter & { destroyed: boolean }; answer: { accepted?: boolean } } => {
      const call = Object.assign(new EventEmitter(), { destroyed: false, destroy() { this.destroyed = true; } });
      const answer: { accepted?: boolean } = {};
      service.sendSnapshot(call as unknown as ServerReadableStream<SendSnapshotRequest, SendSnapshotResponse>, (_error, response) => {
        if (response?.accepted !== undefined) answer.accepted = response.accepted;
      });
      return { call, answer };
    };
    const send = (call: EventEmitter, chunks: number): void => {
      for (let i = 0; i < chunks; i++) call.emit('data', { fromNodeId: 'peer', chunk: mib, last: false });
    };
    const first = open();
    send(first.call, 600);
    const second = open();
    send(second.call, 500);
    expect(first.call.destroyed).to.equal(false);
    expect(second.call.destroyed, 'the second stream went past the bound').to.equal(true);
    second.call.emit('end');
    expect(second.answer.accepted).to.equal(false);
    expect(refusals, 'past the bound over all streams is routine: not a bad peer').to.deep.equal([]);
    first.call.emit('end');
    expect(first.answer.accepted, 'no header, no last chunk').to.equal(false);
    expect(refusals).to.deep.equal([['peer', 'snapshot stream ended without its header']]);
    const third = open();
    send(third.call, 1000);
    expect(third.call.destroyed, 'the first stream gave its bytes back').to.equal(false);
    third.call.emit('cancelled');
    const fourth = open();
    send(fourth.call, 1000);
    expect(fourth.call.destroyed).to.equal(false);
    send(fourth.call, 25);
    expect(fourth.call.destroyed, 'one snapshot past 1 GiB').to.equal(true);
    expect(refusals.slice(1)).to.deep.equal([['peer', `snapshot stream past ${2 ** 30} bytes`]]);
  });

  it('refuses, once, a snapshot stream that ends without its last chunk; ignores what follows the last one', () => {
    const refusals: string[] = [];
    const delivered: Buffer[] = [];
    const service = raftService({
      deliver: () => undefined,
      deliverSnapshot: (_from, _message, data) => delivered.push(data) > 0,
      refuseSnapshotStream: (_from, detail) => refusals.push(detail),
    }, createSilentLogger());
    const header = { ...heartbeat(1, 2), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT };
    const stream = (requests: SendSnapshotRequest[]): boolean | undefined => {
      const call = Object.assign(new EventEmitter(), { destroy: () => undefined });
      let accepted: boolean | undefined;
      service.sendSnapshot(call as unknown as ServerReadableStream<SendSnapshotRequest, SendSnapshotResponse>, (_error, response) => {
        accepted = response?.accepted;
      });
      for (const request of requests) call.emit('data', request);
      call.emit('end');
      return accepted;
    };
    expect(stream([{ fromNodeId: 'peer', message: header, chunk: Buffer.from('ab'), last: false }])).to.equal(false);
    expect(refusals).to.deep.equal(['snapshot stream ended without its last chunk']);
    expect(stream([
      { fromNodeId: 'peer', message: header, chunk: Buffer.from('ab'), last: false },
      { fromNodeId: 'peer', chunk: Buffer.from('cd'), last: true },
      { fromNodeId: 'other', message: heartbeat(1, 2), chunk: Buffer.from('ef'), last: true },
    ])).to.equal(true);
    expect(delivered.map((data) => data.toString())).to.deep.equal(['abcd']);
    expect(refusals).to.have.length(1);
  });

  it('reports failure when the receiver refuses the snapshot', async () => {
    const t = transport as RaftTransport;
    refuseSnapshots = true;
    snapshotReports.length = 0;
    try {
      t.sendSnapshot('peer', { ...heartbeat(6, 2), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT }, Buffer.from('whatever'));
      await waitFor('snapshot report', () => snapshotReports.length === 1);
    } finally {
      refuseSnapshots = false;
    }
    expect(snapshotReports[0]).to.deep.equal([6, 2, 'failure']);
    expect(t.stats).to.deep.include({ snapshotsFailed: 1 });
  });
});
