/**
 * The bench charts, as plain vega specs rendered without a browser: vega's headless View renders SVG,
 * @resvg/resvg-js turns the SVG into PNG (no `canvas`, which downloads binaries at install time).
 * Three charts, each as `.svg` and `.png`: throughput per replication factor, latency percentiles per
 * replication factor and operation, and keys per node per replication factor.
 *
 * vega and resvg are 65 packages and 17 MB that a program using only the client does not need,
 * so they are optional peer dependencies of the package (devDependencies here): `npm install kvstore`
 * leaves them out, and this file imports them only when charts are written (issue 19). Without them
 * the bench still writes results.json and says how to get the charts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as Resvg from '@resvg/resvg-js';
import type * as Vega from 'vega';
import type { BenchResults } from './results.js';

/** The chart files written (names without extension; each gets .svg and .png). */
export const CHART_NAMES = ['throughput', 'latency', 'keys-per-node'] as const;

/** One chart's name and vega spec. */
export interface ChartSpec {
  name: (typeof CHART_NAMES)[number];
  spec: Vega.Spec;
}

/** The libraries that render the charts, loaded on demand. */
export interface ChartLibraries {
  vega: typeof Vega;
  resvg: typeof Resvg;
}

/** How each library is loaded: a dynamic `import()` by default; tests inject failures. */
export interface ChartImporters {
  vega: () => Promise<typeof Vega>;
  resvg: () => Promise<typeof Resvg>;
}

/** The optional packages the charts need. */
export const CHART_PACKAGES = ['vega', '@resvg/resvg-js'] as const;

/** The one line `kvstore bench` prints when the chart libraries cannot be loaded. */
export const CHARTS_SKIPPED =
  `charts skipped: install the optional packages ${CHART_PACKAGES.join(' and ')} (npm install ${CHART_PACKAGES.join(' ')})`;

const IMPORT_CHART_LIBRARIES: ChartImporters = {
  vega: () => import('vega'),
  resvg: () => import('@resvg/resvg-js'),
};

/** Either the libraries, or why the charts are skipped (one line, starting with {@link CHARTS_SKIPPED}). */
export type ChartLibrariesResult = { ok: true; libraries: ChartLibraries } | { ok: false; reason: string };

/**
 * Not found (`ERR_MODULE_NOT_FOUND` from `import()`, `MODULE_NOT_FOUND` from a `require` inside,
 * e.g. resvg's native binding when installed with `--omit=optional`): the install line is the fix.
 */
function isModuleNotFound(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

/**
 * Loads vega and resvg. A package that is not installed is the expected case and gives
 * {@link CHARTS_SKIPPED}; any other load failure is added to that line, so the results
 * of a long run are never lost to the charts.
 */
export async function loadChartLibraries(importers: ChartImporters = IMPORT_CHART_LIBRARIES): Promise<ChartLibrariesResult> {
  const failures: string[] = [];
  const attempt = async <T>(name: string, load: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await load();
    } catch (error) {
      if (!isModuleNotFound(error)) failures.push(`${name} failed to load: ${(error instanceof Error ? error.message : String(error)).split('\n')[0] ?? ''}`);
      return undefined;
    }
  };
  const [vega, resvg] = await Promise.all([attempt('vega', importers.vega), attempt('@resvg/resvg-js', importers.resvg)]);
  if (vega !== undefined && resvg !== undefined) return { ok: true, libraries: { vega, resvg } };
  return { ok: false, reason: [CHARTS_SKIPPED, ...failures].join('; ') };
}

const FONT = 'DejaVu Sans, sans-serif';
const CONFIG = {
  background: 'white',
  font: FONT,
  title: { fontSize: 15, subtitleFontSize: 11, subtitleColor: '#555', anchor: 'start', offset: 12 },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
};

function runLabel(nodes: number, replicas: number, several: boolean): string {
  return several ? `N=${nodes} K=${replicas}` : `K=${replicas}`;
}

function subtitle(results: BenchResults): string[] {
  const s = results.settings;
  const load = s.ops !== null ? `${s.ops.toLocaleString('en-US')} ops per run` : `${String(s.durationSeconds)} s per run`;
  const m = results.machine;
  return [
    `${load}, ${s.mix}% gets, ${s.keys.toLocaleString('en-US')} keys, ${s.keyBytes}-byte keys, ${s.valueBytes}-byte values`,
    `${s.concurrency} requests in flight from ${s.clients} client processes · ${m.cpus} × ${m.model}, node ${m.node}`,
  ];
}

