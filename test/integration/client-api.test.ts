/**
 * Issue 5 against a real local cluster: update() under contention, cas, delete, limits, binary
 * values, CLOSED, TIMEOUT with a signal, exactly-once sessions, and the CLI's stdin/--json/cas.
 */
import { expect } from 'chai';
import { credentials } from '@grpc/grpc-js';
import { KVClient } from '../../src/index.js';
import { KvServiceClient, type PutRequest, type PutResponse } from '../../src/gen/kvstore/v1/kvstore.js';
import { printTailOnFailure, TestCluster } from '../support/cluster.js';
import { rejection } from '../support/rejection.js';


describe('integration: the client library (issue 5)', function () {
  this.timeout(180_000);
  let cluster: TestCluster | undefined;
  let kv: KVClient;

  before(async () => {
    cluster = await TestCluster.start({ nodes: 3, replicas: 3, shards: 8 });
    kv = cluster.client();
    await kv.init();
  });
  afterEach(function () {
    printTailOnFailure(this, cluster);
  });
  after(async () => {
    await cluster?.stopAll({ removeDir: true });
  });

  it('8 concurrent writers × 40 update()s of one counter make exactly 320', async () => {
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 40; i++) await kv.update('counter', (current) => String(Number(current ?? '0') + 1));
      }),
    );
    expect(await kv.get('counter')).to.equal('320');
  });

  it('the same with plain get + put loses updates (the test can see it)', async () => {
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 40; i++) await kv.put('lossy', String(Number((await kv.get('lossy')) ?? '0') + 1));
      }),
    );
    expect(Number(await kv.get('lossy'))).to.be.lessThan(320);
  });

  it('cas: creates with 0, conflicts with the current version, writes with the right one', async () => {
    const first = await kv.cas('cas-key', 0, 'a');
    const conflict = await rejection(kv.cas('cas-key', 0, 'b'));
    expect(conflict.code).to.equal('CONFLICT');
    expect(conflict.currentVersion).to.equal(first);
    const stale = await rejection(kv.cas('cas-key', first + 1000, 'b'));
    expect(stale.code).to.equal('CONFLICT');
    const second = await kv.cas('cas-key', first, 'c');
    expect(second).to.be.greaterThan(first);
    expect(await kv.getEntry('cas-key')).to.deep.include({ value: 'c', version: second });
  });

  it('delete says whether the key existed', async () => {
    expect(await kv.delete('never-there')).to.equal(false);
    await kv.put('there', 'x');
    expect(await kv.delete('there')).to.equal(true);
    expect(await kv.get('there')).to.equal(null);
  });

  it('enforces UTF-8 byte limits: 20-byte keys, 1024-byte values', async () => {
    await kv.put('€€€€€€', 'ok'); // 18 bytes
    expect((await rejection(kv.put('€€€€€€€', 'no'))).code).to.equal('INVALID_ARGUMENT'); // 7 chars, 21 bytes
    expect((await rejection(kv.put('', 'no'))).code).to.equal('INVALID_ARGUMENT');
    await kv.put('big', 'x'.repeat(1024));
    expect(await kv.get('big')).to.equal('x'.repeat(1024));
    const tooBig = await rejection(kv.put('big', 'x'.repeat(1025)));
    expect(tooBig.code).to.equal('INVALID_ARGUMENT');
    expect(tooBig.message).to.contain('1024');
    expect(await kv.get('big')).to.equal('x'.repeat(1024));
  });

  it('round-trips binary values byte-exact', async () => {
    const bytes = Uint8Array.from({ length: 1024 }, (_unused, i) => (i * 37) % 256);
    await kv.put('binary', bytes);
    expect(await kv.getBytes('binary')).to.deep.equal(bytes);
    await kv.put('empty', new Uint8Array(0));
    expect(await kv.getBytes('empty')).to.deep.equal(new Uint8Array(0));
  });

  it('rejects with CLOSED after finalize', async () => {
    const other = cluster!.client();
    await other.put('closing', 'x');
    await other.finalize();
    expect((await rejection(other.get('closing'))).code).to.equal('CLOSED');
  });

  it('honours a signal with TIMEOUT', async () => {
    // The caller's signal times out once the put has left (as AbortSignal.timeout does, with a
    // TimeoutError), before any answer can come back: a put can take under 1 ms on loopback.
    const timing = new AbortController();
    const put = kv.put('signal', 'x', { signal: timing.signal });
    setImmediate(() => timing.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')));
    const timedOut = await rejection(put);
    expect(timedOut.code).to.equal('TIMEOUT');
    expect(timedOut.outcomeUnknown).to.equal(true);
    const controller = new AbortController();
    controller.abort();
    expect((await rejection(kv.get('signal', { signal: controller.signal }))).code).to.equal('TIMEOUT');
  });

  it('exactly-once: a retried (clientId, seq) applies once and returns the first result', async () => {
    const status = await cluster!.status();
    const kvEntryBefore = await kv.getEntry('session-key');
    expect(kvEntryBefore).to.equal(null);
    // Find the leader of the key's shard by asking through the client once, then replay by hand.
    const request: PutRequest = { key: Buffer.from('session-key'), value: Buffer.from('once'), session: { clientId: 'test-session', seq: 1 }, epoch: 0, ttlMs: 0 };
    let response: PutResponse | undefined;
    for (const node of status.nodes) {
      const raw = new KvServiceClient(node.address, credentials.createInsecure());
      const answer = await new Promise<PutResponse>((resolve, reject) => raw.put(request, (error, reply) => (error === null ? resolve(reply) : reject(error))));
      raw.close();
      if (answer.error === undefined) {
        // the reply to the first put is "lost": send the very same request again to the same node
        const again = new KvServiceClient(node.address, credentials.createInsecure());
        const replay = await new Promise<PutResponse>((resolve, reject) => again.put(request, (error, reply) => (error === null ? resolve(reply) : reject(error))));
        again.close();
        expect(replay.error).to.equal(undefined);
        expect(replay.version).to.equal(answer.version);
        response = answer;
        break;
      }
    }
    expect(response, 'some node led the shard').to.not.equal(undefined);
    const entry = await kv.getEntry('session-key');
    expect(entry).to.deep.include({ value: 'once', version: response!.version });
  });

  it('CLI: put from stdin, get --json, cas exit codes', async () => {
    const put = await cluster!.cli(['put', 'cli-stdin', '-'], { input: 'line one\nline two' });
    expect(put.code, put.stderr).to.equal(0);
    const get = await cluster!.cli(['get', 'cli-stdin', '--json']);
    expect(get.code).to.equal(0);
    const parsed = JSON.parse(get.stdout) as { key: string; value: string; version: number };
    expect(parsed.key).to.equal('cli-stdin');
    expect(parsed.value).to.equal('line one\nline two');
    const conflict = await cluster!.cli(['cas', 'cli-stdin', String(parsed.version + 1), 'x']);
    expect(conflict.code).to.equal(4);
    const ok = await cluster!.cli(['cas', 'cli-stdin', String(parsed.version), 'x']);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(Number(ok.stdout.trim())).to.be.greaterThan(parsed.version);
    const badVersion = await cluster!.cli(['cas', 'cli-stdin', 'seven', 'x']);
    expect(badVersion.code).to.equal(2);
  });

  it('getMany/putMany across shards, and CLI get/del of several keys', async () => {
    const kv = cluster!.client();
    const keys = Array.from({ length: 24 }, (_unused, i) => `many-${i}`);
    const written = await kv.putMany(keys.map((key) => [key, `value of ${key}`] as const));
    expect(written.every((result) => result.ok)).to.equal(true);
    const read = await kv.getMany(keys);
    expect(read.map((result) => (result.ok ? result.entry?.value : undefined))).to.deep.equal(keys.map((key) => `value of ${key}`));

    const several = await cluster!.cli(['get', 'many-1', 'many-2', 'many-absent']);
    expect(several.code, several.stderr).to.equal(1);
    expect(several.stdout).to.equal('many-1\tvalue of many-1\nmany-2\tvalue of many-2\n');
    expect(several.stderr).to.equal('many-absent: not found\n');
    const json = await cluster!.cli(['get', 'many-3', 'many-absent', '--json']);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>[];
    expect(parsed[0]).to.include({ key: 'many-3', value: 'value of many-3' });
    expect(parsed[1]).to.deep.equal({ key: 'many-absent', found: false });

    const deleted = await cluster!.cli(['del', 'many-1', 'many-2', 'many-absent']);
    expect(deleted.code, deleted.stderr).to.equal(0);
    expect((await kv.getMany(['many-1', 'many-2', 'many-3'])).map((result) => (result.ok ? result.entry?.value ?? null : 'error')))
      .to.deep.equal([null, null, 'value of many-3']);
    const bad = await cluster!.cli(['get', 'many-3', 'k'.repeat(21)]);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/20 bytes/);
  });
});
