/**
 * Issue 19, backup and restore against real processes: back up a cluster while a writer keeps
 * writing, verify it, refuse a damaged copy before writing anything (naming the file), stop and
 * wipe the cluster, restore into a cluster of another size, replication factor and shard count —
 * every key acknowledged before the backup started is there with its value, byte for byte — and
 * refuse to restore into a cluster that holds keys.
 */
import { expect } from 'chai';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KVClient } from '../../src/index.js';
import { printTailOnFailure, runCli, TestCluster } from '../support/cluster.js';

describe('integration: backup and restore (issue 19)', function () {
  this.timeout(300_000);
  let source: TestCluster | undefined;
  let target: TestCluster | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-backup-'));
  const backupDir = join(dir, 'backup');
  /** Every key whose put was acknowledged before the backup started, with its value. */
  const acknowledged = new Map<string, string>();

  afterEach(function () {
    printTailOnFailure(this, target ?? source);
  });
  after(async () => {
    await source?.stopAll({ removeDir: true });
    await target?.stopAll({ removeDir: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('backs up a cluster under load: per-shard cuts, a manifest with checksums, verify passes', async () => {
    source = await TestCluster.start({ nodes: 3, replicas: 3, shards: 8 });
    const kv = source.client();
    const binary = Buffer.from([0, 255, 128, 10, 13]);
    await kv.put('binary', binary);
    acknowledged.set('binary', binary.toString('latin1'));
    await kv.put('{t}with-ttl', 'lives', { ttlMs: 3_600_000 });
    acknowledged.set('{t}with-ttl', 'lives');
    for (let i = 0; i < 300; i++) {
      await kv.put(`pre-${i}`, `value-${i}`);
      acknowledged.set(`pre-${i}`, `value-${i}`);
    }
    // A writer that keeps going through the backup.
    let writing = true;
    let during = 0;
    const writer = (async (client: KVClient) => {
      while (writing) {
        await client.put(`during-${during}`, 'x');
        during += 1;
      }
    })(kv);
    const backup = await source.cli(['backup', '--out', backupDir], { timeoutMs: 120_000 });
    writing = false;
    await writer;
    await kv.finalize();
    expect(backup.code, backup.stderr).to.equal(0);
    expect(backup.stdout).to.match(/^backup: 8 shards, \d+ keys, \d+ bytes in /);
    expect(during, 'the writer kept writing').to.be.greaterThan(0);
    const manifest = JSON.parse(readFileSync(join(backupDir, 'manifest.json'), 'utf8')) as { shardCount: number; totalKeys: number; shards: { keys: number; appliedIndex: number; sha256: string }[] };
    expect(manifest.shardCount).to.equal(8);
    expect(manifest.shards).to.have.length(8);
    expect(manifest.totalKeys).to.be.at.least(acknowledged.size);
    expect(manifest.shards.every((shard) => shard.appliedIndex > 0 && /^[0-9a-f]{64}$/.test(shard.sha256))).to.equal(true);
    const verify = await runCli(['backup', 'verify', backupDir]);
    expect(verify.code, verify.stderr).to.equal(0);
    expect(verify.stdout).to.contain(`backup ok: 8 shards, ${manifest.totalKeys} keys`);
    // --out that already holds a backup is refused.
    const again = await source.cli(['backup', '--out', backupDir]);
    expect(again.code).to.equal(2);
    expect(again.stderr).to.contain('already holds a backup');
    await source.stopAll({ removeDir: true });
    source = undefined;
  });

  it('refuses a damaged or truncated backup before writing anything, naming the file', async () => {
    target = await TestCluster.start({ nodes: 2, replicas: 2, shards: 5 });
    const damaged = join(dir, 'damaged');
    cpSync(backupDir, damaged, { recursive: true });
    const file = readdirSync(damaged).find((name) => name.endsWith('.kvbackup')) ?? '';
    const bytes = readFileSync(join(damaged, file));
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 3) ^ 0xff, bytes.length - 3);
    writeFileSync(join(damaged, file), bytes);
    const verify = await runCli(['backup', 'verify', damaged]);
    expect(verify.code).to.equal(2);
    expect(verify.stderr).to.contain(file).and.to.contain('SHA-256 does not match');
    const restore = await target.cli(['restore', '--from', damaged]);
    expect(restore.code).to.equal(2);
    expect(restore.stderr).to.contain(file);
    const truncated = join(dir, 'truncated');
    cpSync(backupDir, truncated, { recursive: true });
    truncateSync(join(truncated, 'manifest.json'), 40);
    const refused = await target.cli(['restore', '--from', truncated]);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.contain('manifest.json');
    const kv = target.client();
    expect(await kv.get('pre-0'), 'nothing was written').to.equal(null);
    await kv.finalize();
  });

  it('restores into a cluster of another size, K and shard count: every acknowledged key, byte for byte; a second restore is refused', async () => {
    const restore = await target!.cli(['restore', '--from', backupDir], { timeoutMs: 120_000 });
    expect(restore.code, restore.stderr).to.equal(0);
    const manifest = JSON.parse(readFileSync(join(backupDir, 'manifest.json'), 'utf8')) as { totalKeys: number };
    expect(restore.stdout.trim()).to.equal(`restored ${manifest.totalKeys} keys (manifest: ${manifest.totalKeys})`);
    const kv = target!.client();
    const keys = [...acknowledged.keys()];
    const read = await kv.getMany(keys);
    for (const [i, result] of read.entries()) {
      const key = keys[i] ?? '';
      expect(result.ok, key).to.equal(true);
      if (result.ok) expect(Buffer.from(result.entry?.bytes ?? []).toString('latin1'), key).to.equal(acknowledged.get(key));
    }
    const ttl = await kv.getEntry('{t}with-ttl');
    expect(ttl?.expiresInMs, 'the TTL left at the cut').to.be.within(3_000_000, 3_600_000);
    await kv.finalize();
    await target!.waitForLeaders(10_000);
    // The nodes' key counts reach the manager with their heartbeats.
    let second = await target!.cli(['restore', '--from', backupDir]);
    for (let i = 0; i < 20 && second.code === 0; i++) second = await target!.cli(['restore', '--from', backupDir]);
    expect(second.code).to.equal(4);
    expect(second.stderr).to.contain('--force');
  });
});
