import { type sendUnaryData, Server, ServerCredentials, type ServerReadableStream } from '@grpc/grpc-js';
import { expect } from 'chai';
import { createSilentLogger } from '../../src/common/index.js';
import {
  type RaftMessage,
  RaftMessageType,
  RaftServiceService,
  type RaftServiceServer,
  type SendRequest,
  type SendResponse,
} from '../../src/gen/kvstore/v1/raft.js';
import { GrpcPeerLinks, raftService } from '../../src/node/grpc-peer-links.js';
import { PeerDirectory } from '../../src/node/peer-directory.js';
import { RaftTransport } from '../../src/node/raft-transport.js';
import { systemRuntime } from '../../src/node/runtime.js';
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
  const snapshots: { header: RaftMessage; data: Buffer }[] = [];
  const unreachable: [number, number][] = [];
  const snapshotReports: [number, number, string][] = [];
  let address = '';

  before(async () => {
    server = new Server();
    // Record whole SendRequests (to see the batching) and reassembled snapshots.
    const service = raftService({
      deliver: (_from, message, data) => {
        if (data !== undefined) snapshots.push({ header: message, data });
      },
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
  });
});
