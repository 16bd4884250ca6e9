/**
 * Issue 19 "a lean client install": a program that imports `KVClient` from 'kvstore' must not
 * load (and `npm install kvstore` must not install) the benchmark's chart stack — vega, its d3
 * packages and resvg's native PNG renderer — nor what only the tools need at run time. The
 * package declares the chart stack as optional peer dependencies; `kvstore bench` imports it
 * only to write charts and, without it, still writes results.json and says how to get them.
 * README.md "Installing only the client" has the measurements.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeBenchFiles } from '../../src/bench/bench-runner.js';
import { CHARTS_SKIPPED, loadChartLibraries, type ChartImporters } from '../../src/bench/charts.js';
import { machineInfo, type BenchResults, type BenchRun } from '../../src/bench/results.js';

/** The repository root (dist/test/ops → ../../..). */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Packages the client must never load: the chart stack, and what only `certs`, bench and driver use. */
const TOOL_ONLY = /\/node_modules\/(vega(-[a-z-]+)?|d3-[a-z-]+|@resvg\/[^/]+|@peculiar\/[^/]+|reflect-metadata|tsyringe|cli-progress|hdr-histogram-js)\//;

/** Every package directory (`node_modules/<name>` or `node_modules/@scope/<name>`) among `paths`. */
function packagesIn(paths: readonly string[]): string[] {
  const names = new Set<string>();
  for (const path of paths) {
    const match = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
    if (match?.[1] !== undefined) names.add(match[1]);
  }
  return [...names].sort();
}

/**
 * Imports `target` in a fresh Node and returns every module it loaded: ESM resolutions through a
 * resolve hook (`module.register`), and CommonJS files from the require cache (Node 20 runs
 * `require` inside CommonJS packages without the ESM hooks). `call` names an export to call after.
 */
function modulesLoadedBy(dir: string, target: string, call?: string): string[] {
  const log = join(dir, `resolved-${Date.now()}.log`);
  writeFileSync(join(dir, 'hooks.mjs'), [
    "import { appendFileSync } from 'node:fs';",
    'let logFile;',
    'export function initialize(data) { logFile = data.logFile; }',
    'export async function resolve(specifier, context, nextResolve) {',
    '  const result = await nextResolve(specifier, context);',
    "  appendFileSync(logFile, `${result.url}\\n`);",
    '  return result;',
    '}',
  ].join('\n'));
  writeFileSync(join(dir, 'register.mjs'), [
    "import { register } from 'node:module';",
    "register('./hooks.mjs', import.meta.url, { data: { logFile: process.env.RESOLVE_LOG } });",
  ].join('\n'));
  writeFileSync(join(dir, 'probe.mjs'), [
    "import { createRequire } from 'node:module';",
    "import { pathToFileURL } from 'node:url';",
    'const [target, call] = process.argv.slice(2);',
    'const loaded = await import(pathToFileURL(target).href);',
    'if (call) await loaded[call]();',
    'process.stdout.write(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));',
  ].join('\n'));
  const args = ['--import', join(dir, 'register.mjs'), join(dir, 'probe.mjs'), target, ...(call === undefined ? [] : [call])];
  const result = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, RESOLVE_LOG: log }, timeout: 60_000 });
  expect(result.status, result.stderr).to.equal(0);
  const resolved = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter((line) => line.startsWith('file:')) : [];
  return [...resolved.map((url) => decodeURIComponent(new URL(url).pathname)), ...(JSON.parse(result.stdout) as string[])];
}

function sampleResults(): BenchResults {
  const percentiles = { p50: 1.2, p90: 2.5, p99: 4.1, p999: 7.9, mean: 1.5, max: 9.3, count: 500 };
  const run: BenchRun = {
    nodes: 3, replicas: 3, shards: 8, ops: 1000, gets: 500, puts: 500, opsPerSec: 2000, elapsedSeconds: 0.5,
    get: percentiles, put: percentiles, errors: 0, errorsByKind: {}, keysPerNode: { n1: 100, n2: 100, n3: 100 },
    meanKeysPerNode: 100, maxKeyDeviationPercent: 0, leadersPerNode: { n1: 3, n2: 3, n3: 2 }, preloadSeconds: 0.1,
    preloadFailed: 0, cpuMicrosPerOp: { nodes: 100, manager: 1, clients: 50 },
  };
  return {
    startedAt: new Date(0).toISOString(),
    settings: {
      manager: null, nodes: 3, replicas: [3], shards: 8, ops: 1000, durationSeconds: null, warmupSeconds: 0, mix: 50,
      concurrency: 8, clients: 1, keys: 100, keyBytes: 16, valueBytes: 128, seed: 1, leaseReads: true,
    },
    machine: machineInfo(),
    runs: [run],
  };
}