/** The three specs for `results`. */
export function chartSpecs(results: BenchResults): ChartSpec[] {
  const runs = results.runs;
  const severalNodeCounts = new Set(runs.map((run) => run.nodes)).size > 1;
  const label = (run: BenchResults['runs'][number]): string => runLabel(run.nodes, run.replicas, severalNodeCounts);
  const baseline = runs.find((run) => run.replicas === Math.min(...runs.map((r) => r.replicas)));
  const nodesText = severalNodeCounts ? 'per cluster' : `on ${runs[0]?.nodes ?? 0} nodes`;

  const throughput: Vega.Spec = {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: 420, height: 280, padding: 10,
    title: { text: `Throughput per replication factor ${nodesText}`, subtitle: subtitle(results) },
    data: [{
      name: 'runs',
      values: runs.map((run) => ({
        run: label(run),
        opsPerSec: run.opsPerSec,
        text: `${run.opsPerSec.toLocaleString('en-US')}` +
          (baseline !== undefined && baseline !== run && baseline.opsPerSec > 0 ? ` (${Math.round((100 * run.opsPerSec) / baseline.opsPerSec)}%)` : ''),
      })),
    }],
    scales: [
      { name: 'x', type: 'band', domain: { data: 'runs', field: 'run' }, range: 'width', padding: 0.3 },
      { name: 'y', type: 'linear', domain: { data: 'runs', field: 'opsPerSec' }, range: 'height', nice: true, zero: true },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'replication factor' },
      { orient: 'left', scale: 'y', title: 'operations per second', grid: true, format: ',d' },
    ],
    marks: [
      {
        type: 'rect', from: { data: 'runs' },
        encode: { enter: {
          x: { scale: 'x', field: 'run' }, width: { scale: 'x', band: 1 },
          y: { scale: 'y', field: 'opsPerSec' }, y2: { scale: 'y', value: 0 }, fill: { value: '#4c78a8' },
        } },
      },
      {
        type: 'text', from: { data: 'runs' },
        encode: { enter: {
          x: { scale: 'x', field: 'run', band: 0.5 }, y: { scale: 'y', field: 'opsPerSec', offset: -6 },
          text: { field: 'text' }, align: { value: 'center' }, baseline: { value: 'bottom' }, fontSize: { value: 11 },
        } },
      },
    ],
  };

  const latencyValues = runs.flatMap((run) =>
    (['get', 'put'] as const).flatMap((op) =>
      ([['p50', run[op].p50], ['p90', run[op].p90], ['p99', run[op].p99], ['p99.9', run[op].p999]] as const)
        .filter(([, ms]) => ms > 0)
        .map(([percentile, ms]) => ({ series: `${label(run)} ${op}`, run: label(run), op, percentile, ms })),
    ),
  );
  const latency: Vega.Spec = {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: 420, height: 280, padding: 10,
    title: { text: 'Latency percentiles per replication factor (ms, log scale)', subtitle: subtitle(results) },
    data: [{ name: 'latency', values: latencyValues }],
    scales: [
      { name: 'x', type: 'point', domain: ['p50', 'p90', 'p99', 'p99.9'], range: 'width', padding: 0.3 },
      { name: 'y', type: 'log', domain: { data: 'latency', field: 'ms' }, range: 'height', nice: true },
      { name: 'color', type: 'ordinal', domain: { data: 'latency', field: 'run' }, range: 'category' },
      { name: 'dash', type: 'ordinal', domain: ['get', 'put'], range: [[1, 0], [6, 3]] },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'percentile' },
      { orient: 'left', scale: 'y', title: 'latency (ms)', grid: true },
    ],
    legends: [
      { stroke: 'color', title: 'replicas', symbolType: 'stroke' },
      { strokeDash: 'dash', title: 'operation', symbolType: 'stroke' },
    ],
    marks: [{
      type: 'group',
      from: { facet: { name: 'series', data: 'latency', groupby: ['series', 'run', 'op'] } },
      marks: [
        {
          type: 'line', from: { data: 'series' },
          encode: { enter: {
            x: { scale: 'x', field: 'percentile' }, y: { scale: 'y', field: 'ms' },
            stroke: { scale: 'color', field: 'run' }, strokeDash: { scale: 'dash', field: 'op' }, strokeWidth: { value: 2 },
          } },
        },
        {
          type: 'symbol', from: { data: 'series' },
          encode: { enter: {
            x: { scale: 'x', field: 'percentile' }, y: { scale: 'y', field: 'ms' },
            fill: { scale: 'color', field: 'run' }, size: { value: 30 },
          } },
        },
      ],
    }],
  };

  const keyValues = runs.flatMap((run) =>
    Object.entries(run.keysPerNode).map(([node, keys]) => ({ node: severalNodeCounts ? `${node}` : node, run: label(run), keys })),
  );
  const spreadText = runs.map((run) => `${label(run)}: worst ±${run.maxKeyDeviationPercent}% from mean ${run.meanKeysPerNode}`).join(' · ');
  const keysPerNode: Vega.Spec = {
    $schema: 'https://vega.github.io/schema/vega/v6.json',
    width: 520, height: 280, padding: 10,
    title: {
      text: 'Keys stored per node per replication factor',
      subtitle: [`each key counts once on every node holding a replica of its shard`, spreadText],
    },
    data: [{ name: 'keys', values: keyValues }],
    scales: [
      { name: 'x', type: 'band', domain: { data: 'keys', field: 'node' }, range: 'width', padding: 0.2 },
      { name: 'y', type: 'linear', domain: { data: 'keys', field: 'keys' }, range: 'height', nice: true, zero: true },
      { name: 'color', type: 'ordinal', domain: { data: 'keys', field: 'run' }, range: 'category' },
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'node' },
      { orient: 'left', scale: 'y', title: 'keys stored', grid: true, format: ',d' },
    ],
    legends: [{ fill: 'color', title: 'replicas' }],
    marks: [{
      type: 'group',
      from: { facet: { data: 'keys', name: 'facet', groupby: 'node' } },
      encode: { enter: { x: { scale: 'x', field: 'node' } } },
      signals: [{ name: 'width', update: "bandwidth('x')" }],
      scales: [{ name: 'pos', type: 'band', range: 'width', domain: { data: 'facet', field: 'run' } }],
      marks: [{
        type: 'rect', from: { data: 'facet' },
        encode: { enter: {
          x: { scale: 'pos', field: 'run' }, width: { scale: 'pos', band: 1 },
          y: { scale: 'y', field: 'keys' }, y2: { scale: 'y', value: 0 }, fill: { scale: 'color', field: 'run' },
        } },
      }],
    }],
  };

  return [
    { name: 'throughput', spec: throughput },
    { name: 'latency', spec: latency },
    { name: 'keys-per-node', spec: keysPerNode },
  ];
}

