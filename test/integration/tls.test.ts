/**
 * Issue 17 with real processes on loopback: a cluster with mutual TLS and a token file serves
 * put/get to a client certificate and to a token; no token, a wrong token, an untrusted certificate
 * and a plaintext client are refused with UNAUTHENTICATED (exit 5) and the refusal is logged with
 * the peer; a node with another CA's certificate cannot join, nor can a client certificate send
 * Raft traffic, and the cluster stays healthy; an edited token file (and SIGHUP) takes effect without
 * a restart; `kvstore cluster --tls` makes its certificates and serves; a plaintext server on a
 * non-loopback address warns unless --insecure.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { KVClient, KVError } from '../../src/client/index.js';
import { RaftServiceClient } from '../../src/gen/kvstore/v1/raft.js';
import { createCertificates } from '../../src/security/certificates.js';
import { ChannelSecurity } from '../../src/security/index.js';
import { freePort, MAIN_SCRIPT, printTailOnFailure, runCli, TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';

const TOKEN = 'first-token-0123456789';

/** GET over HTTPS trusting `ca`. */
function httpsGet(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(url, { ca }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
}
const ROTATED = 'rotated-token-0123456789';

/** A server process started by this test, stopped by its PID; its output collected. */
class Started {
  output = '';
  readonly child: ChildProcess;
  constructor(args: string[]) {
    this.child = spawn(process.execPath, [MAIN_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

describe('integration: TLS and authentication (real processes)', function () {
  this.timeout(120_000);
  let cluster: TestCluster | undefined;
  let dir: string;
  let other: string;
  let tokenFile: string;
  const started: Started[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kvstore-tls-it-'));
    other = join(dir, 'other-ca');
    await createCertificates({ dir: other });
    tokenFile = join(dir, 'tokens');
    writeFileSync(tokenFile, `# cluster tokens\n${TOKEN}\n`);
    cluster = await TestCluster.start({ nodes: 3, replicas: 3, shards: 8, tls: true, authTokenFile: tokenFile });
  });
  afterEach(async function () {
    printTailOnFailure(this, cluster);
    await Promise.all(started.splice(0).map((process) => process.stop()));
  });
  after(async () => {
    await cluster?.stopAll({ removeDir: true });
    rmSync(dir, { recursive: true, force: true });
  });

  const certs = (): string => join(cluster!.dir, 'certs');
  const caArgs = (): string[] => ['--tls-ca', join(certs(), 'ca.crt')];

  it('serves put/get to a client certificate and to a token, from the library and the CLI', async () => {
    const kv = cluster!.client();
    await kv.put('tls-a', 'one');
    expect(await kv.get('tls-a')).to.equal('one');
    const put = await cluster!.cli(['put', 'tls-b', 'two']);
    expect(put.code, put.stderr).to.equal(0);
    const byToken = await cluster!.cli(['get', 'tls-b', ...caArgs(), '--token', TOKEN], { bare: true });
    expect(byToken.code, byToken.stderr).to.equal(0);
    expect(byToken.stdout).to.equal('two\n');
    const tokenClient = cluster!.client({ tls: { ca: readFileSync(join(certs(), 'ca.crt')) }, token: TOKEN });
    expect(await tokenClient.get('tls-a')).to.equal('one');
    // The other client-side commands take the same flags.
    const status = await cluster!.cli(['status', '--json']);
    expect(status.code, status.stderr).to.equal(0);
    expect((JSON.parse(status.stdout) as { shardCount: number }).shardCount).to.equal(8);
    expect((await cluster!.cli(['status', '--wait', '--timeout', '10'])).code).to.equal(0);
    const driver = await cluster!.cli(['driver', '--shoppers', '2', '--carts', '4', '--ops', '40'], { timeoutMs: 60_000 });
    expect(driver.code, driver.stderr).to.equal(0);
    expect(driver.stdout).to.include('lost updates: 0');
    const unauthenticatedWait = await cluster!.cli(['status', '--wait', '--timeout', '30', ...caArgs()], { bare: true });
    expect(unauthenticatedWait.code, 'status --wait stops at once when refused').to.equal(5);
  });

  it('refuses no token, a wrong token, an untrusted certificate and a plaintext client with UNAUTHENTICATED (exit 5), and logs who', async () => {
    const cases: { args: string[]; says: RegExp }[] = [
      { args: caArgs(), says: /no client certificate signed by the cluster CA, and no token/ },
      { args: [...caArgs(), '--token', 'wrong-token-0123456789'], says: /the token is not valid/ },
      { args: [...caArgs(), '--cert', join(other, 'client.crt'), '--key', join(other, 'client.key')], says: /no client certificate signed by the cluster CA/ },
      { args: [], says: /speaks TLS and this client does not/ },
      { args: ['--tls-ca', join(other, 'ca.crt'), '--token', TOKEN], says: /not signed by the CA given/ },
    ];
    for (const { args, says } of cases) {
      const result = await cluster!.cli(['get', 'tls-a', ...args], { bare: true });
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).to.equal(5);
      expect(result.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(result.stderr).to.match(says);
    }
    const stranger = new KVClient({ manager: cluster!.managerAddress, tls: { ca: readFileSync(join(certs(), 'ca.crt')) } });
    try {
      await stranger.get('tls-a');
      expect.fail('a client without credentials was served');
    } catch (error) {
      expect(error).to.be.instanceOf(KVError);
      expect((error as KVError).code).to.equal('UNAUTHENTICATED');
      expect((error as KVError).retryable).to.equal(false);
    } finally {
      await stranger.finalize();
    }
    const log = readFileSync(cluster!.logFile, 'utf8');
    expect(log).to.match(/"message":"refused an unauthenticated call".*"peer":"127\.0\.0\.1:\d+".*"reason":"the token is not valid"/);
  });

  it('keeps out a node of another CA and Raft traffic from a client certificate; the cluster stays healthy', async () => {
    const port = await freePort();
    const rogue = new Started([
      'node', '--id', 'rogue', '--port', String(port), '--metrics-port', String(await freePort()), '--manager', cluster!.managerAddress,
      '--data-dir', join(dir, 'rogue'), '--tls-ca', join(other, 'ca.crt'), '--tls-cert', join(other, 'server.crt'), '--tls-key', join(other, 'server.key'),
    ]);
    started.push(rogue);
    await waitFor('the rogue node to give up on the manager\'s certificate', () => /cannot talk to the manager: TLS or credentials refused/.test(rogue.output), 20_000);

    // A client certificate is trusted for client calls, not for the cluster's own: Raft Send is refused.
    const node = cluster!.nodeAddress('n1');
    const asClient = new ChannelSecurity({
      ca: readFileSync(join(certs(), 'ca.crt')), cert: readFileSync(join(certs(), 'client.crt')), key: readFileSync(join(certs(), 'client.key')),
    }, undefined).forTarget(node);
    const raft = new RaftServiceClient(node, asClient.credentials, asClient.options);
    const code = await new Promise<number>((resolve) => {
      const stream = raft.send((error) => resolve(error?.code ?? GrpcStatus.OK));
      stream.write({ fromNodeId: 'n9', messages: [] });
      stream.end();
    });
    raft.close();
    expect(code).to.equal(GrpcStatus.UNAUTHENTICATED);
    await waitFor('the node to log the refused Raft call', () => /"method":"\/kvstore\.v1\.RaftService\/Send".*"reason":"a cluster method/.test(readFileSync(cluster!.logFile, 'utf8')), 10_000);

    const status = await cluster!.status();
    expect(status.nodes.map((entry) => entry.id).sort()).to.deep.equal(['n1', 'n2', 'n3']);
    expect(status.shards.every((shard) => shard.leader !== null)).to.equal(true);
    await cluster!.client().put('tls-healthy', 'yes');
  });

  it('takes a rotated token file without a restart (edit, and SIGHUP)', async () => {
    writeFileSync(tokenFile, `${ROTATED}\n`);
    await waitFor('the rotated token to be accepted', async () => (await cluster!.cli(['get', 'tls-a', ...caArgs(), '--token', ROTATED], { bare: true })).code === 0, 20_000, 250);
    const old = await cluster!.cli(['get', 'tls-a', ...caArgs(), '--token', TOKEN], { bare: true });
    expect(old.code, old.stderr).to.equal(5);
    // SIGHUP re-reads at once and does not stop the process.
    const managerPid = cluster!.managerPid();
    if (managerPid === undefined) throw new Error('no manager pid');
    process.kill(managerPid, 'SIGHUP');
    const reloadedBySignal = (): boolean => readFileSync(cluster!.logFile, 'utf8').split('\n').some((line) => {
      if (!line.startsWith('{')) return false;
      const entry = JSON.parse(line) as { message?: string; tokens?: number };
      return entry.message === 'auth tokens reloaded' && entry.tokens === 1;
    });
    await waitFor('the manager to log the reload', reloadedBySignal, 10_000);
    expect(cluster!.managerPid()).to.equal(managerPid);
    expect((await cluster!.cli(['get', 'tls-a', ...caArgs(), '--token', ROTATED], { bare: true })).code).to.equal(0);
  });

  it('`kvstore cluster --tls` makes DATA_DIR/certs and serves clients with the client certificate', async () => {
    const port = await freePort();
    const data = join(dir, 'cluster-tls');
    const local = new Started(['cluster', '--tls', '--metrics-tls', '--nodes', '3', '--replicas', '3', '--shards', '4', '--port', String(port), '--data-dir', data]);
    started.push(local);
    await waitFor('the ready line', () => local.output.includes(`ready manager=127.0.0.1:${port}`), 60_000);
    const flags = ['--manager', `127.0.0.1:${port}`, '--tls-ca', join(data, 'certs', 'ca.crt'), '--cert', join(data, 'certs', 'client.crt'), '--key', join(data, 'certs', 'client.key')];
    expect((await runCli(['put', 'k', 'v', ...flags])).code).to.equal(0);
    expect((await runCli(['get', 'k', ...flags])).stdout).to.equal('v\n');
    expect((await runCli(['get', 'k', '--manager', `127.0.0.1:${port}`])).code).to.equal(5);
    // --metrics-tls: the metrics endpoint answers HTTPS with the cluster's certificate, not HTTP.
    const metrics = await httpsGet(`https://127.0.0.1:${port + 1001}/metrics`, readFileSync(join(data, 'certs', 'ca.crt')));
    expect(metrics.status).to.equal(200);
    expect(metrics.body).to.match(/^kvstore_node_/m);
    let plainFailed = false;
    try {
      await fetch(`http://127.0.0.1:${port + 1001}/metrics`);
    } catch {
      plainFailed = true;
    }
    expect(plainFailed, 'plain HTTP to an HTTPS metrics port').to.equal(true);
  });

  it('warns once when a plaintext server listens beyond loopback, unless --insecure', async () => {
    for (const insecure of [false, true]) {
      const manager = new Started([
        'manager', '--host', '0.0.0.0', '--port', String(await freePort()), '--metrics-port', '0', '--replicas', '1', '--shards', '1',
        '--data-dir', join(dir, `open-manager-${String(insecure)}`), ...(insecure ? ['--insecure'] : []),
      ]);
      started.push(manager);
      await waitFor('the manager to listen', () => manager.output.includes(insecure ? 'manager listening' : 'serving plaintext'), 20_000);
      await manager.stop(); // everything it logged at start-up is out by the time it has exited
      const warnings = manager.output.split('\n').filter((line) => line.includes('serving plaintext'));
      expect(warnings, manager.output).to.have.length(insecure ? 0 : 1);
    }
  });
});
