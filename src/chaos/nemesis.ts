/**
 * The nemesis: injects one fault at a time on a schedule drawn from the run's seed, holds it, heals
 * it, and waits before the next. Faults (issue 7):
 * - `kill`: kill -9 a random node, restart it later with its data dir;
 * - `pause`: SIGSTOP a node, SIGCONT it later. Every other pause targets the leader of a random key's
 *   shard and runs the stale-read probe: a client that read the key from that leader before the pause
 *   reads it again after a new leader accepted a write, with the read reaching the old leader just as
 *   it resumes — a leader that serves reads without confirming its leadership (ReadIndex) answers it
 *   with the old value;
 * - `leader`: kill -9 the node leading a random shard, restart it later;
 * - `restart`: kill -9 the manager and restart it;
 * - `partition`: cut node↔node links with blackhole routes, hold, heal. Either random halves (a
 *   minority against a majority) or one node isolated from every other — half of those times the
 *   leader of a random shard. The manager either stays reachable from every node or sits with the
 *   majority; clients always reach every node, so requests routed to a minority leader exercise
 *   CheckQuorum and ReadIndex (partition.ts has the plans and why). Needs each node in its own
 *   network namespace (local-cluster.ts `isolateNodes`: root and iproute2); without that, or with
 *   `--manager`, it is skipped with a note saying why.
 */
import { shardForKey, sleep, type SeededRandom } from '../common/index.js';
import { leaderOf, type ClusterWatch } from './cluster-watch.js';
import type { LocalCluster } from './local-cluster.js';
import { describePartition, linksToCut, planHalves, planIsolation, type PartitionPlan } from './partition.js';
import type { Timeline } from './timeline.js';
import type { Workload } from './workload.js';

/** The fault kinds `--faults` accepts. */
export const FAULT_KINDS = ['kill', 'pause', 'leader', 'partition', 'restart'] as const;
/** One fault kind. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Nemesis settings. */
export interface NemesisOptions {
  faults: readonly FaultKind[];
  /** Pacing: a fault starts 0.5–1 intervals after the previous one healed and is held 0.3–0.9 intervals. */
  intervalMs: number;
  keys: readonly string[];
  shardCount: number;
  random: SeededRandom;
  /** Why the cluster cannot be partitioned (netnsUnavailable()'s answer), for the skip note. */
  partitionUnavailable?: string;
}

/** How long the pause fault waits for the paused leader's shard to elect another. */
const NEW_LEADER_DEADLINE_MS = 8000;
/** How long the probe's read sits at the paused leader before it resumes (well under the client's 2 s attempt timeout). */
const PROBE_READ_HEAD_START_MS = 300;

/** Injects faults into a {@link LocalCluster}; see the file comment. */
export class Nemesis {
  /** Faults injected, by kind. */
  readonly injected = new Map<FaultKind, number>();
  /** Stale-read probes run (a read sent to a paused, deposed leader). */
  probes = 0;
  private readonly runnable: FaultKind[];

  constructor(
    private readonly options: NemesisOptions,
    private readonly cluster: LocalCluster,
    private readonly watch: ClusterWatch,
    private readonly workload: Workload,
    private readonly timeline: Timeline,
  ) {
    this.runnable = options.faults.filter((fault) => fault !== 'partition' || cluster.canPartition());
  }

  /** Notes for the report: faults asked for but not run. */
  skipped(): string[] {
    if (!this.options.faults.includes('partition') || this.cluster.canPartition()) return [];
    const why = this.options.partitionUnavailable ?? 'the local cluster does not run its nodes in their own network namespaces';
    return [`partition skipped: it needs each node in its own network namespace, and ${why}`];
  }

  /** Total faults injected. */
  total(): number {
    let sum = 0;
    for (const count of this.injected.values()) sum += count;
    return sum;
  }

  /** Runs faults until `signal` aborts; the fault in progress is healed before it resolves. */
  async run(signal: AbortSignal): Promise<void> {
    if (this.runnable.length === 0) return;
    const random = this.options.random;
    while (!signal.aborted) {
      await sleep(random.between(0.5, 1) * this.options.intervalMs, signal);
      if (signal.aborted) return;
      const fault = random.pick(this.runnable);
      const holdMs = random.between(0.3, 0.9) * this.options.intervalMs;
      this.injected.set(fault, (this.injected.get(fault) ?? 0) + 1);
      switch (fault) {
        case 'kill':
          await this.killAndRestart(random.pick(this.cluster.nodeIds), 'kill', holdMs, signal);
          break;
        case 'leader':
          await this.killLeader(holdMs, signal);
          break;
        case 'pause':
          if (random.nextFloat() < 0.5) await this.pauseLeaderWithProbe(random.pick(this.options.keys), holdMs, signal);
          else await this.pause(random.pick(this.cluster.nodeIds), holdMs, signal);
          break;
        case 'restart':
          await this.killAndRestart('manager', 'restart', Math.min(holdMs, 3000), signal);
          break;
        case 'partition':
          await this.partition(holdMs, signal);
          break;
      }
    }
  }

  private async killAndRestart(name: string, why: string, holdMs: number, signal: AbortSignal): Promise<void> {
    const pid = this.cluster.pid(name);
    await this.cluster.kill(name);
    this.timeline.add('fault', `${why}: kill -9 ${name} (pid ${pid ?? '?'}) for ${(holdMs / 1000).toFixed(1)} s`);
    await sleep(holdMs, signal);
    this.cluster.restart(name);
    this.timeline.add('heal', `restarted ${name} (pid ${this.cluster.pid(name) ?? '?'})`);
  }