/** Renders one spec to SVG text with vega's headless view. */
export async function renderSvg(vega: typeof Vega, spec: Vega.Spec): Promise<string> {
  const view = new vega.View(vega.parse(spec, CONFIG as Vega.Config), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Rasterizes SVG to PNG at twice the size (crisp on high-DPI screens), with system fonts. */
export function svgToPng(resvg: typeof Resvg, svg: string): Uint8Array {
  const image = new resvg.Resvg(svg, {
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: { loadSystemFonts: true, sansSerifFamily: 'DejaVu Sans', defaultFontFamily: 'DejaVu Sans' },
  }).render();
  return image.asPng();
}

/** What {@link writeCharts} did: the paths written, or why it wrote none. */
export type ChartsOutcome = { written: string[] } | { skipped: string };

/**
 * Writes every chart as DIR/<name>.svg and DIR/<name>.png, loading the libraries first
 * (`importers` for tests); without them it writes nothing and says why.
 */
export async function writeCharts(dir: string, results: BenchResults, importers?: ChartImporters): Promise<ChartsOutcome> {
  const loaded = await loadChartLibraries(importers);
  if (!loaded.ok) return { skipped: loaded.reason };
  const { vega, resvg } = loaded.libraries;
  const written: string[] = [];
  for (const { name, spec } of chartSpecs(results)) {
    const svg = await renderSvg(vega, spec);
    const svgPath = join(dir, `${name}.svg`);
    const pngPath = join(dir, `${name}.png`);
    writeFileSync(svgPath, svg);
    writeFileSync(pngPath, svgToPng(resvg, svg));
    written.push(svgPath, pngPath);
  }
  return { written };
}
