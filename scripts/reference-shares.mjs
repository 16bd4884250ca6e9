#!/usr/bin/env node
/**
 * The reference experiment, repeated: runs `kvstore bench` (one local cluster per replication
 * factor) several times and prints each run's throughput per K, its share of the smallest K's
 * throughput in the same run, CPU per operation and p99s, then the medians over the runs. With
 * --against, another checkout's build runs in turn with this one (A, B, A, B, …), so the two
 * are compared under the same moods of the machine.
 *
 *   npm run build && node scripts/reference-shares.mjs [--runs 3] [--against DIR] [--keep DIR] [-- BENCH FLAGS]
 *
 * BENCH FLAGS go to `kvstore bench` unchanged; without them it runs the reference experiment at
 * 64 in flight: --nodes 7 --replicas 1,3,5 --concurrency 64 --duration 15 --warmup 10.
 * --against DIR: a checkout with its own dist/ (e.g. the commit before a change).
 * --keep DIR: keep every run's results.json and charts there (otherwise a temp dir, removed).
 * Each run's clusters are the bench's own: it starts them, and stops them before it exits.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEFAULT_BENCH = ['--nodes', '7', '--replicas', '1,3,5', '--concurrency', '64', '--duration', '15', '--warmup', '10'];
const OWNED_BY_SCRIPT = ['--out', '--manager'];

function fail(message) {
  process.stderr.write(`reference-shares: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const split = argv.indexOf('--');
  const own = split < 0 ? argv : argv.slice(0, split);
  const bench = split < 0 ? [] : argv.slice(split + 1);
  const options = { runs: 3, against: undefined, keep: undefined, bench: bench.length > 0 ? bench : DEFAULT_BENCH };
  for (let i = 0; i < own.length; i += 2) {
    const [name, value] = [own[i], own[i + 1]];
    if (value === undefined) fail(`${name} needs a value`);
    if (name === '--runs') {
      options.runs = Number(value);
      if (!Number.isInteger(options.runs) || options.runs < 1 || options.runs > 100) fail(`--runs must be a whole number from 1 to 100, got ${value}`);
    } else if (name === '--against') {
      options.against = resolve(value);
      if (!existsSync(join(options.against, 'dist/src/cli/main.js'))) fail(`--against ${value}: no dist/src/cli/main.js there (build it first)`);
    } else if (name === '--keep') {
      options.keep = resolve(value);
    } else {
      fail(`unknown flag ${name} (bench flags go after --)`);
    }
  }
  for (const flag of OWNED_BY_SCRIPT) {
    if (options.bench.some((arg) => arg === flag || arg.startsWith(`${flag}=`))) fail(`${flag} is not for this script: it writes each run's results itself, and shares need local clusters`);
  }
  return options;
}

/** Runs one bench to completion; resolves with its results.json, rejects with its stderr's tail. */
function runBench(main, args, out, running) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [main, 'bench', ...args, '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    running.add(child);
    let stderr = '';
    child.stderr.on('data', (chunk) => { stderr = (stderr + chunk.toString()).slice(-4000); });
    child.on('error', (error) => {
      running.delete(child);
      reject(error);
    });
    child.on('close', (code, signal) => {
      running.delete(child);
      if (code !== 0) {
        reject(new Error(`kvstore bench exited with ${signal ?? code}:\n${stderr.trim()}`));
        return;
      }
      try {
        resolvePromise(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')));
      } catch (error) {
        reject(new Error(`kvstore bench left no readable results.json in ${out}: ${error.message}`));
      }
    });
  });
}

/** The replication factors a bench was asked for that its results lack (a run cut short). */
export function missingReplicas(results) {
  const measured = new Set(results.runs.map((run) => run.replicas));
  return (results.settings.replicas ?? []).filter((replicas) => !measured.has(replicas));
}

