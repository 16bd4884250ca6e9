/**
 * The Raft message stream on real loopback sockets (`peer-listener.ts`, `tcp-peer-links.ts`):
 * a cluster's traffic goes over it, bad frames drop only their connection, the hello is held
 * to the cluster's tokens or TLS, and a peer that does not speak it (an older node: gRPC only)
 * gets its messages over gRPC.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { createSilentLogger } from '../../src/common/index.js';
import { ErrorCode, type GetResponse, type PutResponse } from '../../src/gen/kvstore/v1/kvstore.js';
import { type RaftMessage, RaftMessageType, type SendRequest } from '../../src/gen/kvstore/v1/raft.js';
import { GrpcPeerLinks, RAFT_SERVICE, raftService } from '../../src/node/grpc-peer-links.js';
import type { PeerLinks, PeerStream } from '../../src/node/peer-links.js';
import { type ListenerDeadlines, PeerListener } from '../../src/node/peer-listener.js';
import { ALIVE_INTERVAL_MS, CLIENT_SILENCE_LIMIT_MS, controlFrame, FrameReader, frameHeader, parseControlFrame, PEER_STREAM_MAGIC } from '../../src/node/peer-wire.js';
import type { TransportReceiver } from '../../src/node/raft-transport.js';
import { encodeSendRequest } from '../../src/node/send-request-codec.js';
import { SERVER_MAX_RECEIVE_MESSAGE_BYTES } from '../../src/node/server-limits.js';
import { GRPC_FALLBACK_MS, TcpPeerLinks } from '../../src/node/tcp-peer-links.js';
import { createCertificates } from '../../src/security/certificates.js';
import { ChannelSecurity, loadServerTls, ServerSecurity, TokenFile } from '../../src/security/index.js';
import { waitFor } from '../support/wait-for.js';
import { NodeCluster } from './support/node-cluster.js';
import { removeTempSpools, tempSpool } from './support/temp-spool.js';

/** Pushes `chunk` and takes every whole frame it completes. */
function take(reader: FrameReader, chunk: Buffer): Buffer[] {
  reader.push(chunk);
  const frames: Buffer[] = [];
  for (let frame = reader.next(); frame !== undefined; frame = reader.next()) frames.push(frame);
  return frames;
}

const TOKEN = 'peer-stream-test-token-0123456789';

function heartbeat(to: number): RaftMessage {
  return {
    shardId: 0, type: RaftMessageType.RAFT_MESSAGE_TYPE_HEARTBEAT, to, from: 1, term: 3, logTerm: 0, index: 0,
    entries: [], commit: 0, reject: false, rejectHint: 0, context: Buffer.alloc(0),
  };
}

/** A receiver that records what the listener hands it. */
function recordingReceiver(): TransportReceiver & { delivered: [string, RaftMessage][]; heard: string[] } {
  const delivered: [string, RaftMessage][] = [];
  const heard: string[] = [];
  return {
    delivered,
    heard,
    deliver: (from, message) => delivered.push([from, message]),
    heardFrom: (from) => heard.push(from),
    deliverSnapshot: () => false,
    refuseSnapshotStream: () => undefined,
  };
}

/** A log for `ServerSecurity` that keeps nothing. */
const quietLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Links that must not be used: a test whose peer speaks the message stream never falls back. */
function unusedLinks(): PeerLinks & { used: number } {
  const links = {
    used: 0,
    openStream: (): PeerStream => {
      links.used += 1;
      throw new Error('the gRPC links were used');
    },
    sendSnapshot: () => Promise.resolve(false),
    reset: () => undefined,
    close: () => undefined,
  };
  return links;
}

/** A hand-driven client of the message stream: what it read, and whether the server closed it. */
interface RawClient {
  socket: Socket;
  frames: Buffer[];
  closed: boolean;
  /** The server's first frame, parsed. */
  answer(): Promise<Record<string, unknown>>;
}

