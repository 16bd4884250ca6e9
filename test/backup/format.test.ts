/** Issue 19: the backup file format and its checks, without a cluster. */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BACKUP_FORMAT, BackupError, decodeShardFile, encodeShardFile, manifestChecksum, sha256, shardFileName, verifyBackup, type BackupEntry,
} from '../../src/backup/format.js';

const entry = fc.record({
  key: fc.uint8Array({ minLength: 1, maxLength: 20 }).map((a) => Buffer.from(a)),
  value: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  version: fc.nat(),
  expiresInMs: fc.nat(),
});

function writeBackup(dir: string, entries: BackupEntry[]): void {
  const data = encodeShardFile(0, 7, 2, entries);
  writeFileSync(join(dir, shardFileName(0)), data);
  const bytes = entries.reduce((sum, e) => sum + e.key.length + e.value.length, 0);
  const body = {
    format: BACKUP_FORMAT, createdAt: 'now', manager: 'm', shardCount: 1, replicationFactor: 3, totalKeys: entries.length, totalBytes: bytes,
    shards: [{ shard: 0, file: shardFileName(0), appliedIndex: 7, term: 2, keys: entries.length, bytes, sha256: sha256(data) }],
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...body, checksum: manifestChecksum(body) }));
}

describe('backup/format', () => {
  it('round-trips every shard file, and refuses every truncation of one naming the file', () => {
    fc.assert(fc.property(fc.array(entry, { maxLength: 8 }), (entries) => {
      const data = encodeShardFile(3, 10, 4, entries);
      expect(decodeShardFile('f', data)).to.deep.equal({ shard: 3, appliedIndex: 10, term: 4, entries });
      for (let cut = 0; cut < data.length; cut += Math.max(1, Math.floor(data.length / 10))) {
        expect(() => decodeShardFile('shard-x', data.subarray(0, cut))).to.throw(BackupError, /^shard-x: /);
      }
      expect(() => decodeShardFile('shard-x', Buffer.concat([data, Buffer.from([0])]))).to.throw(BackupError, /bytes after its last entry/);
    }), { seed: 1901, numRuns: 100 });
  });

  it('verifies a backup, and names the file whose checksum, counts or manifest are wrong', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvstore-format-'));
    try {
      const entries = [{ key: Buffer.from('a'), value: Buffer.from('1'), version: 3, expiresInMs: 0 }];
      writeBackup(dir, entries);
      expect((await verifyBackup(dir)).manifest.totalKeys).to.equal(1);
      writeFileSync(join(dir, shardFileName(0)), encodeShardFile(0, 7, 2, [...entries, ...entries]));
      await verifyBackup(dir).then(() => expect.fail('verified'), (error: Error) => expect(error.message).to.match(/shard-00000\.kvbackup: SHA-256 does not match/));
      writeBackup(dir, entries);
      const manifest = join(dir, 'manifest.json');
      writeFileSync(manifest, JSON.stringify({ ...JSON.parse(JSON.stringify({ format: 1, shards: [], checksum: 'x' })) }));
      await verifyBackup(dir).then(() => expect.fail('verified'), (error: Error) => expect(error.message).to.match(/manifest\.json: checksum does not match/));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
