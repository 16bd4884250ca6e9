#!/usr/bin/env node
// Measures what a backup costs a cluster serving traffic: a local 3-node K=3 cluster holding
// KEYS keys, clients keeping 64 requests in flight (50% gets, 256-byte values); the backup starts
// after WARMUP seconds. Prints ops/s per half second and the medians before, during and after.
// Usage: node scripts/backup-dip.mjs [keys=50000] (after npm run build).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setInterval, clearInterval } from 'node:timers';
import { KVClient } from '../dist/src/index.js';

const KEYS = Number(process.argv[2] ?? 50_000);
const WARMUP_S = 6;
const AFTER_S = 6;
const IN_FLIGHT = 64;
const main = new URL('../dist/src/cli/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kvstore-dip-'));
const port = 27000 + Math.floor(Math.random() * 1000);
const cluster = spawn(process.execPath, [main, 'cluster', '--nodes', '3', '--replicas', '3', '--shards', '16', '--port', String(port), '--data-dir', join(dir, 'data')], { stdio: ['ignore', 'pipe', 'ignore'] });
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]; };
try {
  await new Promise((resolve, reject) => {
    cluster.stdout.on('data', (chunk) => { if (String(chunk).includes('ready manager=')) resolve(); });
    cluster.on('exit', () => reject(new Error('cluster exited')));
  });
  const manager = `127.0.0.1:${port}`;
  const kv = new KVClient({ manager, timeoutMs: 30_000 });
  await kv.init();
  const value = 'v'.repeat(256);
  for (let i = 0; i < KEYS; i += 512) {
    await kv.putMany(Array.from({ length: Math.min(512, KEYS - i) }, (_, j) => [`k${i + j}`, value]));
  }
  let ops = 0;
  let running = true;
  const loops = Array.from({ length: IN_FLIGHT }, async (_, n) => {
    let i = n;
    while (running) {
      const key = `k${(i * 7919) % KEYS}`;
      if (i % 2 === 0) await kv.get(key); else await kv.put(key, value);
      ops += 1;
      i += IN_FLIGHT;
    }
  });
  const windows = [];
  let phase = 'before';
  const timer = setInterval(() => { windows.push({ phase, ops: ops * 2 }); ops = 0; }, 500);
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  phase = 'during';
  const started = performance.now();
  const backup = await new Promise((resolve) => {
    const child = spawn(process.execPath, [main, 'backup', '--out', join(dir, 'backup'), '--manager', manager], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.on('exit', (code) => resolve({ code, out: out.trim() }));
  });
  const backupSeconds = (performance.now() - started) / 1000;
  phase = 'after';
  await new Promise((r) => setTimeout(r, AFTER_S * 1000));
  clearInterval(timer);
  running = false;
  await Promise.all(loops);
  await kv.finalize();
  const by = (p) => windows.filter((w) => w.phase === p).map((w) => w.ops);
  const before = by('before').slice(2); // the first second warms up
  console.log(`backup exit ${backup.code}: ${backup.out} in ${backupSeconds.toFixed(2)} s`);
  console.log(`ops/s per 0.5 s window: ${windows.map((w) => `${w.phase[0]}${w.ops}`).join(' ')}`);
  console.log(`median ops/s: before ${median(before)}, during ${median(by('during'))} (min ${Math.min(...by('during'))}), after ${median(by('after'))}`);
} finally {
  cluster.kill('SIGTERM');
  await new Promise((r) => cluster.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
  void spawnSync;
}
