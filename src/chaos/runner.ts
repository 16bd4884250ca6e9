/**
 * One chaos run, start to verdict: start (or attach to) a cluster, run the workload while the nemesis
 * injects faults, heal, wait for the cluster to settle, read every key, then check the history for
 * linearizability per key (per key group for the transactions' keys), for lost acknowledged
 * writes, and that the cluster recovered.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, loadHasher, SeededRandom } from '../common/index.js';
import { checkHistory, partitionByObject, type HistoryCheck, type KeyCheck } from './checker.js';
import { ClusterWatch } from './cluster-watch.js';
import { HistoryRecorder, type Operation } from './history.js';
import { LocalCluster } from './local-cluster.js';
import { findLostWrites, type LostWrite } from './lost-writes.js';
import { minimizeViolation } from './minimize.js';
import { Nemesis, type FaultKind } from './nemesis.js';
import { netnsUnavailable } from './netns.js';
import { Timeline } from './timeline.js';
import { Workload } from './workload.js';
import type { ClientCredentials } from '../cluster/index.js';

/** Everything a run needs; the CLI fills it from flags. */
export interface ChaosOptions {
  /** An existing cluster's manager; undefined = start a local cluster under the run's control. */
  managerAddress?: string;
  durationSeconds: number;
  clients: number;
  keys: number;
  faults: readonly FaultKind[];
  intervalSeconds: number;
  seed: number;
  /** Where the local cluster's data dirs and logs go; undefined = a temp dir removed afterwards. */
  clusterDir?: string;
  /** `dist/src/cli/main.js`, to start the local cluster's processes. */
  mainScript: string;
  /** Local cluster shape (defaults 5 nodes, K=3, 16 shards, down after 4 s). */
  nodes?: number;
  replicas?: number;
  shards?: number;
  downAfterSeconds?: number;
  /** Start every local node with `--unsafe-stale-reads` (the negative test; `env` must allow it). */
  unsafeStaleReads?: boolean;
  /** Start the local cluster with mutual TLS (`--tls`). */
  tls?: boolean;
  /** What the clients present to an existing cluster (`--manager` with `--tls-ca`, `--token`…). */
  credentials?: ClientCredentials;
  /** Extra environment for the local cluster's processes. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the cluster to settle after healing. Default 60 s. */
  settleTimeoutSeconds?: number;
  /** Deadline of one client call. Default 3 s. */
  operationTimeoutMs?: number;
  /**
   * Fraction of each worker's operations that are transactions on one key group (issue 18), 0…1.
   * Default {@link DEFAULT_TRANSACTION_FRACTION}; 0 runs single-key operations only, as before
   * transactions existed. More exercises atomicity harder but makes the groups' objects, which
   * the checker searches as a whole, longer.
   */
  transactionFraction?: number;
  /**
   * Key groups the transactions run on: each is {@link GROUP_KEY_SUFFIXES}.length keys under one
   * hash tag (`{ch…g0}a`, `{ch…g0}b`, `{ch…g0}c`), so one shard. Default one group per four keys of
   * `keys`, at least one; ignored when `transactionFraction` is 0.
   */
  transactionGroups?: number;
  /**
   * Fraction of puts — single, and each put of a transaction — that carry a TTL of 200 ms to 3 s
   * (issue 18), 0…1. Default {@link DEFAULT_TTL_FRACTION}; 0 puts no TTL at all, as before keys
   * could expire. More makes keys expire (and reads find them gone) more often, but lets fewer
   * acknowledged writes be checked for loss at the end: an expired one cannot be.
   */
  ttlFraction?: number;
  /** Progress lines for the operator (stderr). */
  progress?: (line: string) => void;
}

/** Transactions are this fraction of the workload unless {@link ChaosOptions.transactionFraction} says otherwise. */
export const DEFAULT_TRANSACTION_FRACTION = 0.2;

/** Puts carry a TTL this fraction of the time unless {@link ChaosOptions.ttlFraction} says otherwise. */
export const DEFAULT_TTL_FRACTION = 0.1;

/** The keys of one transaction group, after its hash tag. */
export const GROUP_KEY_SUFFIXES = ['a', 'b', 'c'] as const;

/** A violating object (a key, or a key group) with the smallest failing sub-history found. */
export interface Violation {
  check: KeyCheck;
  minimized: Operation[];
}

/** What a run found. */
export interface ChaosResult {
  seed: number;
  history: Operation[];
  check: HistoryCheck;
  violations: Violation[];
  lostWrites: LostWrite[];
  /** Keys whose final read never succeeded. */
  unreadKeys: string[];
  /** Empty when every shard had a leader and K live replicas after healing. */
  settleProblems: string[];
  faultCounts: Partial<Record<FaultKind, number>>;
  faultsInjected: number;
  /** Stale-read probes completed (pause faults on a shard leader). */
  probes: number;
  notes: string[];
  timeline: Timeline;
}

