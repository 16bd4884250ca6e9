/**
 * The node connection's one expiry timer: armed while requests are out, gone with the last one
 * however it left (answer, broken stream, abort), so no timer keeps a process alive.
 */
import { expect } from 'chai';
import { createServer, type Socket } from 'node:net';
import { CallDeadline } from '../../src/client/deadline.js';
import { NodeConnection, NodeTransportError } from '../../src/client/node-connection.js';

/** A port nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

describe('client/node connection', () => {
  it('drops its expiry timer when the last request fails on a broken stream', async () => {
    const connection = new NodeConnection(`127.0.0.1:${await closedPort()}`);
    const before = timers();
    const deadline = new CallDeadline(60_000);
    const sent = connection.send({ $case: 'get', value: { key: Buffer.from('k'), epoch: 0 } }, deadline, 30_000);
    expect(timers(), 'armed while the request is out').to.be.greaterThan(before);
    const error = await sent.then(() => undefined, (rejected: unknown) => rejected);
    expect(error).to.be.instanceOf(NodeTransportError);
    expect(connection.inFlightCount).to.equal(0);
    expect(timers(), 'no timer left behind').to.equal(before);
    deadline.dispose();
    connection.close();
  });

  it('drops it when the caller aborts the last request', async () => {
    const connection = new NodeConnection(`127.0.0.1:${await closedPort()}`);
    const before = timers();
    const controller = new AbortController();
    const deadline = new CallDeadline(60_000, controller.signal);
    const sent = connection.send({ $case: 'get', value: { key: Buffer.from('k'), epoch: 0 } }, deadline, 30_000);
    controller.abort();
    const error = await sent.then(() => undefined, (rejected: unknown) => rejected);
    expect((error as Error).message).to.equal('aborted');
    expect(timers(), 'no timer left behind').to.equal(before);
    deadline.dispose();
    connection.close();
  });

  it('fails a request at the call\'s deadline when it comes before the attempt timeout', async () => {
    // A server that accepts the connection and never answers.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => { sockets.add(socket); });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    const connection = new NodeConnection(`127.0.0.1:${address.port}`);
    const deadline = new CallDeadline(100);
    const startedMs = performance.now();
    const error = await connection.send({ $case: 'get', value: { key: Buffer.from('k'), epoch: 0 } }, deadline, 30_000)
      .then(() => undefined, (rejected: unknown) => rejected);
    const tookMs = performance.now() - startedMs;
    expect(error).to.be.instanceOf(NodeTransportError);
    expect(tookMs, (error as Error).message).to.be.within(90, 5_000);
    expect(deadline.expired).to.equal(true);
    connection.close();
    deadline.dispose();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('a call\'s deadline does not move with the wall clock', async () => {
    const realNow = Date.now;
    try {
      const forward = new CallDeadline(5_000);
      const backward = new CallDeadline(50);
      Date.now = () => realNow() + 3_600_000;
      expect(forward.expired, 'a forward step ends no call').to.equal(false);
      Date.now = () => realNow() - 3_600_000;
      const startedMs = performance.now();
      while (performance.now() - startedMs < 80) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(backward.expired, 'a backward step extends no call').to.equal(true);
      expect(backward.remainingMs()).to.equal(0);
      forward.dispose();
      backward.dispose();
    } finally {
      Date.now = realNow;
    }
  });
});
