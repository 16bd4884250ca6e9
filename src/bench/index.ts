/**
 * The bench folder's public surface: the shopping driver (`kvstore driver`), the benchmark
 * (`kvstore bench`) with its worker processes, histograms, results.json and charts, the shared
 * closed-loop load (also used by test/bench/kv-vs-etcd.ts), and the throwaway local cluster both
 * commands start when not given `--manager`.
 */
export { runBench, writeBenchFiles } from './bench-runner.js';
export type { BenchOutput } from './bench-runner.js';
export { runDriver, describeDriverReport } from './shopping-driver.js';
export type { DriverOptions, DriverReport } from './shopping-driver.js';
export { MAX_SHOPPERS } from './cart.js';
export { BenchWorkerError } from './worker-pool.js';
export { LocalCluster, LocalClusterError } from './local-cluster.js';
export type { LocalClusterOptions } from './local-cluster.js';
export { runClosedLoop, preloadKeys, LoadCounters, errorKind } from './load-loop.js';
export type { LoadTarget, LoadPlan, LoadResult } from './load-loop.js';
export { newLatencyHistogram, recordMillis, percentilesOf, encodeHistogram, mergeEncodedHistograms } from './histogram.js';
export type { LatencyPercentiles } from './histogram.js';
export { benchKey, benchKeys, benchValue, checkWorkload, WorkloadError } from './workload.js';
export type { WorkloadSettings } from './workload.js';
export { keyDistribution, spread } from './key-distribution.js';
export type { KeyDistribution } from './key-distribution.js';
export { machineInfo, renderRunTable, writeResultsJson } from './results.js';
export type { BenchResults, BenchRun, BenchSettings, CpuPerOp, MachineInfo } from './results.js';
export { chartSpecs, renderSvg, svgToPng, writeCharts, loadChartLibraries, CHART_NAMES, CHART_PACKAGES, CHARTS_SKIPPED } from './charts.js';
export type { ChartSpec, ChartLibraries, ChartImporters, ChartLibrariesResult, ChartsOutcome } from './charts.js';