/** Thrown when the run cannot start: the cluster never became ready or the manager is unreachable. */
export class ChaosSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChaosSetupError';
  }
}

const READY_TIMEOUT_MS = 90_000;
const FINAL_READ_TIMEOUT_MS = 30_000;
/** How long the map must stay settled after healing: the manager's suspect timeout, so a node that died unnoticed shows. */
const SETTLED_STABLE_MS = 3000;
/** Violating keys minimized (each costs checker runs). */
const MAX_MINIMIZED_KEYS = 3;

/** Runs one chaos run; `signal` (Ctrl-C) ends the workload early and goes straight to healing and checking. */
export async function runChaos(options: ChaosOptions, signal?: AbortSignal): Promise<ChaosResult> {
  const progress = options.progress ?? (() => undefined);
  const recorder = new HistoryRecorder();
  const timeline = new Timeline(() => recorder.elapsedMs());
  const random = new SeededRandom(options.seed);
  const notes: string[] = [];
  await loadHasher();

  const replicas = options.replicas ?? 3;
  /** The local cluster's data dir when the run made it up: removed at the end. */
  let temporaryDir: string | undefined;
  let cluster: LocalCluster | undefined;
  const killOnExit = (): void => cluster?.killAllNow();
  let watch: ClusterWatch | undefined;
  let workload: Workload | undefined;
  let nemesis: Nemesis | undefined;
  let settleProblems: string[];
  let unreadFinal: string[];
  const runTag = keyTag(options.seed);
  const keys = keyNames(options.keys, runTag);
  const transactionFraction = options.transactionFraction ?? DEFAULT_TRANSACTION_FRACTION;
  if (!(transactionFraction >= 0 && transactionFraction <= 1)) throw new RangeError(`transactionFraction must be within 0…1, got ${transactionFraction}`);
  const ttlFraction = options.ttlFraction ?? DEFAULT_TTL_FRACTION;
  if (!(ttlFraction >= 0 && ttlFraction <= 1)) throw new RangeError(`ttlFraction must be within 0…1, got ${ttlFraction}`);
  const groups = transactionFraction > 0 ? groupNames(options.transactionGroups ?? Math.max(1, Math.ceil(options.keys / 4)), runTag) : [];
  const partitions = partitionSupport(options);
  try {
    let managerAddress: string;
    let credentials: ClientCredentials = options.credentials ?? {};
    if (options.managerAddress !== undefined) {
      managerAddress = options.managerAddress;
    } else {
      const dataDir = options.clusterDir ?? (temporaryDir = mkdtempSync(join(tmpdir(), 'kvstore-chaos-')));
      process.on('exit', killOnExit);
      cluster = await LocalCluster.start({
        nodes: options.nodes ?? 5,
        replicas,
        shards: options.shards ?? 16,
        downAfterSeconds: options.downAfterSeconds ?? 4,
        dataDir,
        logDir: join(dataDir, 'logs'),
        mainScript: options.mainScript,
        ...(options.unsafeStaleReads === undefined ? {} : { unsafeStaleReads: options.unsafeStaleReads }),
        ...(options.env === undefined ? {} : { env: options.env }),
        isolateNodes: partitions.isolateNodes,
        tls: options.tls === true,
        logger: createLogger(undefined, { component: 'chaos' }),
        onUnexpectedExit: (name, code, exitSignal) => {
          const text = `${name} exited on its own (${exitSignal ?? `code ${code ?? '?'}`})`;
          timeline.add('process', text);
          notes.push(text);
        },
      });
      managerAddress = cluster.managerAddress;
      credentials = cluster.credentials;
      progress(
        `started a local cluster: manager ${managerAddress}, ${cluster.nodeIds.length} nodes${partitions.isolateNodes ? ' in their own network namespaces' : ''}`
          + `${options.tls === true ? ', mutual TLS' : ''}, data in ${dataDir}`,
      );
    }
    watch = new ClusterWatch(managerAddress, timeline, credentials);
    const ready = await watch.waitSettled(replicas, performance.now() + READY_TIMEOUT_MS, signal);
    if (ready.length > 0) throw new ChaosSetupError(`the cluster at ${managerAddress} never became ready: ${ready.slice(0, 3).join('; ')}`);
    const map = watch.map();
    const shardCount = map?.shardCount ?? options.shards ?? 16;
    const replicationFactor = map?.replicationFactor ?? replicas;
    timeline.add('phase', `cluster ready: ${shardCount} shards, K=${replicationFactor}`);
    watch.start();

    workload = new Workload(
      {
        managerAddress,
        clients: options.clients,
        keys,
        groups,
        transactionFraction,
        ttlFraction,
        operationTimeoutMs: options.operationTimeoutMs ?? 3000,
        maxThinkTimeMs: 20,
        random: random.fork(1),
        credentials,
      },
      recorder,
    );
    await workload.start(performance.now() + READY_TIMEOUT_MS);
    if (cluster !== undefined) {
      nemesis = new Nemesis(
        {
          faults: options.faults,
          intervalMs: options.intervalSeconds * 1000,
          keys,
          shardCount,
          random: random.fork(2),
          ...(partitions.unavailable === undefined ? {} : { partitionUnavailable: partitions.unavailable }),
        },
        cluster,
        watch,
        workload,
        timeline,
      );
      notes.push(...nemesis.skipped());
    } else if (options.faults.length > 0) {
      notes.push('faults skipped: --manager names a cluster this run did not start, so it cannot kill, pause, restart or partition its processes');
    }

    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => stop.abort(), options.durationSeconds * 1000);
    const transactions = groups.length === 0 ? '' : `, ${Math.round(transactionFraction * 100)}% transactions on ${groups.length} key groups`;
    const ttls = ttlFraction === 0 ? '' : `, ${Math.round(ttlFraction * 100)}% of puts with a TTL`;
    timeline.add('phase', `workload started: ${options.clients} clients on ${keys.length} keys${transactions}${ttls} for ${options.durationSeconds} s, faults ${options.faults.join(',') || 'none'}`);
    progress(`running the workload for ${options.durationSeconds} s`);
    try {
      await Promise.all([workload.run(stop.signal), nemesis?.run(stop.signal)]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      stop.abort();
    }
    timeline.add('phase', 'workload stopped');

    for (const healed of cluster?.heal() ?? []) timeline.add('heal', healed);
    progress('healed; waiting for the cluster to settle');
    const settleStartMs = performance.now();
    settleProblems = await watch.waitSettled(replicationFactor, settleStartMs + (options.settleTimeoutSeconds ?? 60) * 1000, undefined, SETTLED_STABLE_MS);
    timeline.add(
      'phase',
      settleProblems.length === 0
        ? `settled after ${((performance.now() - settleStartMs) / 1000).toFixed(1)} s: every shard has a leader and ${replicationFactor} live replicas`
        : `did not settle: ${settleProblems.slice(0, 3).join('; ')}`,
    );
    const final = await workload.finalReads(performance.now() + FINAL_READ_TIMEOUT_MS);
    unreadFinal = final.unread;
    timeline.add('phase', `final reads: ${final.read} of ${keys.length} keys`);
  } finally {
    await workload?.close();
    await watch?.close();
    await cluster?.stop();
    process.off('exit', killOnExit);
    if (temporaryDir !== undefined) rmSync(temporaryDir, { recursive: true, force: true });
  }

  progress('checking the history');
  const history = recorder.history();
  const check = checkHistory(history);
  const { lost, unreadKeys } = findLostWrites(history);
  const byObject = partitionByObject(history);
  const violations = check.keys
    .filter((key) => key.verdict === 'violation')
    .slice(0, MAX_MINIMIZED_KEYS)
    .map((key) => ({ check: key, minimized: minimizeViolation(key.key, byObject.get(key.key)?.operations ?? []) }));
  const faultCounts: Partial<Record<FaultKind, number>> = Object.fromEntries(nemesis?.injected ?? []);
  return {
    seed: options.seed,
    history,
    check,
    violations,
    lostWrites: lost,
    unreadKeys: [...new Set([...unreadKeys, ...unreadFinal])].sort(),
    settleProblems,
    faultCounts,
    faultsInjected: nemesis?.total() ?? 0,
    probes: nemesis?.probes ?? 0,
    notes,
    timeline,
  };
}

