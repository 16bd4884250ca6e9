#!/usr/bin/env node
/**
 * What idle shards cost: start a manager and N nodes (K=3) with many shards on loopback in a
 * temp data dir, time until every shard has a leader (`kvstore status --wait`), let the cluster
 * sit idle, then measure each node's CPU (from /proc, over --measure seconds), resident memory,
 * /metrics size and quiesced replicas. Prints one JSON line per node and a summary; stops
 * every process it started, by PID.
 *
 *   npm run build && node scripts/idle-shards.mjs [--shards 4096] [--nodes 3] [--settle 10] [--measure 20] [--port 27000] [--root DIR] [--profile DIR]
 *
 * --root runs another checkout's build (its dist/), e.g. the commit before a change; --profile
 * writes a V8 CPU profile of every process into DIR (`node --cpu-prof`).
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const flag = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
};
const root = flag('root', join(dirname(fileURLToPath(import.meta.url)), '..'));
const main = join(root, 'dist/src/cli/main.js');
const shards = Number(flag('shards', 4096));
const nodes = Number(flag('nodes', 3));
const settleSeconds = Number(flag('settle', 10));
const measureSeconds = Number(flag('measure', 20));
const port = Number(flag('port', 27000));
const profileDir = flag('profile', undefined);
const nodeArgs = profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU seconds a process used so far (user + system). */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}
function rssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line.split(/\s+/)[1]) / 1024;
}
function metrics(metricsPort) {
  return new Promise((resolve, reject) => {
    get(`http://127.0.0.1:${metricsPort}/metrics`, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => resolve(text));
    }).on('error', reject);
  });
}
const gauge = (text, name) => Number(text.split('\n').find((line) => line.startsWith(`${name} `))?.split(' ')[1] ?? NaN);

const dir = mkdtempSync(join(tmpdir(), 'kvstore-idle-'));
const manager = `127.0.0.1:${port}`;
const children = new Map();
const start = (name, args) => children.set(name, spawn(process.execPath, [...nodeArgs, main, ...args], { stdio: ['ignore', 'ignore', 'ignore'] }));
try {
  const startedAt = performance.now();
  start('manager', ['manager', '--port', String(port), '--replicas', '3', '--shards', String(shards),
    '--data-dir', join(dir, 'manager'), '--bootstrap-nodes', String(nodes)]);
  for (let i = 1; i <= nodes; i++) {
    start(`n${i}`, ['node', '--id', `n${i}`, '--port', String(port + i), '--manager', manager,
      '--data-dir', join(dir, `n${i}`), '--metrics-port', String(port + 100 + i)]);
  }
  execFileSync(process.execPath, [main, 'status', '--manager', manager, '--wait', '--timeout', '600'], { stdio: 'ignore' });
  const readySeconds = (performance.now() - startedAt) / 1000;
  await sleep(settleSeconds * 1000);
  const before = new Map([...children].map(([name, child]) => [name, cpuSeconds(child.pid)]));
  const metricsBefore = [];
  for (let i = 1; i <= nodes; i++) metricsBefore.push(await metrics(port + 100 + i));
  const measuredAt = performance.now();
  await sleep(measureSeconds * 1000);
  const elapsed = (performance.now() - measuredAt) / 1000;
  const perNode = [];
  for (let i = 1; i <= nodes; i++) {
    const name = `n${i}`;
    const pid = children.get(name).pid;
    const cpuPercent = ((cpuSeconds(pid) - before.get(name)) / elapsed) * 100;
    const text = await metrics(port + 100 + i);
    const replicas = gauge(text, 'kvstore_node_replicas');
    const delta = (metric) => gauge(text, metric) - gauge(metricsBefore[i - 1], metric);
    const row = {
      node: name, replicas, quiesced: gauge(text, 'kvstore_node_replicas_quiesced'),
      // Work done in the window: Raft turns and leader changes (an idle cluster does neither).
      turns: delta('kvstore_node_raft_turns_total'), leaderChanges: delta('kvstore_node_leader_changes_seen_total'),
      cpuPercent: Number(cpuPercent.toFixed(2)), rssMiB: Number(rssMiB(pid).toFixed(1)), metricsBytes: Buffer.byteLength(text),
    };
    perNode.push(row);
    process.stdout.write(`${JSON.stringify(row)}\n`);
  }
  const managerCpu = ((cpuSeconds(children.get('manager').pid) - before.get('manager')) / elapsed) * 100;
  const cpus = perNode.map((row) => row.cpuPercent).sort((a, b) => a - b);
  const replicas = perNode.reduce((sum, row) => sum + (Number.isNaN(row.replicas) ? 0 : row.replicas), 0);
  const rss = perNode.reduce((sum, row) => sum + row.rssMiB, 0);
  process.stdout.write(`${JSON.stringify({
    shards, nodes, readySeconds: Number(readySeconds.toFixed(1)), nodeCpuPercent: cpus, managerCpuPercent: Number(managerCpu.toFixed(2)),
    cpuMicrosPerReplicaSecond: replicas > 0 ? Number(((cpus.reduce((a, b) => a + b, 0) / 100) * 1e6 / replicas).toFixed(2)) : null,
    rssKiBPerReplica: replicas > 0 ? Number(((rss * 1024) / replicas).toFixed(1)) : null,
  })}\n`);
} finally {
  for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await Promise.all([...children.values()].map((child) => child.exitCode !== null || child.signalCode !== null
    ? undefined : new Promise((resolve) => { const timer = setTimeout(() => child.kill('SIGKILL'), 10_000); child.once('exit', () => { clearTimeout(timer); resolve(); }); })));
  rmSync(dir, { recursive: true, force: true });
}
