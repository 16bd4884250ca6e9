/**
 * `kvstore restore`: the whole backup is verified first (`verifyBackup`: every checksum, every
 * file parsed), then the target cluster must be empty (unless forced), then every key is written
 * through the client — so the target may have any node count, replication factor or shard count.
 * Values are written byte for byte; a key that had a TTL gets what was left of it at the cut.
 */
import type { KVClient } from '../client/index.js';
import type { ManagerConnection } from '../client/manager-connection.js';
import { verifyBackup, type BackupEntry, type BackupManifest } from './format.js';

export interface RestoreOptions {
  from: string;
  client: KVClient;
  manager: ManagerConnection;
  /** Write even when the cluster holds keys (they are kept unless the backup has the same key). */
  force: boolean;
  onVerified?: (manifest: BackupManifest) => void;
  onProgress?: (written: number, total: number) => void;
}

/** The cluster is not empty and `force` was not given: nothing was written. */
export class RestoreRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreRefusedError';
  }
}

/** Keys written per batch (one putMany). */
const BATCH_KEYS = 256;
const MAP_TIMEOUT_MS = 5000;

/** Restores; resolves with the keys written (equal to the manifest's count) or rejects naming what failed. */
export async function runRestore(options: RestoreOptions): Promise<{ restored: number; manifest: BackupManifest }> {
  const { manifest, shards } = await verifyBackup(options.from);
  options.onVerified?.(manifest);
  if (!options.force) {
    const map = await options.manager.getClusterMap(MAP_TIMEOUT_MS);
    const held = map.nodes.reduce((sum, node) => sum + node.keyCount, 0);
    if (held > 0) {
      throw new RestoreRefusedError(`the cluster at ${options.manager.address} holds ${held} keys (counting every replica): ` +
        'restore writes into an empty cluster; pass --force to write into this one');
    }
  }
  const entries: BackupEntry[] = shards.flatMap((shard) => shard.entries);
  let written = 0;
  const failures: string[] = [];
  for (let start = 0; start < entries.length; start += BATCH_KEYS) {
    const batch = entries.slice(start, start + BATCH_KEYS);
    const plain = batch.filter((entry) => entry.expiresInMs === 0);
    const expiring = batch.filter((entry) => entry.expiresInMs > 0);
    const results = await Promise.all([
      plain.length === 0 ? [] : options.client.putMany(plain.map((entry) => [entry.key.toString('utf8'), entry.value] as const)),
      ...expiring.map((entry) => {
        const key = entry.key.toString('utf8');
        return options.client.put(key, entry.value, { ttlMs: entry.expiresInMs }).then(
          () => [{ key, ok: true as const }],
          (error: unknown) => [{ key, ok: false as const, error: error instanceof Error ? error : new Error(String(error)) }],
        );
      }),
    ]);
    for (const result of results.flat()) {
      if (result.ok) written += 1;
      else failures.push(`${result.key}: ${result.error.message}`);
    }
    options.onProgress?.(written, entries.length);
  }
  if (failures.length > 0) {
    throw new Error(`${failures.length} of ${entries.length} keys were not written (first: ${failures[0] ?? ''}); restore again with --force to finish`);
  }
  return { restored: written, manifest };
}
