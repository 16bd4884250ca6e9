/**
 * The namespace network the partition fault runs on (src/chaos/netns.ts): a blackhole route cuts a
 * link in one direction while the gateway (where clients connect from) still gets through, removing
 * it restores the link, and `destroy()` leaves nothing behind — also after `create()` failed half
 * way. Needs root and iproute2; skipped with the reason otherwise.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { listNamespaces, NetnsError, NetnsNetwork, networkPrefix } from '../../src/chaos/index.js';
import { skipWithoutNetns } from '../support/netns-skip.js';
import { freePort } from '../support/cluster.js';

/** Whether a TCP connection from namespace `namespace` to `address:port` opens within a second. */
function canConnect(namespace: string, address: string, port: number): boolean {
  const script = `const s = require('node:net').connect(${port}, '${address}', () => process.exit(0));
    s.on('error', () => process.exit(1)); setTimeout(() => process.exit(2), 1000);`;
  return spawnSync('ip', ['netns', 'exec', namespace, process.execPath, '-e', script], { stdio: 'ignore', timeout: 5000 }).status === 0;
}

/** Namespaces, interfaces and /etc/netns entries named after this process. */
function leftovers(): string[] {
  const prefix = networkPrefix(process.pid);
  const interfaces = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(': ')[1]?.split('@')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
  return [...listNamespaces().filter((name) => name.startsWith(`${prefix}-`)), ...interfaces];
}

describe('chaos: the namespace network', function () {
  this.timeout(30_000);
  const network = new NetnsNetwork();
  let server: Server | undefined;

  before(function () {
    skipWithoutNetns(this);
  });

  afterEach(async () => {
    network.destroy();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    server = undefined;
  });

  it('cuts a link with a blackhole route and restores it', async () => {
    network.create(['a', 'b'], { rootNames: ['svc'] });
    const port = await freePort();
    const listening = createServer((socket) => socket.destroy());
    server = listening;
    await new Promise<void>((resolve) => listening.listen(port, '0.0.0.0', resolve));
    const a = network.host('a').namespace;
    const b = network.host('b').namespace;
    expect(canConnect(a, network.address('svc'), port), 'a → svc before the cut').to.equal(true);

    network.blackhole('a', network.address('svc'));
    expect(canConnect(a, network.address('svc'), port), 'a → svc while cut').to.equal(false);
    expect(canConnect(a, network.gateway, port), 'a → gateway while a → svc is cut').to.equal(true);
    expect(canConnect(b, network.address('svc'), port), 'b → svc while a → svc is cut').to.equal(true);

    expect(network.removeBlackholes()).to.equal(1);
    expect(canConnect(a, network.address('svc'), port), 'a → svc after healing').to.equal(true);
    network.destroy();
    expect(leftovers()).to.deep.equal([]);
  });

  it('removes a half-built network', () => {
    expect(() => network.create(['a', 'bad/name'])).to.throw(NetnsError, /ip netns add kv\d+-bad\/name/);
    expect(leftovers()).to.not.deep.equal([]);
    network.destroy();
    expect(leftovers()).to.deep.equal([]);
  });
});