/** An importer failing the way `import()` does for a package that is not installed. */
function notInstalled(name: string): () => Promise<never> {
  return () => Promise.reject(Object.assign(new Error(`Cannot find package '${name}' imported from charts.js`), { code: 'ERR_MODULE_NOT_FOUND' }));
}

describe('ops: a lean client install (issue 19)', function () {
  this.timeout(120_000);
  let dir = '';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvstore-lean-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('declares the chart stack as optional peer dependencies, not as dependencies the client install gets', () => {
    const manifest = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, 'utf8')) as Record<string, Record<string, unknown> | undefined>;
    for (const name of ['vega', '@resvg/resvg-js']) {
      expect(manifest['dependencies'], 'dependencies').to.not.have.property(name);
      expect(manifest['optionalDependencies'] ?? {}, 'optionalDependencies (npm installs those by default)').to.not.have.property(name);
      expect(manifest['peerDependencies'], 'peerDependencies').to.have.property(name);
      expect(manifest['peerDependenciesMeta']?.[name], `peerDependenciesMeta.${name}`).to.deep.equal({ optional: true });
      expect(manifest['devDependencies'], 'devDependencies: this repository\'s bench draws the charts').to.have.property(name);
    }
    // What `import … from 'kvstore'` loads is the entry the next test imports.
    expect((manifest['exports']?.['.'] as Record<string, string> | undefined)?.['default']).to.equal('./dist/src/index.js');
  });

  it('importing the client entry loads no chart, certificate or bench-tool package', () => {
    const loaded = modulesLoadedBy(dir, `${REPO_ROOT}dist/src/index.js`);
    const packages = packagesIn(loaded);
    expect(packages, 'the probe sees the packages the client does load').to.include('@grpc/grpc-js');
    expect(packages.filter((name) => TOOL_ONLY.test(`/node_modules/${name}/`)), packages.join(' ')).to.deep.equal([]);
    expect(loaded.filter((path) => /\/dist\/src\/(bench|chaos|cli|security\/certificates)\//.test(path)), 'first-party tool code').to.deep.equal([]);
  });

  it('the same probe sees vega and resvg when the charts load them (it is not blind)', () => {
    const packages = packagesIn(modulesLoadedBy(dir, `${REPO_ROOT}dist/src/bench/charts.js`, 'loadChartLibraries'));
    expect(packages).to.include.members(['vega', '@resvg/resvg-js']);
  });

  it('without vega or resvg: results.json is written, no chart, and one line says how to get them', async () => {
    const out = mkdtempSync(join(dir, 'out-'));
    const notes: string[] = [];
    const results: string[] = [];
    const importers: ChartImporters = { vega: notInstalled('vega'), resvg: () => import('@resvg/resvg-js') };
    const written = await writeBenchFiles(out, sampleResults(), { note: (text) => notes.push(text), result: (text) => results.push(text) }, importers);
    expect(notes).to.deep.equal(['charts skipped: install the optional packages vega and @resvg/resvg-js (npm install vega @resvg/resvg-js)']);
    expect(written).to.deep.equal([join(out, 'results.json')]);
    expect(readdirSync(out)).to.deep.equal(['results.json']);
    expect(results).to.deep.equal([`wrote ${join(out, 'results.json')}`]);
  });

  it('says so for resvg too, and adds what went wrong when a package is there but fails to load', async () => {
    const missing = await loadChartLibraries({ vega: () => import('vega'), resvg: notInstalled('@resvg/resvg-js') });
    expect(missing).to.deep.equal({ ok: false, reason: CHARTS_SKIPPED });
    const broken = await loadChartLibraries({ vega: () => import('vega'), resvg: () => Promise.reject(new Error('Failed to load native binding')) });
    expect(broken).to.deep.equal({ ok: false, reason: `${CHARTS_SKIPPED}; @resvg/resvg-js failed to load: Failed to load native binding` });
  });

  it('with vega and resvg installed (devDependencies here): the three charts as SVG and PNG', async () => {
    const out = mkdtempSync(join(dir, 'out-'));
    const notes: string[] = [];
    const written = await writeBenchFiles(out, sampleResults(), { note: (text) => notes.push(text), result: () => undefined });
    expect(notes).to.deep.equal([]);
    expect(readdirSync(out).sort()).to.deep.equal([
      'keys-per-node.png', 'keys-per-node.svg', 'latency.png', 'latency.svg', 'results.json', 'throughput.png', 'throughput.svg',
    ]);
    expect(written).to.have.length(7);
    expect(readFileSync(join(out, 'throughput.svg'), 'utf8')).to.match(/^<svg/);
  });
});