describe('node: the Raft message stream on real sockets', function () {
  this.timeout(30_000);
  /** Run after each test, last first, whatever happened. */
  let cleanups: (() => Promise<void> | void)[] = [];

  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // the rest still runs
      }
    }
    cleanups = [];
  });

  after(removeTempSpools);

  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'kvstore-peer-stream-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };

  const startCluster = async (): Promise<NodeCluster> => {
    const cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 2 });
    cleanups.push(() => cluster.close());
    await cluster.waitForLeaders();
    return cluster;
  };

  /** Connects to 127.0.0.1:`port` and writes `bytes`. */
  const rawClient = async (port: number, ...bytes: Buffer[]): Promise<RawClient> => {
    const socket = connect({ host: '127.0.0.1', port });
    cleanups.push(() => { socket.destroy(); });
    const reader = new FrameReader(1024 * 1024);
    const client: RawClient = {
      socket,
      frames: [],
      closed: false,
      answer: async () => {
        const first = await waitFor('the server\'s answer', () => client.frames[0], 5_000, 10);
        return parseControlFrame(first) ?? {};
      },
    };
    socket.on('data', (chunk: Buffer) => client.frames.push(...take(reader, chunk)));
    socket.on('error', () => undefined); // a reset is one way the server drops it
    socket.on('close', () => { client.closed = true; });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    for (const chunk of bytes) socket.write(chunk);
    return client;
  };

  const hello = (node: string, token?: string): Buffer => Buffer.concat([PEER_STREAM_MAGIC, controlFrame(token === undefined ? { node } : { node, token })]);
  const sendRequestFrame = (request: SendRequest): Buffer => {
    const body = encodeSendRequest(request);
    return Buffer.concat([frameHeader(body.length), body]);
  };

  const putSucceeds = async (cluster: NodeCluster, key: string): Promise<void> => {
    const put = await cluster.call<object, PutResponse>('put', { key: Buffer.from(key), value: Buffer.from(`${key}-value`), epoch: 0 });
    expect(put.error?.code ?? ErrorCode.ERROR_CODE_UNSPECIFIED).to.equal(ErrorCode.ERROR_CODE_UNSPECIFIED);
  };

  /** A standalone listener in front of a plain gRPC server (no service), with `security`. */
  const standaloneListener = (security: ServerSecurity, deadlines?: Partial<ListenerDeadlines>): Promise<{ listener: PeerListener; receiver: ReturnType<typeof recordingReceiver> }> => standaloneListenerOn('127.0.0.1', security, deadlines);
  const standaloneListenerOn = async (host: string, security: ServerSecurity, deadlines: Partial<ListenerDeadlines> = {}): Promise<{ listener: PeerListener; receiver: ReturnType<typeof recordingReceiver> }> => {
    const grpc = new Server();
    cleanups.push(() => grpc.forceShutdown());
    const receiver = recordingReceiver();
    const listener = await PeerListener.listen({
      host, port: 0, grpc, security, receiver, logger: createSilentLogger(), maxFrameBytes: SERVER_MAX_RECEIVE_MESSAGE_BYTES, deadlines,
    });
    cleanups.push(() => listener.close());
    cleanups.push(() => security.close());
    return { listener, receiver };
  };

  /** A node of an older version: gRPC's `RaftService` alone, no message stream on its port. */
  const olderNode = async (): Promise<{ receiver: ReturnType<typeof recordingReceiver>; address: string }> => {
    const receiver = recordingReceiver();
    const server = new Server();
    cleanups.push(() => server.forceShutdown());
    server.addService(RAFT_SERVICE, raftService(receiver, await tempSpool(), createSilentLogger()));
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error)));
    });
    return { receiver, address: `127.0.0.1:${port}` };
  };

  it('carries a cluster\'s Raft traffic: leaders are elected, a put and a get are served, every node took message streams', async () => {
    const cluster = await startCluster();
    await putSucceeds(cluster, 'stream-key');
    const got = await cluster.call<object, GetResponse>('get', { key: Buffer.from('stream-key'), epoch: 0 });
    expect(got.found).to.equal(true);
    expect(got.value.toString()).to.equal('stream-key-value');
    for (const node of cluster.nodes) {
      expect(node?.listener.stats.messageStreams, `node ${node?.host.nodeId}`).to.be.greaterThan(0);
      expect(node?.listener.stats.refused).to.equal(0);
      const metrics = await node?.metrics.registry.metrics();
      expect(metrics).to.match(/^kvstore_node_peer_streams_opened_total\{wire="tcp"\} [1-9]/m);
      expect(metrics).to.match(/^kvstore_node_peer_streams_opened_total\{wire="grpc"\} 0$/m);
      expect(metrics).to.match(/^kvstore_node_peer_streams_refused_total 0$/m);
    }
  });

  it('drops a stream whose frame is no SendRequest, or whose length is over the receive limit, and goes on serving', async () => {
    const cluster = await startCluster();
    const target = cluster.nodes[1];
    if (target === undefined) throw new Error('no node 1');
    const { port } = target.listener;

    // Field 2 (messages) claiming 2^32 - 1 bytes: does not decode.
    const garbage = Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    const bad = await rawClient(port, hello('n9'), frameHeader(garbage.length), garbage);
    await waitFor('the server to drop the undecodable stream', () => bad.closed, 5_000, 10);
    expect(await bad.answer(), 'the hello itself was taken').to.deep.equal({ ok: true });

    // Only the length prefix: refused before the body is sent.
    const big = await rawClient(port, hello('n9'));
    expect(await big.answer()).to.deep.equal({ ok: true });
    big.socket.write(frameHeader(SERVER_MAX_RECEIVE_MESSAGE_BYTES + 1));
    await waitFor('the server to drop the oversized frame', () => big.closed, 5_000, 10);

    // Not a hello at all.
    const noHello = await rawClient(port, PEER_STREAM_MAGIC, controlFrame({ ok: true }));
    await waitFor('the server to drop a stream without a hello', () => noHello.closed, 5_000, 10);
    expect(noHello.frames, 'no answer to a stream without a hello').to.deep.equal([]);

    expect(target.host.isClosed).to.equal(false);
    await putSucceeds(cluster, 'after-bad-streams');
  });

  it('with tokens and no TLS: refuses a hello without a token or with a wrong one, admits the right one', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokens'), `# peers\n${TOKEN}\n`);
    const security = new ServerSecurity({ tokens: TokenFile.load(join(dir, 'tokens')), log: quietLog, watchTokenFile: false });
    const { listener, receiver } = await standaloneListener(security);
    const request = sendRequestFrame({ fromNodeId: 'n7', messages: [heartbeat(4)] });

    // Messages sent right behind the hello, before the answer: none is read from a refused stream.
    const none = await rawClient(listener.port, hello('n7'), request);
    expect(await none.answer()).to.deep.include({ ok: false }).and.to.have.property('error').that.matches(/no token/);
    await waitFor('the refused stream closed', () => none.closed, 5_000, 10);

    const wrong = await rawClient(listener.port, hello('n7', 'not-the-token-0123456789'), request);
    expect(await wrong.answer()).to.deep.include({ ok: false }).and.to.have.property('error').that.matches(/token is not valid/);
    await waitFor('the refused stream closed', () => wrong.closed, 5_000, 10);

    expect(listener.stats.refused).to.equal(2);
    expect(security.refused).to.equal(2);
    expect(receiver.delivered).to.deep.equal([]);
    expect(receiver.heard).to.deep.equal([]);

    const right = await rawClient(listener.port, hello('n7', TOKEN));
    expect(await right.answer()).to.deep.equal({ ok: true });
    right.socket.write(Buffer.concat([frameHeader(0), request])); // a keepalive, then a SendRequest
    await waitFor('the message delivered', () => receiver.delivered.length === 1, 5_000, 10);
    expect(receiver.delivered[0]?.[0]).to.equal('n7');
    expect(receiver.delivered[0]?.[1]).to.deep.include({ shardId: 0, to: 4, term: 3, type: RaftMessageType.RAFT_MESSAGE_TYPE_HEARTBEAT });
    expect(receiver.heard).to.deep.equal(['n7']);
    expect(right.closed).to.equal(false);
    expect(listener.stats).to.deep.equal({ messageStreams: 3, grpcConnections: 0, refused: 2 });
  });

  it('with TLS: takes a peer presenting a server certificate, refuses one presenting a client certificate', async () => {
    const dir = tempDir();
    await createCertificates({ dir });
    const file = (name: string): Buffer => readFileSync(join(dir, name));
    const tls = loadServerTls({ ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') }, () => undefined);
    const { listener, receiver } = await standaloneListener(new ServerSecurity({ tls, log: quietLog }));
    const address = `127.0.0.1:${listener.port}`;

    const open = (cert: string, key: string): { links: TcpPeerLinks; fallback: ReturnType<typeof unusedLinks>; stream: PeerStream; ends: (string | undefined)[] } => {
      const fallback = unusedLinks();
      const links = new TcpPeerLinks({
        localNodeId: 'n5',
        security: new ChannelSecurity({ ca: file('ca.crt'), cert: file(cert), key: file(key) }, undefined),
        grpc: fallback,
        logger: createSilentLogger(),
      });
      cleanups.push(() => links.close());
      const ends: (string | undefined)[] = [];
      const stream = links.openStream('server', address, { onDrain: () => undefined, onEnd: (failure) => ends.push(failure) });
      return { links, fallback, stream, ends };
    };

    const peer = open('server.crt', 'server.key');
    peer.stream.write({ fromNodeId: 'n5', messages: [heartbeat(2)] }); // before the connection is ready: it waits
    await waitFor('the first message delivered', () => receiver.delivered.length === 1, 5_000, 10);
    peer.stream.write({ fromNodeId: 'n5', messages: [heartbeat(3), heartbeat(4)] });
    await waitFor('the next messages delivered', () => receiver.delivered.length === 3, 5_000, 10);
    expect(receiver.delivered.map(([from, message]) => `${from}:${message.to}`)).to.deep.equal(['n5:2', 'n5:3', 'n5:4']);
    expect(peer.ends, 'the stream is still open').to.deep.equal([]);
    expect(peer.links.stats).to.deep.equal({ tcpStreams: 1, grpcStreams: 0 });

    const client = open('client.crt', 'client.key');
    client.stream.write({ fromNodeId: 'n5', messages: [heartbeat(9)] });
    await waitFor('the refused stream ended', () => client.ends.length === 1, 5_000, 10);
    expect(client.ends[0]).to.match(/refused by the peer: .*not a server certificate.*serverAuth/);
    expect(listener.stats.refused).to.equal(1);
    expect(receiver.delivered).to.have.length(3);

    // A refusal is an answer: the next stream tries this wire again, never gRPC.
    client.links.openStream('server', address, { onDrain: () => undefined, onEnd: () => undefined });
    expect(client.links.stats).to.deep.equal({ tcpStreams: 2, grpcStreams: 0 });
    expect(peer.fallback.used + client.fallback.used).to.equal(0);
  });

  it('drops a connection that stalls before it is known: silent from the start, in its TLS handshake, before its hello', async () => {
    const dir = tempDir();
    await createCertificates({ dir });
    const file = (name: string): Buffer => readFileSync(join(dir, name));
    // Each listener shortens only the deadline under test; the steps that must succeed keep 10 s.
    const STALL_MS = 1_000;
    /** Waits for the server to close `isClosed`'s connection, and says how long after `since` it did. */
    const closedAfter = async (what: string, since: number, isClosed: () => boolean): Promise<void> => {
      await waitFor(`${what}: the server closed the connection`, isClosed, 10_000, 10);
      expect(performance.now() - since, `${what}: closed before its deadline`).to.be.at.least(STALL_MS * 0.8);
    };

    const silent = await standaloneListener(new ServerSecurity({ log: quietLog }), { firstBytesMs: STALL_MS });
    let since = performance.now();
    const mute = await rawClient(silent.listener.port);
    await closedAfter('no bytes at all', since, () => mute.closed);

    const helloLate = await standaloneListener(new ServerSecurity({ log: quietLog }), { helloMs: STALL_MS });
    since = performance.now();
    const magicOnly = await rawClient(helloLate.listener.port, PEER_STREAM_MAGIC);
    await closedAfter('the magic and no hello', since, () => magicOnly.closed);

    const tls = (): ServerSecurity => new ServerSecurity({ tls: loadServerTls({ ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') }, () => undefined), log: quietLog });
    const handshakeLate = await standaloneListener(tls(), { handshakeMs: STALL_MS });
    since = performance.now();
    const noHandshake = await rawClient(handshakeLate.listener.port, PEER_STREAM_MAGIC);
    await closedAfter('the magic and no TLS handshake', since, () => noHandshake.closed);

    // Over TLS: one peer completes its handshake and says nothing (dropped at the hello's deadline);
    // another says hello in time and is served.
    const tlsHelloLate = await standaloneListener(tls(), { helloMs: STALL_MS });
    const address = `127.0.0.1:${tlsHelloLate.listener.port}`;
    const secureClient = async (): Promise<{ secure: TLSSocket; frames: Buffer[]; closed: () => boolean; handshaken: number }> => {
      const socket = connect({ host: '127.0.0.1', port: tlsHelloLate.listener.port });
      cleanups.push(() => { socket.destroy(); });
      socket.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      await new Promise<void>((resolve) => socket.write(PEER_STREAM_MAGIC, () => resolve()));
      const options = new ChannelSecurity({ ca: file('ca.crt'), cert: file('server.crt'), key: file('server.key') }, undefined).tlsConnectOptions(address);
      const secure = tlsConnect({ ...options, socket });
      cleanups.push(() => { secure.destroy(); });
      secure.on('error', () => undefined);
      let isClosed = false;
      secure.on('close', () => { isClosed = true; });
      const frames: Buffer[] = [];
      const reader = new FrameReader(1024 * 1024);
      secure.on('data', (chunk: Buffer) => frames.push(...take(reader, chunk)));
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', resolve);
        secure.once('error', reject);
      });
      return { secure, frames, closed: () => isClosed, handshaken: performance.now() };
    };
    const quiet = await secureClient();
    await closedAfter('a TLS handshake and no hello', quiet.handshaken, quiet.closed);
    const talker = await secureClient();
    talker.secure.write(controlFrame({ node: 'n8' }));
    const answer = await waitFor('the answer to a hello over TLS', () => talker.frames[0], 5_000, 10);
    expect(parseControlFrame(answer)).to.deep.equal({ ok: true });
    talker.secure.write(sendRequestFrame({ fromNodeId: 'n8', messages: [heartbeat(2)] }));
    await waitFor('the message delivered over TLS', () => tlsHelloLate.receiver.delivered.length === 1, 5_000, 10);

    // None of the stalled ones counted as refused, and nothing of theirs reached a receiver.
    const listeners = [silent, helloLate, handshakeLate, tlsHelloLate];
    expect(listeners.reduce((sum, { listener }) => sum + listener.stats.refused, 0)).to.equal(0);
    expect(listeners.map(({ receiver }) => receiver.delivered.length)).to.deep.equal([0, 0, 0, 1]);
  });

  it('takes a batch far larger than the hello that arrives with it, written before the connection was ready', async () => {
    const { listener, receiver } = await standaloneListener(new ServerSecurity({ log: quietLog }));
    const fallback = unusedLinks();
    const links = new TcpPeerLinks({ localNodeId: 'n3', security: ChannelSecurity.NONE, grpc: fallback, logger: createSilentLogger() });
    cleanups.push(() => links.close());
    const ends: (string | undefined)[] = [];
    const stream = links.openStream('peer', `127.0.0.1:${listener.port}`, { onDrain: () => undefined, onEnd: (failure) => ends.push(failure) });
    const append: RaftMessage = {
      ...heartbeat(2), type: RaftMessageType.RAFT_MESSAGE_TYPE_APPEND, index: 4, logTerm: 3,
      entries: [{ term: 3, index: 5, type: 0, data: Buffer.alloc(100_000, 7) }],
    };
    // Queued until the connection is ready, then written right behind the hello: one read holds both.
    // Ended before it was ready: what was written still goes out.
    stream.write({ fromNodeId: 'n3', messages: [append] });
    stream.end();
    await waitFor('the large append delivered', () => receiver.delivered.length === 1, 5_000, 10);
    expect(receiver.delivered[0]?.[1].entries[0]?.data.length).to.equal(100_000);
    await waitFor('the stream to end', () => ends.length === 1, 5_000, 10);
    expect(ends, 'a clean end').to.deep.equal([undefined]);
    expect(links.stats).to.deep.equal({ tcpStreams: 1, grpcStreams: 0 });
    expect(fallback.used).to.equal(0);
  });

  it('a peer that takes the connection and goes silent (stopped, not old) is given up without falling back on gRPC', async () => {
    const silent = createServer((socket) => socket.resume()); // reads everything, answers nothing
    cleanups.push(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const sockets: Socket[] = [];
    silent.on('connection', (socket) => sockets.push(socket));
    cleanups.push(() => { for (const socket of sockets) socket.destroy(); });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const address = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    let clock = 0;
    const fallback = unusedLinks();
    const links = new TcpPeerLinks({ localNodeId: 'n4', security: ChannelSecurity.NONE, grpc: fallback, logger: createSilentLogger(), now: () => clock });
    cleanups.push(() => links.close());
    const ends: (string | undefined)[] = [];
    links.openStream('stopped', address, { onDrain: () => undefined, onEnd: (failure) => ends.push(failure) });
    await waitFor('the connection accepted', () => sockets.length === 1, 5_000, 10);
    clock = CLIENT_SILENCE_LIMIT_MS + 1; // the silence check runs every ALIVE_INTERVAL_MS
    await waitFor('the silent stream given up', () => ends.length === 1, ALIVE_INTERVAL_MS * 3, 20);
    expect(ends[0]).to.match(/no word from the peer/);
    links.openStream('stopped', address, { onDrain: () => undefined, onEnd: () => undefined });
    expect(links.stats).to.deep.equal({ tcpStreams: 2, grpcStreams: 0 });
    expect(fallback.used).to.equal(0);
  });

  it('an empty host listens on every interface', async () => {
    const { listener } = await standaloneListenerOn('', new ServerSecurity({ log: quietLog }));
    expect(listener.port).to.be.greaterThan(0);
    const client = await rawClient(listener.port, hello('n8'));
    expect(await client.answer()).to.deep.equal({ ok: true });
  });

  it('a bad peer address fails the stream after openStream returns, without throwing', async () => {
    const links = new TcpPeerLinks({ localNodeId: 'n4', security: ChannelSecurity.NONE, grpc: unusedLinks(), logger: createSilentLogger() });
    cleanups.push(() => links.close());
    for (const address of ['n1', 'n1:70000']) {
      const ends: (string | undefined)[] = [];
      links.openStream('bad', address, { onDrain: () => undefined, onEnd: (failure) => ends.push(failure) });
      expect(ends, 'not from inside openStream').to.deep.equal([]);
      await waitFor('the stream to fail', () => ends.length === 1, 5_000, 10);
      expect(ends[0]).to.match(/cannot connect to/);
    }
  });

  it('ends the gRPC stream of a peer that did not speak the wire when its window closes, so the next stream tries the wire again', async () => {
    const { receiver, address } = await olderNode();
    let clock = 0;
    const links = new TcpPeerLinks({ localNodeId: 'n2', security: ChannelSecurity.NONE, grpc: new GrpcPeerLinks('n2'), logger: createSilentLogger(), now: () => clock });
    cleanups.push(() => links.close());
    const firstEnds: (string | undefined)[] = [];
    links.openStream('old', address, { onDrain: () => undefined, onEnd: (failure) => firstEnds.push(failure) });
    await waitFor('the unanswered stream to end', () => firstEnds.length === 1, 5_000, 10);

    clock = GRPC_FALLBACK_MS - 100; // 100 ms of the window left
    const grpcEnds: (string | undefined)[] = [];
    const onGrpc = links.openStream('old', address, { onDrain: () => undefined, onEnd: (failure) => grpcEnds.push(failure) });
    onGrpc.write({ fromNodeId: 'n2', messages: [heartbeat(5)] });
    await waitFor('the batch delivered over gRPC', () => receiver.delivered.length === 1, 5_000, 10);
    await waitFor('the gRPC stream ended with its window', () => grpcEnds.length === 1, 5_000, 10);
    expect(grpcEnds[0], 'a clean end').to.equal(undefined);
    // The transport let go of it at that end; a write that still comes is dropped, not an error.
    expect(onGrpc.write({ fromNodeId: 'n2', messages: [heartbeat(6)] })).to.equal(true);
    onGrpc.end();

    clock = GRPC_FALLBACK_MS + 1;
    links.openStream('old', address, { onDrain: () => undefined, onEnd: () => undefined });
    expect(links.stats).to.deep.equal({ tcpStreams: 2, grpcStreams: 1 });
  });

  it('falls back on gRPC for a peer that takes the connection and does not answer (an older node)', async () => {
    const { receiver, address } = await olderNode();
    const links = new TcpPeerLinks({ localNodeId: 'n2', security: ChannelSecurity.NONE, grpc: new GrpcPeerLinks('n2'), logger: createSilentLogger() });
    cleanups.push(() => links.close());

    const firstEnds: (string | undefined)[] = [];
    const first = links.openStream('old', address, { onDrain: () => undefined, onEnd: (failure) => firstEnds.push(failure) });
    first.write({ fromNodeId: 'n2', messages: [heartbeat(1)] }); // lost with the stream: Raft sends again
    await waitFor('the unanswered stream to end', () => firstEnds.length === 1, 5_000, 10);
    expect(firstEnds[0], 'a clean end: the peer has not failed, it speaks another wire').to.equal(undefined);
    expect(links.stats).to.deep.equal({ tcpStreams: 1, grpcStreams: 0 });

    const secondEnds: (string | undefined)[] = [];
    const second = links.openStream('old', address, { onDrain: () => undefined, onEnd: (failure) => secondEnds.push(failure) });
    expect(links.stats).to.deep.equal({ tcpStreams: 1, grpcStreams: 1 });
    second.write({ fromNodeId: 'n2', messages: [heartbeat(6), heartbeat(7)] });
    await waitFor('the batch delivered over gRPC', () => receiver.delivered.length === 2, 5_000, 10);
    expect(receiver.delivered.map(([from, message]) => `${from}:${message.to}`)).to.deep.equal(['n2:6', 'n2:7']);
    expect(receiver.heard).to.deep.equal(['n2']);
    second.end();
    await waitFor('the gRPC stream to end', () => secondEnds.length === 1, 5_000, 10);
    expect(secondEnds[0], 'a clean end').to.equal(undefined);

    // Its address changed (reset): this wire is tried again at once.
    links.reset('old');
    const third = links.openStream('old', address, { onDrain: () => undefined, onEnd: () => undefined });
    third.end();
    expect(links.stats).to.deep.equal({ tcpStreams: 2, grpcStreams: 1 });
  });
});
