#!/usr/bin/env node
/**
 * Failover time (issue: "after kill -9 of a leader node every affected shard accepts writes
 * within 1.5 s"). Per trial: start a manager and 3 nodes (K=3, 64 shards) on loopback with a
 * temp data dir, write continuously to one key of every shard, kill -9 the node leading the
 * most shards, and time, per shard it led, from the kill until the first write ISSUED after
 * the kill succeeds. Prints one JSON line per trial and a summary; stops everything it started.
 *
 *   npm run build && node scripts/failover-time.mjs [--trials 5] [--shards 64] [--port 26000]
 *
 * Writers use short attempts (400 ms, 2 retries) and re-issue at once, so the number measures the
 * cluster (election + client rerouting), not a long client backoff.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'dist/src/cli/main.js');
const { KVClient } = await import(join(root, 'dist/src/index.js'));
const { loadHasher, shardForKey } = await import(join(root, 'dist/src/common/index.js'));

const flag = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? Number(process.argv[at + 1]) : fallback;
};
const trials = flag('trials', 5);
const shards = flag('shards', 64);
const basePort = flag('port', 26000);
const nodes = flag('nodes', 3);
// --default-client: writers use KVClient's defaults (the deadline and retries a user gets) instead of short attempts.
const defaultClient = process.argv.includes('--default-client');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());

function status(manager) {
  const out = execFileSync(process.execPath, [main, 'status', '--manager', manager, '--json'], { encoding: 'utf8' });
  return JSON.parse(out);
}

async function trial(number) {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-failover-'));
  const port = basePort + number * 10;
  const manager = `127.0.0.1:${port}`;
  const children = new Map();
  const start = (name, args) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'ignore', 'ignore'] });
    children.set(name, child);
  };
  try {
    start('manager', ['manager', '--port', String(port), '--replicas', '3', '--shards', String(shards),
      '--data-dir', join(dir, 'manager'), '--bootstrap-nodes', String(nodes), '--down-after', '10']);
    for (let i = 1; i <= nodes; i++) {
      start(`n${i}`, ['node', '--id', `n${i}`, '--port', String(port + i), '--manager', manager,
        '--data-dir', join(dir, `n${i}`), '--metrics-port', String(port + 100 + i)]);
    }
    execFileSync(process.execPath, [main, 'status', '--manager', manager, '--wait', '--timeout', '60'], { stdio: 'ignore' });
    await sleep(2500); // let the manager's leader view settle (node heartbeats every 1 s)

    // One key per shard.
    const keys = new Array(shards);
    for (let i = 0, found = 0; found < shards; i++) {
      const key = `fo${i}`;
      const shard = shardForKey(Buffer.from(key), shards);
      if (keys[shard] === undefined) { keys[shard] = key; found++; }
    }
    const client = new KVClient(defaultClient ? { manager } : { manager, timeoutMs: 400, maxRetries: 2 });
    await client.init();
    let killedAt = Infinity;
    const firstOkAfterKill = new Array(shards).fill(undefined);
    let stop = false;
    const writers = keys.map(async (key, shard) => {
      while (!stop) {
        const issuedAt = performance.now();
        try {
          await client.put(key, 'v');
          if (issuedAt >= killedAt && firstOkAfterKill[shard] === undefined) firstOkAfterKill[shard] = performance.now() - killedAt;
        } catch {
          await sleep(5);
        }
      }
    });
    await sleep(1000);

    const view = status(manager);
    const led = new Map();
    for (const shard of view.shards) if (shard.leader !== null) led.set(shard.leader, [...(led.get(shard.leader) ?? []), shard.shard]);
    const [victim, affected] = [...led].sort((a, b) => b[1].length - a[1].length)[0];
    killedAt = performance.now();
    children.get(victim).kill('SIGKILL');

    const deadline = killedAt + 15_000;
    while (performance.now() < deadline && affected.some((shard) => firstOkAfterKill[shard] === undefined)) await sleep(20);
    stop = true;
    await Promise.allSettled(writers);
    await client.finalize();
    const times = affected.map((shard) => firstOkAfterKill[shard]);
    const recovered = times.filter((t) => t !== undefined);
    const result = {
      trial: number, killed: victim, affectedShards: affected.length, recovered: recovered.length,
      maxMs: recovered.length === times.length ? Math.round(Math.max(...recovered)) : null,
      medianMs: Math.round([...recovered].sort((a, b) => a - b)[Math.floor(recovered.length / 2)] ?? NaN),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return result;
  } finally {
    for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all([...children.values()].map((child) => child.exitCode !== null || child.signalCode !== null
      ? undefined : new Promise((resolve) => child.once('exit', resolve))));
    rmSync(dir, { recursive: true, force: true });
  }
}

await loadHasher();
const results = [];
for (let i = 1; i <= trials; i++) results.push(await trial(i));
const maxes = results.map((r) => r.maxMs ?? Infinity).sort((a, b) => a - b);
process.stdout.write(`failover (kill -9 of the node leading the most shards; time until every shard it led took a write): ` +
  `median ${maxes[Math.floor(maxes.length / 2)]} ms, worst ${maxes[maxes.length - 1]} ms over ${results.length} trials; ` +
  `${results.filter((r) => r.maxMs !== null && r.maxMs <= 1500).length}/${results.length} within 1.5 s\n`);
