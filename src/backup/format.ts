/**
 * The backup layout (`kvstore backup`): one file per shard and a manifest.
 *
 * `shard-NNNNN.kvbackup`, little-endian:
 * ```
 * "KVBK"  magic, u8 format (1), u32 shard, u64 appliedIndex, u64 term, u32 count
 * count × { u8 keyLen, key, u32 valueLen, value, u64 version, u64 expiresInMs (0: no TTL) }
 * ```
 * `manifest.json`: the shard count and replication factor of the source, and per shard its
 * file, applied index and term at the cut, key and byte counts and the file's SHA-256; its own
 * `checksum` is the SHA-256 of the manifest's JSON without it. {@link verifyBackup} checks all of
 * it before a restore writes anything.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const BACKUP_FORMAT = 1;
const MAGIC = Buffer.from('KVBK', 'latin1');
const HEADER_BYTES = 4 + 1 + 4 + 8 + 8 + 4;

/** One key in a backup. */
export interface BackupEntry {
  key: Buffer;
  value: Buffer;
  version: number;
  /** TTL ms left at the cut; 0 = the key does not expire. */
  expiresInMs: number;
}

/** One shard's file as the manifest describes it. */
export interface ManifestShard {
  shard: number;
  file: string;
  appliedIndex: number;
  term: number;
  keys: number;
  /** Bytes of keys and values. */
  bytes: number;
  sha256: string;
}

export interface BackupManifest {
  format: number;
  createdAt: string;
  manager: string;
  shardCount: number;
  replicationFactor: number;
  totalKeys: number;
  totalBytes: number;
  shards: ManifestShard[];
  /** SHA-256 of this manifest's JSON without this field. */
  checksum: string;
}

/** A backup that cannot be restored: `file` names what is wrong. */
export class BackupError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'BackupError';
  }
}

export function shardFileName(shard: number): string {
  return `shard-${String(shard).padStart(5, '0')}.kvbackup`;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The manifest's checksum: over its JSON with `checksum` left out. */
export function manifestChecksum(manifest: Omit<BackupManifest, 'checksum'>): string {
  const { format, createdAt, manager, shardCount, replicationFactor, totalKeys, totalBytes, shards } = manifest;
  return sha256(Buffer.from(JSON.stringify({ format, createdAt, manager, shardCount, replicationFactor, totalKeys, totalBytes, shards })));
}

/** A shard's file contents. */
export function encodeShardFile(shard: number, appliedIndex: number, term: number, entries: readonly BackupEntry[]): Buffer {
  let size = HEADER_BYTES;
  for (const entry of entries) size += 1 + entry.key.length + 4 + entry.value.length + 16;
  const out = Buffer.alloc(size);
  MAGIC.copy(out, 0);
  let at = 4;
  out.writeUInt8(BACKUP_FORMAT, at); at += 1;
  out.writeUInt32LE(shard, at); at += 4;
  out.writeBigUInt64LE(BigInt(appliedIndex), at); at += 8;
  out.writeBigUInt64LE(BigInt(term), at); at += 8;
  out.writeUInt32LE(entries.length, at); at += 4;
  for (const entry of entries) {
    out.writeUInt8(entry.key.length, at); at += 1;
    entry.key.copy(out, at); at += entry.key.length;
    out.writeUInt32LE(entry.value.length, at); at += 4;
    entry.value.copy(out, at); at += entry.value.length;
    out.writeBigUInt64LE(BigInt(entry.version), at); at += 8;
    out.writeBigUInt64LE(BigInt(entry.expiresInMs), at); at += 8;
  }
  return out;
}

/** Parses a shard file; throws BackupError naming `file` when it is not one (truncated, trailing bytes, bad magic). */
export function decodeShardFile(file: string, data: Buffer): { shard: number; appliedIndex: number; term: number; entries: BackupEntry[] } {
  const fail = (why: string): never => { throw new BackupError(file, why); };
  if (data.length < HEADER_BYTES || !data.subarray(0, 4).equals(MAGIC)) fail('not a kvstore backup file (bad header)');
  if (data.readUInt8(4) !== BACKUP_FORMAT) fail(`unknown backup file format ${data.readUInt8(4)}`);
  const shard = data.readUInt32LE(5);
  const appliedIndex = Number(data.readBigUInt64LE(9));
  const term = Number(data.readBigUInt64LE(17));
  const count = data.readUInt32LE(25);
  const entries: BackupEntry[] = [];
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + 1 > data.length) fail(`truncated in entry ${i + 1} of ${count}`);
    const keyLength = data.readUInt8(at); at += 1;
    if (at + keyLength + 4 > data.length) fail(`truncated in entry ${i + 1} of ${count}`);
    const key = data.subarray(at, at + keyLength); at += keyLength;
    const valueLength = data.readUInt32LE(at); at += 4;
    if (at + valueLength + 16 > data.length) fail(`truncated in entry ${i + 1} of ${count}`);
    const value = data.subarray(at, at + valueLength); at += valueLength;
    const version = Number(data.readBigUInt64LE(at)); at += 8;
    const expiresInMs = Number(data.readBigUInt64LE(at)); at += 8;
    entries.push({ key, value, version, expiresInMs });
  }
  if (at !== data.length) fail(`${data.length - at} bytes after its last entry`);
  return { shard, appliedIndex, term, entries };
}