  private async killLeader(holdMs: number, signal: AbortSignal): Promise<void> {
    const shardId = this.options.random.integer(0, this.options.shardCount - 1);
    const map = (await this.watch.refresh()) ?? this.watch.map();
    const leader = map === undefined ? undefined : leaderOf(map, shardId);
    if (leader === undefined || !this.cluster.isRunning(leader)) {
      this.timeline.add('note', `leader: shard ${shardId} has no known leader; killing a random node instead`);
      await this.killAndRestart(this.options.random.pick(this.cluster.nodeIds), 'leader', holdMs, signal);
      return;
    }
    await this.killAndRestart(leader, `leader of shard ${shardId}`, holdMs, signal);
  }

  /** Cuts the links of a plan drawn from the seed, holds, heals; see the file comment. */
  private async partition(holdMs: number, signal: AbortSignal): Promise<void> {
    const random = this.options.random;
    const nodeIds = this.cluster.nodeIds;
    const plan: PartitionPlan = random.nextFloat() < 0.5 ? planHalves(nodeIds, random) : planIsolation(nodeIds, await this.isolationTarget(), random);
    const described = describePartition(plan);
    try {
      this.cluster.cut(linksToCut(plan));
      this.timeline.add('fault', `partition (${plan.kind}): ${described} for ${(holdMs / 1000).toFixed(1)} s`);
      await sleep(holdMs, signal);
    } finally {
      this.cluster.healPartition();
      this.timeline.add('heal', `partition healed: {${plan.minority.join(',')}} and {${plan.majority.join(',')}} reconnected`);
    }
  }

  /** The node to isolate: half of the time the leader of a random shard, else (or when none is known) a random node. */
  private async isolationTarget(): Promise<string> {
    const random = this.options.random;
    if (random.nextFloat() < 0.5) return random.pick(this.cluster.nodeIds);
    const shardId = random.integer(0, this.options.shardCount - 1);
    const map = (await this.watch.refresh()) ?? this.watch.map();
    const leader = map === undefined ? undefined : leaderOf(map, shardId);
    if (leader === undefined || !this.cluster.nodeIds.includes(leader)) {
      this.timeline.add('note', `partition: shard ${shardId} has no known leader; isolating a random node instead`);
      return random.pick(this.cluster.nodeIds);
    }
    this.timeline.add('note', `partition: isolating ${leader}, leader of shard ${shardId}`);
    return leader;
  }

  private async pause(name: string, holdMs: number, signal: AbortSignal): Promise<void> {
    this.cluster.pause(name);
    this.timeline.add('fault', `pause: SIGSTOP ${name} (pid ${this.cluster.pid(name) ?? '?'}) for ${(holdMs / 1000).toFixed(1)} s`);
    await sleep(holdMs, signal);
    this.cluster.resume(name);
    this.timeline.add('heal', `SIGCONT ${name}`);
  }

  /** The pause fault's stale-read probe; see the file comment. Falls back to a plain pause when the shard's leader is unknown. */
  private async pauseLeaderWithProbe(key: string, holdMs: number, signal: AbortSignal): Promise<void> {
    const shardId = shardForKey(new TextEncoder().encode(key), this.options.shardCount);
    const before = await this.workload.probeRead(key);
    const map = await this.watch.refresh();
    const leader = map === undefined ? undefined : leaderOf(map, shardId);
    if (before.status !== 'ok' || leader === undefined || !this.cluster.isRunning(leader) || this.cluster.isPaused(leader)) {
      await this.pause(this.options.random.pick(this.cluster.nodeIds), holdMs, signal);
      return;
    }
    this.cluster.pause(leader);
    this.timeline.add('fault', `pause: SIGSTOP ${leader}, leader of shard ${shardId} (key ${key}), until another replica leads it`);
    try {
      const deadlineMs = performance.now() + NEW_LEADER_DEADLINE_MS;
      let newLeader: string | undefined;
      while (!signal.aborted && performance.now() < deadlineMs) {
        const current = await this.watch.refresh();
        newLeader = current === undefined ? undefined : leaderOf(current, shardId);
        if (newLeader !== undefined && newLeader !== leader) break;
        newLeader = undefined;
        await sleep(200, signal);
      }
      if (newLeader === undefined || signal.aborted) {
        this.timeline.add('note', `probe: shard ${shardId} elected no other leader in time`);
        return;
      }
      const write = await this.workload.probeWrite(key);
      if (write.status !== 'ok') {
        this.timeline.add('note', `probe: the write through ${newLeader} did not complete (${write.error ?? 'unknown'})`);
        return;
      }
      this.probes++;
      const read = this.workload.probeRead(key);
      await sleep(PROBE_READ_HEAD_START_MS, signal);
      this.cluster.resume(leader);
      this.timeline.add('heal', `SIGCONT ${leader} with a probe read of ${key} waiting on it (new leader ${newLeader})`);
      await read;
    } finally {
      if (this.cluster.isPaused(leader)) {
        this.cluster.resume(leader);
        this.timeline.add('heal', `SIGCONT ${leader}`);
      }
    }
  }
}