export function median(values) {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** One run's figures per K, each share against the smallest K of the same run. */
export function runFigures(results) {
  const runs = [...results.runs].sort((a, b) => a.replicas - b.replicas);
  const base = runs[0];
  return runs.map((run) => ({
    replicas: run.replicas,
    opsPerSec: run.opsPerSec,
    share: base === undefined || base.opsPerSec === 0 ? NaN : run.opsPerSec / base.opsPerSec,
    getP99: run.get?.p99 ?? NaN,
    putP99: run.put?.p99 ?? NaN,
    nodesMicros: run.cpuMicrosPerOp?.nodes ?? NaN,
    clientsMicros: run.cpuMicrosPerOp?.clients ?? NaN,
    errors: run.errors,
  }));
}

/** Medians per K over a build's runs. */
export function summarize(figuresPerRun) {
  const byK = new Map();
  for (const figures of figuresPerRun) {
    for (const row of figures) {
      if (!byK.has(row.replicas)) byK.set(row.replicas, []);
      byK.get(row.replicas).push(row);
    }
  }
  return [...byK.entries()].sort(([a], [b]) => a - b).map(([replicas, rows]) => ({
    replicas,
    runs: rows.length,
    allOpsPerSec: rows.map((row) => row.opsPerSec),
    opsPerSec: median(rows.map((row) => row.opsPerSec)),
    share: median(rows.map((row) => row.share)),
    getP99: median(rows.map((row) => row.getP99)),
    putP99: median(rows.map((row) => row.putP99)),
    nodesMicros: median(rows.map((row) => row.nodesMicros)),
    clientsMicros: median(rows.map((row) => row.clientsMicros)),
    errors: rows.reduce((sum, row) => sum + row.errors, 0),
  }));
}

const number = (value) => Math.round(value).toLocaleString('en-US');
const percent = (value) => (Number.isFinite(value) ? `${Math.round(value * 100)}%` : '—');
const fixed = (value) => (Number.isFinite(value) ? value.toFixed(1) : '—');

function runLine(label, index, figures) {
  const parts = figures.map((row, at) => `K=${row.replicas} ${number(row.opsPerSec)}${at === 0 ? '' : ` (${percent(row.share)})`}`);
  const micros = figures.map((row) => fixed(row.nodesMicros)).join(' · ');
  return `${label} run ${index}: ${parts.join(' · ')} ops/s; nodes ${micros} µs/op`;
}

function summaryTable(label, summary) {
  const lines = [`${label}: medians of ${summary[0]?.runs ?? 0} run(s); each share is a run's own K / its smallest K`];
  lines.push('  K    ops/s  share  get p99 ms  put p99 ms  nodes µs/op  clients µs/op  errors  the runs (ops/s)');
  for (const row of summary) {
    lines.push(`  ${String(row.replicas).padEnd(2)} ${number(row.opsPerSec).padStart(8)}  ${percent(row.share).padStart(5)}  ${fixed(row.getP99).padStart(10)}  ${fixed(row.putP99).padStart(9)}  ${fixed(row.nodesMicros).padStart(11)}  ${fixed(row.clientsMicros).padStart(13)}  ${String(row.errors).padStart(6)}  ${row.allOpsPerSec.map(number).join(' · ')}`);
  }
  return lines.join('\n');
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const here = join(dirname(fileURLToPath(import.meta.url)), '..');
  const builds = [{ label: 'this build', main: join(here, 'dist/src/cli/main.js'), figures: [] }];
  if (options.against !== undefined) builds.push({ label: `against ${options.against}`, main: join(options.against, 'dist/src/cli/main.js'), figures: [] });
  if (!existsSync(builds[0].main)) fail('dist/src/cli/main.js is missing: run npm run build first');
  const outRoot = options.keep ?? mkdtempSync(join(tmpdir(), 'kvstore-shares-'));
  mkdirSync(outRoot, { recursive: true });
  const running = new Set();
  const stop = (signal) => {
    for (const child of running) child.kill('SIGINT'); // the bench stops its clusters on SIGINT
    process.exitCode = signal === 'SIGTERM' ? 143 : 130;
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stderr.write(`reference-shares: ${options.runs} run(s) of kvstore bench ${options.bench.join(' ')}${builds.length > 1 ? ', alternating two builds' : ''}\n`);
  try {
    for (let index = 1; index <= options.runs && process.exitCode === undefined; index++) {
      for (const [at, build] of builds.entries()) {
        if (process.exitCode !== undefined) break;
        const results = await runBench(build.main, options.bench, join(outRoot, `${at === 0 ? 'a' : 'b'}-run${index}`), running);
        // A bench stopped by a signal writes what it measured so far: not a run to count.
        if (process.exitCode !== undefined) break;
        const missing = missingReplicas(results);
        if (missing.length > 0) throw new Error(`${build.label} run ${index} has no result for K=${missing.join(', K=')}`);
        const figures = runFigures(results);
        build.figures.push(figures);
        process.stdout.write(`${runLine(build.label, index, figures)}\n`);
      }
    }
  } catch (error) {
    if (process.exitCode === undefined) {
      process.stderr.write(`reference-shares: ${error.message}\n`);
      process.exitCode = 1;
    }
  } finally {
    if (options.keep === undefined) rmSync(outRoot, { recursive: true, force: true });
  }
  if (process.exitCode !== undefined) process.stderr.write('reference-shares: stopped early; only the runs that finished are counted\n');
  for (const build of builds) if (build.figures.length > 0) process.stdout.write(`${summaryTable(build.label, summarize(build.figures))}\n`);
  if (options.keep !== undefined) process.stdout.write(`results kept in ${outRoot}\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