/** Reads and checks a manifest: JSON, fields, its own checksum. */
export async function readManifest(dir: string): Promise<BackupManifest> {
  const file = join(dir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new BackupError(file, `cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(text) as BackupManifest;
  } catch {
    throw new BackupError(file, 'is not JSON (truncated or damaged)');
  }
  if (manifest.format !== BACKUP_FORMAT || !Array.isArray(manifest.shards) || typeof manifest.checksum !== 'string') {
    throw new BackupError(file, `is not a kvstore backup manifest of format ${BACKUP_FORMAT}`);
  }
  if (manifestChecksum(manifest) !== manifest.checksum) throw new BackupError(file, 'checksum does not match its contents (damaged or edited)');
  return manifest;
}

/** What {@link verifyBackup} found: every shard's entries, checked. */
export interface VerifiedBackup {
  manifest: BackupManifest;
  shards: { shard: ManifestShard; entries: BackupEntry[] }[];
}

/**
 * Checks a whole backup: the manifest and its checksum, every file's SHA-256, that it parses
 * to the end, and that its shard, cut, key and byte counts are what the manifest says. Throws
 * BackupError naming the first file that is wrong; reads every file, writes nothing.
 */
export async function verifyBackup(dir: string, onShard?: (done: number, total: number) => void): Promise<VerifiedBackup> {
  const manifest = await readManifest(dir);
  const shards: VerifiedBackup['shards'] = [];
  let totalKeys = 0;
  for (const [i, shard] of manifest.shards.entries()) {
    const file = join(dir, shard.file);
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      throw new BackupError(file, `is missing or unreadable: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    if (sha256(data) !== shard.sha256) throw new BackupError(file, 'SHA-256 does not match the manifest (damaged or truncated)');
    const parsed = decodeShardFile(file, data);
    if (parsed.shard !== shard.shard || parsed.appliedIndex !== shard.appliedIndex || parsed.term !== shard.term) {
      throw new BackupError(file, 'its shard or cut differs from the manifest');
    }
    const bytes = parsed.entries.reduce((sum, entry) => sum + entry.key.length + entry.value.length, 0);
    if (parsed.entries.length !== shard.keys || bytes !== shard.bytes) {
      throw new BackupError(file, `holds ${parsed.entries.length} keys and ${bytes} bytes, the manifest says ${shard.keys} and ${shard.bytes}`);
    }
    totalKeys += parsed.entries.length;
    shards.push({ shard, entries: parsed.entries });
    onShard?.(i + 1, manifest.shards.length);
  }
  if (totalKeys !== manifest.totalKeys) throw new BackupError(join(dir, 'manifest.json'), `totalKeys ${manifest.totalKeys}, the files hold ${totalKeys}`);
  if (manifest.shards.length !== manifest.shardCount) {
    throw new BackupError(join(dir, 'manifest.json'), `lists ${manifest.shards.length} shard files for ${manifest.shardCount} shards`);
  }
  return { manifest, shards };
}
