import { type sendUnaryData, Server, ServerCredentials, type ServerReadableStream, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { EventEmitter } from 'node:events';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
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
import { ChannelSecurity } from '../../src/security/index.js';
import { GrpcPeerLinks, raftService } from '../../src/node/grpc-peer-links.js';
import { PeerDirectory } from '../../src/node/peer-directory.js';
import type { PeerLinks } from '../../src/node/peer-links.js';
import { RaftTransport } from '../../src/node/raft-transport.js';
import { systemRuntime } from '../../src/node/runtime.js';
import { crc32c } from '../../src/raft/index.js';
import { waitFor } from '../support/wait-for.js';
import { removeTempSpools, tempSpool } from './support/temp-spool.js';

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
      heardFrom: () => undefined,
      deliverSnapshot: (_from, message, data, dataCrc32c) => {
        snapshots.push({ header: message, data, dataCrc32c });
        return !refuseSnapshots;
      },
      refuseSnapshotStream: () => undefined,
    }, await tempSpool(), createSilentLogger());
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
      nodeId: 'sender', peers, logger: createSilentLogger(), links: new GrpcPeerLinks('sender', ChannelSecurity.NONE, 1000), runtime: systemRuntime,
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

  after(async () => {
    server?.forceShutdown();
    await removeTempSpools();
  });

  it('sends one SendRequest per peer per turn carrying every group\'s messages', async () => {
    const t = transport as RaftTransport;
    for (let shard = 0; shard < 64; shard++) t.send('peer', heartbeat(shard, shard + 1));
    t.flush();
    for (let shard = 0; shard < 10; shard++) t.send('peer', heartbeat(shard, shard + 1));
    t.flush();
    t.flush(); // an empty turn sends nothing
    await waitFor('both batches', () => received.length === 2, 10_000, 20);
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
    await waitFor('every append', () => received.reduce((sum, request) => sum + request.messages.length, 0) === 8, 10_000, 20);
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
    await waitFor('snapshot report', () => snapshotReports.length === 1, 10_000, 20);
    expect(snapshotReports[0]).to.deep.equal([5, 9, 'finish']);
    expect(snapshots).to.have.length(1);
    expect(snapshots[0]?.data.equals(data)).to.equal(true);
    expect(snapshots[0]?.header.shardId).to.equal(5);
    expect(snapshots[0]?.dataCrc32c, 'the sender\'s CRC32C of the data travels with it').to.equal(crc32c(data));
  });

  /** A server-side snapshot stream the test drives, as gRPC would: chunks in order, the answer once. */
  function driveStream(service: RaftServiceServer): {
    call: EventEmitter;
    send(request: SendSnapshotRequest): void;
    answer: Promise<{ accepted?: boolean; code?: number; details?: string }>;
  } {
    const call = Object.assign(new EventEmitter(), { pause: () => undefined, resume: () => undefined });
    const answer = new Promise<{ accepted?: boolean; code?: number; details?: string }>((resolve) => {
      service.sendSnapshot(call as unknown as ServerReadableStream<SendSnapshotRequest, SendSnapshotResponse>, (error, response) => {
        if (error !== null) resolve({ ...(error.code === undefined ? {} : { code: error.code }), ...(error.details === undefined ? {} : { details: error.details }) });
        else resolve(response?.accepted === undefined ? {} : { accepted: response.accepted });
      });
    });
    return { call, send: (request) => call.emit('data', request), answer };
  }

  it('spools each snapshot being received to a file of its own, at most so many at once and so many bytes each', async () => {
    const refusals: [string, string][] = [];
    const delivered: string[] = [];
    const spool = await tempSpool({ maxReceiving: 2, maxSnapshotBytes: 10 * 1024 });
    const service = raftService({
      deliver: () => undefined,
      heardFrom: () => undefined,
      deliverSnapshot: (_from, _message, data) => delivered.push(data.toString()) > 0,
      refuseSnapshotStream: (from, detail) => refusals.push([from, detail]),
    }, spool, createSilentLogger());
    const header = { ...heartbeat(1, 2), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT };
    const spooled = async (): Promise<number[]> => {
      const names = await readdir(spool.dir);
      return Promise.all(names.map(async (name) => (await stat(join(spool.dir, name))).size));
    };

    const first = driveStream(service);
    first.send({ fromNodeId: 'peer', message: header, chunk: Buffer.alloc(4096, 'a'), last: false });
    const second = driveStream(service);
    second.send({ fromNodeId: 'peer', message: header, chunk: Buffer.alloc(1000, 'b'), last: false });
    await waitFor('both streams on disk', async () => (await spooled()).sort((a, b) => a - b).join() === '1000,4096', 10_000, 20);
    expect(spool.active).to.equal(2);

    const third = driveStream(service);
    third.send({ fromNodeId: 'peer', message: header, chunk: Buffer.from('c'), last: true });
    expect(await third.answer, 'a third stream at once waits for the sender to retry').to.deep.equal({
      code: status.RESOURCE_EXHAUSTED, details: 'too many snapshots being received (limit 2)',
    });
    expect(refusals, 'too many at once is routine: not a bad peer').to.deep.equal([]);

    first.send({ fromNodeId: 'peer', chunk: Buffer.alloc(10, 'a'), last: true });
    first.call.emit('end');
    expect(await first.answer).to.deep.equal({ accepted: true });
    expect(delivered).to.deep.equal(['a'.repeat(4106)]);
    expect(await spooled(), 'read back and deleted').to.deep.equal([1000]);

    // The first gave its slot back: another is taken, and refused once it passes the per-stream limit.
    const fourth = driveStream(service);
    for (let i = 0; i < 3; i++) fourth.send({ fromNodeId: 'peer', message: header, chunk: Buffer.alloc(4096, 'd'), last: false });
    expect(await fourth.answer).to.deep.equal({ code: status.INVALID_ARGUMENT, details: `snapshot stream past ${10 * 1024} bytes` });
    expect(refusals).to.deep.equal([['peer', `snapshot stream past ${10 * 1024} bytes`]]);

    second.call.emit('cancelled');
    await waitFor('every slot given back and every file deleted', async () => spool.active === 0 && (await spooled()).length === 0, 10_000, 20);
  });

  it('refuses, once, a snapshot stream that ends without its last chunk; ignores what follows the last one', async () => {
    const refusals: string[] = [];
    const delivered: Buffer[] = [];
    const spool = await tempSpool();
    const service = raftService({
      deliver: () => undefined,
      heardFrom: () => undefined,
      deliverSnapshot: (_from, _message, data) => delivered.push(data) > 0,
      refuseSnapshotStream: (_from, detail) => refusals.push(detail),
    }, spool, createSilentLogger());
    const header = { ...heartbeat(1, 2), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT };
    const stream = async (requests: SendSnapshotRequest[]): Promise<boolean | undefined> => {
      const driven = driveStream(service);
      for (const request of requests) driven.send(request);
      driven.call.emit('end');
      return (await driven.answer).accepted;
    };
    expect(await stream([{ fromNodeId: 'peer', message: header, chunk: Buffer.from('ab'), last: false }])).to.equal(false);
    expect(refusals).to.deep.equal(['snapshot stream ended without its last chunk']);
    expect(await stream([
      { fromNodeId: 'peer', message: header, chunk: Buffer.from('ab'), last: false },
      { fromNodeId: 'peer', chunk: Buffer.from('cd'), last: true },
      { fromNodeId: 'other', message: heartbeat(1, 2), chunk: Buffer.from('ef'), last: true },
    ])).to.equal(true);
    expect(delivered.map((data) => data.toString())).to.deep.equal(['abcd']);
    expect(refusals).to.have.length(1);
    expect(spool.active).to.equal(0);
    expect(await readdir(spool.dir)).to.deep.equal([]);
  });

  it('sends at most so many snapshots at once; the rest wait in order, a newer one for the same replica in the older one\'s place, one no longer wanted dropped', async () => {
    /** Links whose snapshot sends the test finishes by hand. */
    const started: { shardId: number; to: number; data: string; finish: (accepted: boolean) => void }[] = [];
    const links: PeerLinks = {
      openStream: () => ({ write: () => true, end: () => undefined }),
      sendSnapshot: (_nodeId, _address, snapshot) => new Promise<boolean>((resolve) => {
        started.push({ shardId: snapshot.header.shardId, to: snapshot.header.to, data: Buffer.from(snapshot.data).toString(), finish: resolve });
      }),
      reset: () => undefined,
      close: () => undefined,
    };
    const peers = new PeerDirectory();
    peers.update([{ nodeId: 'peer', address: 'nowhere:1' }]);
    const reports: string[] = [];
    const limited = new RaftTransport({
      nodeId: 'sender', peers, logger: createSilentLogger(), links, runtime: systemRuntime, maxConcurrentSnapshotSends: 2,
      reporter: {
        reportUnreachable: () => undefined,
        reportSnapshot: (shardId, replicaId, outcome) => reports.push(`${shardId}/${replicaId} ${outcome}`),
        snapshotWanted: (shardId) => shardId !== 4, // shard 4's follower caught up while its snapshot waited
      },
    });
    const snapshot = (shardId: number, data: string): void => {
      limited.sendSnapshot('peer', { ...heartbeat(shardId, 1), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT }, Buffer.from(data));
    };
    try {
      snapshot(1, 'one');
      snapshot(2, 'two');
      snapshot(3, 'three (old)');
      snapshot(4, 'four');
      snapshot(3, 'three (new)');
      expect(started.map((send) => send.shardId)).to.deep.equal([1, 2]);
      expect([limited.snapshotsSending, limited.snapshotsWaiting]).to.deep.equal([2, 2]);

      started[1]?.finish(true);
      await waitFor('the next one started', () => started.length === 3, 10_000, 20);
      expect(started[2]).to.deep.include({ shardId: 3, data: 'three (new)' });
      started[0]?.finish(false);
      await waitFor('the failure reported', () => reports.length === 2, 10_000, 20);
      expect(reports).to.deep.equal(['2/1 finish', '1/1 failure']);
      expect(started, 'shard 4\'s snapshot is no longer wanted: not sent').to.have.length(3);
      expect([limited.snapshotsSending, limited.snapshotsWaiting]).to.deep.equal([1, 0]);
      started[2]?.finish(true);
      await waitFor('every report', () => reports.length === 3, 10_000, 20);
      expect([limited.snapshotsSending, limited.snapshotsWaiting]).to.deep.equal([0, 0]);
      expect(limited.stats).to.deep.include({ snapshotsSent: 2, snapshotsFailed: 1, snapshotsDropped: 1 });
    } finally {
      for (const send of started) send.finish(false);
      await limited.close();
    }
  });

  it('ends a snapshot send at once when the receiver refuses the stream part way, however much is left to write', async () => {
    // A receiver with no free slot answers RESOURCE_EXHAUSTED at the first chunk, while the sender
    // still has far more than gRPC buffers left to write: no 'drain' ever comes.
    const busy = new Server();
    busy.addService(RaftServiceService, raftService({
      deliver: () => undefined, heardFrom: () => undefined, deliverSnapshot: () => true, refuseSnapshotStream: () => undefined,
    }, await tempSpool({ maxReceiving: 0 }), createSilentLogger()));
    const port = await new Promise<number>((resolve, reject) => {
      busy.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    const links = new GrpcPeerLinks('sender', ChannelSecurity.NONE, 1024);
    try {
      const header = { ...heartbeat(7, 2), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT };
      const data = Buffer.alloc(4 * 1024 * 1024, 7); // 4,096 chunks
      const accepted = await links.sendSnapshot('busy', `127.0.0.1:${port}`, { header, data, dataCrc32c: crc32c(data) }, () => false);
      expect(accepted).to.equal(false);
    } finally {
      links.close();
      busy.forceShutdown();
    }
  });

  it('gives up on a receiver that never answers once its answer timeout passes', async () => {
    const silent = new Server();
    silent.addService(RaftServiceService, {
      send: () => undefined,
      sendSnapshot: (call: ServerReadableStream<SendSnapshotRequest, SendSnapshotResponse>) => {
        call.on('data', () => undefined); // reads everything, answers nothing (a receiver whose disk stalled)
      },
    });
    const port = await new Promise<number>((resolve, reject) => {
      silent.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    const links = new GrpcPeerLinks('sender', ChannelSecurity.NONE, 1024, 1_000);
    try {
      const header = { ...heartbeat(8, 2), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT };
      const data = Buffer.alloc(8 * 1024, 8);
      const started = Date.now();
      expect(await links.sendSnapshot('silent', `127.0.0.1:${port}`, { header, data, dataCrc32c: crc32c(data) }, () => false)).to.equal(false);
      expect(Date.now() - started, 'about the 1 s timeout, not forever').to.be.below(10_000);
    } finally {
      links.close();
      silent.forceShutdown();
    }
  });

  it('reports failure when the receiver refuses the snapshot', async () => {
    const t = transport as RaftTransport;
    refuseSnapshots = true;
    snapshotReports.length = 0;
    try {
      t.sendSnapshot('peer', { ...heartbeat(6, 2), type: RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT }, Buffer.from('whatever'));
      await waitFor('snapshot report', () => snapshotReports.length === 1, 10_000, 20);
    } finally {
      refuseSnapshots = false;
    }
    expect(snapshotReports[0]).to.deep.equal([6, 2, 'failure']);
    expect(t.stats).to.deep.include({ snapshotsFailed: 1 });
  });
});
