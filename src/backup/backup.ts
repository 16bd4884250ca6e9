/**
 * `kvstore backup`: every shard's state from its leader, each cut at one linearizable point
 * (`ReadShard`: a confirmed read, then one synchronous copy of the state machine), written one
 * file per shard with a manifest. Shards are cut one after another, not at one instant across
 * each other (as Redis Cluster's and TiKV's per-region backups without a timestamp).
 */
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CHANNEL_OPTIONS } from '../client/channel-options.js';
import { ManagerConnection } from '../client/manager-connection.js';
import { ErrorCode, KvServiceClient, type ReadShardResponse } from '../gen/kvstore/v1/kvstore.js';
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';
import type { ChannelSecurity } from '../security/channel-security.js';
import {
  BACKUP_FORMAT, BackupError, encodeShardFile, manifestChecksum, sha256, shardFileName, type BackupEntry, type BackupManifest, type ManifestShard,
} from './format.js';

export interface BackupOptions {
  manager: string;
  security: ChannelSecurity;
  out: string;
  /** Shards read at once (default 4): more is faster and takes more from the leaders. */
  concurrency?: number;
  /** How long one shard may take, retries included, before the backup fails (default 60 s). */
  shardTimeoutMs?: number;
  onShard?: (done: number, total: number, keys: number) => void;
}

const MAP_TIMEOUT_MS = 5000;
const RETRY_DELAY_MS = 250;

/** Takes a backup into `out` (which must not hold one already); resolves with its manifest. */
export async function runBackup(options: BackupOptions): Promise<BackupManifest> {
  const out = options.out;
  if (existsSync(join(out, 'manifest.json'))) throw new BackupError(out, 'already holds a backup (manifest.json): choose another --out');
  await mkdir(out, { recursive: true });
  const manager = new ManagerConnection(options.manager, options.security);
  const clients = new Map<string, KvServiceClient>();
  try {
    let map = await manager.getClusterMap(MAP_TIMEOUT_MS);
    const refreshMap = async (): Promise<GetClusterMapResponse> => {
      map = await manager.getClusterMap(MAP_TIMEOUT_MS);
      return map;
    };
    const clientFor = (address: string): KvServiceClient => {
      let client = clients.get(address);
      if (client === undefined) {
        const target = options.security.forTarget(address);
        client = new KvServiceClient(address, target.credentials, { ...CHANNEL_OPTIONS, ...target.options, interceptors: options.security.interceptors });
        clients.set(address, client);
      }
      return client;
    };
    const shards: ManifestShard[] = [];
    let done = 0;
    let keys = 0;
    const queue = Array.from({ length: map.shardCount }, (_unused, shard) => shard);
    const worker = async (): Promise<void> => {
      for (let shard = queue.shift(); shard !== undefined; shard = queue.shift()) {
        const cut = await readShardWithRetries(shard, () => map, refreshMap, clientFor, options.shardTimeoutMs ?? 60_000);
        const file = shardFileName(shard);
        const data = encodeShardFile(shard, cut.appliedIndex, cut.term, cut.entries);
        await writeFile(join(out, `${file}.tmp`), data);
        await rename(join(out, `${file}.tmp`), join(out, file));
        const bytes = cut.entries.reduce((sum, entry) => sum + entry.key.length + entry.value.length, 0);
        shards.push({ shard, file, appliedIndex: cut.appliedIndex, term: cut.term, keys: cut.entries.length, bytes, sha256: sha256(data) });
        done += 1;
        keys += cut.entries.length;
        options.onShard?.(done, map.shardCount, keys);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, () => worker()));
    shards.sort((a, b) => a.shard - b.shard);
    const body = {
      format: BACKUP_FORMAT,
      createdAt: new Date().toISOString(),
      manager: options.manager,
      shardCount: map.shardCount,
      replicationFactor: map.replicationFactor,
      totalKeys: shards.reduce((sum, shard) => sum + shard.keys, 0),
      totalBytes: shards.reduce((sum, shard) => sum + shard.bytes, 0),
      shards,
    };
    const manifest: BackupManifest = { ...body, checksum: manifestChecksum(body) };
    await writeFile(join(out, 'manifest.json.tmp'), `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(join(out, 'manifest.json.tmp'), join(out, 'manifest.json'));
    return manifest;
  } finally {
    manager.close();
    for (const client of clients.values()) client.close();
  }
}

interface ShardCut {
  appliedIndex: number;
  term: number;
  entries: BackupEntry[];
}

/** Reads one shard from its leader, following leader changes (map refresh) until `timeoutMs`. */
async function readShardWithRetries(
  shard: number,
  currentMap: () => GetClusterMapResponse,
  refreshMap: () => Promise<GetClusterMapResponse>,
  clientFor: (address: string) => KvServiceClient,
  timeoutMs: number,
): Promise<ShardCut> {
  const deadline = performance.now() + timeoutMs;
  let lastProblem = 'no leader known';
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0) {
      if (performance.now() >= deadline) throw new BackupError(`shard ${shard}`, `could not be read within ${timeoutMs / 1000} s: ${lastProblem}`);
      await delay(RETRY_DELAY_MS);
      await refreshMap().catch(() => undefined);
    }
    const map = currentMap();
    const leaderId = map.shards.find((info) => info.shardId === shard)?.leaderNodeId ?? '';
    const address = map.nodes.find((node) => node.nodeId === leaderId)?.address;
    if (address === undefined) continue;
    const outcome = await readShardOnce(clientFor(address), shard, Math.max(1000, deadline - performance.now()));
    if (outcome.ok) return outcome.cut;
    if (!outcome.retry) throw new BackupError(`shard ${shard}`, outcome.problem);
    lastProblem = `${address}: ${outcome.problem}`;
  }
}

type ReadOutcome = { ok: true; cut: ShardCut } | { ok: false; retry: boolean; problem: string };

function readShardOnce(client: KvServiceClient, shard: number, timeoutMs: number): Promise<ReadOutcome> {
  return new Promise((resolve) => {
    const entries: BackupEntry[] = [];
    let cut: { appliedIndex: number; term: number; keyCount: number } | undefined;
    let settled = false;
    const finish = (outcome: ReadOutcome): void => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const call = client.readShard({ shardId: shard }, { deadline: new Date(Date.now() + timeoutMs) });
    call.on('data', (response: ReadShardResponse) => {
      if (response.error !== undefined) {
        const code = response.error.code;
        const retry = code !== ErrorCode.ERROR_CODE_INVALID_ARGUMENT;
        finish({ ok: false, retry, problem: response.error.message });
        call.cancel();
        return;
      }
      cut ??= { appliedIndex: response.appliedIndex, term: response.term, keyCount: response.keyCount };
      for (const entry of response.entries) entries.push({ key: entry.key, value: entry.value, version: entry.version, expiresInMs: entry.expiresInMs });
      if (response.last) {
        if (entries.length !== cut.keyCount) finish({ ok: false, retry: true, problem: `stream ended with ${entries.length} of ${cut.keyCount} keys` });
        else finish({ ok: true, cut: { appliedIndex: cut.appliedIndex, term: cut.term, entries } });
      }
    });
    call.on('error', (error: ServiceError) => {
      finish({ ok: false, retry: error.code !== GrpcStatus.UNAUTHENTICATED, problem: error.details || error.message });
    });
    call.on('end', () => finish({ ok: false, retry: true, problem: 'stream ended before its last message' }));
  });
}