/**
 * Whether the local cluster runs its nodes in network namespaces: only when `partition` is asked
 * for (namespaces need root, and a run without partitions has no use for them) and they work here.
 */
function partitionSupport(options: ChaosOptions): { isolateNodes: boolean; unavailable?: string } {
  if (!options.faults.includes('partition') || options.managerAddress !== undefined) return { isolateNodes: false };
  const unavailable = netnsUnavailable();
  return unavailable === undefined ? { isolateNodes: true } : { isolateNodes: false, unavailable };
}

/** The run's tag, from the seed and the clock: a fresh key set per run, so an existing cluster's keys never mix in. */
function keyTag(seed: number): string {
  return ((seed ^ Date.now()) >>> 0).toString(36).slice(-6);
}

/** `ch<tag>-<i>`. */
function keyNames(count: number, tag: string): string[] {
  return Array.from({ length: count }, (_, i) => `ch${tag}-${i}`);
}

/** `{ch<tag>g<j>}a`, `…b`, `…c`: one hash tag per group, so a group's keys share a shard (at most 15 bytes for up to 1,000 groups, within the 20-byte key limit). */
function groupNames(count: number, tag: string): string[][] {
  return Array.from({ length: count }, (_, j) => GROUP_KEY_SUFFIXES.map((suffix) => `{ch${tag}g${j}}${suffix}`));
}
