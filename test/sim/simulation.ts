/**
 * One whole-node simulation run (TigerBeetle's VOPR and FoundationDB's simulator are the
 * models): several real storage nodes — `RaftHost`, replicas, KV state machines, sessions,
 * WAL and snapshot files, transport batching — in one process on virtual time, with a
 * simulated disk, network and clocks, all drawn from one seed (`scenario.ts`).
 *
 * 1. Start the nodes and place every shard's replicas.
 * 2. Chaos: clients read and write while the nemesis kills nodes, cuts power, pauses
 *    processes, partitions the network (both ways and one way) and slows disks, and the
 *    manager moves replicas and transfers leaders. The checker runs after every event.
 * 3. Heal: every node up, the network whole and quiet, the disks fast.
 * 4. Liveness: every shard commits a new write within a bounded time.
 * 5. Final reads of every key; the history must be linearizable per key (which also means
 *    no acknowledged write was lost).
 */
import { loadHasher } from '../../src/common/index.js';
import { describeScenario, type Scenario } from './scenario.js';
import { SimViolation } from './sim-checker.js';
import { SimCluster } from './sim-cluster.js';
import type { SimNode } from './sim-node.js';

/** What a passing run did. */
export interface SimResult {
  seed: number;
  events: number;
  virtualMs: number;
  operations: number;
  faults: Record<string, number>;
  leaders: number;
  applies: number;
  moves: number;
}

/** A failed run: the seed, the scenario, what broke. */
export class SimulationFailure extends Error {
  constructor(
    readonly seed: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`seed ${seed} (replay: SEED=${seed} npm run sim): ${message}`, options);
    this.name = 'SimulationFailure';
  }
}

/** Every shard must commit a new write within this long after healing (ms). */
const LIVENESS_MS = 30_000;
/** The final reads must finish within this long (ms). */
const FINAL_READS_MS = 20_000;
/** How often the nemesis acts (ms). */
const NEMESIS_STEP_MS = 100;

/**
 * Runs the scenario; resolves with a summary or rejects with a {@link SimulationFailure}.
 * `logLevel` prints the nodes' logs on virtual time (replaying a seed).
 */
export async function runSimulation(scenario: Scenario, options: { logLevel?: string } = {}): Promise<SimResult> {
  await loadHasher();
  const cluster = new SimCluster(scenario, options.logLevel);
  // A promise the node code left unhandled is a bug of this run.
  const onUnhandled = (reason: unknown): void => cluster.fail(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    return await new Simulation(cluster).run();
  } catch (error) {
    const what = error instanceof SimViolation ? error.message : error instanceof Error ? error.stack ?? error.message : String(error);
    throw new SimulationFailure(scenario.seed, `${what}\n  at ${cluster.nowMs.toFixed(1)} ms of virtual time; ${describeScenario(scenario)}`, { cause: error });
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
}

/** The random run of one scenario. */
class Simulation {
  private readonly faults: Record<string, number> = {};

  constructor(private readonly cluster: SimCluster) {}

  async run(): Promise<SimResult> {
    const cluster = this.cluster;
    const scenario = cluster.scenario;
    await cluster.start();
    const chaosEndMs = cluster.nowMs + scenario.chaosMs;
    cluster.movesUntilMs = chaosEndMs;
    cluster.clients.start();
    this.every(NEMESIS_STEP_MS, chaosEndMs, () => this.nemesisStep());
    await cluster.runUntil(chaosEndMs);
    cluster.heal();
    await cluster.stopClients();
    await cluster.liveness(LIVENESS_MS);
    await cluster.finalReads(FINAL_READS_MS);
    cluster.checkHistory();
    if (cluster.network.stats.snapshotsCorrupted > 0) this.faults['snapshot-corruption'] = cluster.network.stats.snapshotsCorrupted;
    // The send queue at work (counted by the nodes' current processes only): snapshots that waited for a slot, and waiting ones dropped.
    for (const node of cluster.nodes.values()) {
      const stats = node.host?.transport.stats;
      if (stats === undefined) continue;
      if (stats.snapshotsWaited > 0) this.faults['snapshot-waited'] = (this.faults['snapshot-waited'] ?? 0) + stats.snapshotsWaited;
      if (stats.snapshotsDropped > 0) this.faults['snapshot-unwanted'] = (this.faults['snapshot-unwanted'] ?? 0) + stats.snapshotsDropped;
      const quiescences = node.host?.quiescences ?? 0;
      if (quiescences > 0) this.faults['quiesced'] = (this.faults['quiesced'] ?? 0) + quiescences;
    }
    return {
      seed: scenario.seed,
      events: cluster.scheduler.events,
      virtualMs: cluster.nowMs,
      operations: cluster.clients.history.length,
      faults: this.faults,
      leaders: cluster.checker.stats.leaders,
      applies: cluster.checker.stats.applies,
      moves: cluster.manager.stats.movesDone,
    };
  }

  /** Repeats `step` every `everyMs` until `untilMs`. */
  private every(everyMs: number, untilMs: number, step: () => void): void {
    const { scheduler, control } = this.cluster;
    const run = (): void => {
      if (scheduler.nowMs > untilMs) return;
      step();
      scheduler.after(everyMs, control, run);
    };
    scheduler.after(everyMs, control, run);
  }

  private count(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
  }

  private chance(probability: number): boolean {
    return probability > 0 && this.cluster.random.nextInt(1_000_000) < probability * 1_000_000;
  }

  private randomNode(): SimNode {
    const all = [...this.cluster.nodes.values()];
    return all[this.cluster.random.nextInt(all.length)] as SimNode;
  }

  /**
   * A gray failure around a shard's leader, as Jepsen's nemeses aim at primaries: one
   * follower loses the leader altogether for a while, and the leader's link to another —
   * the failover's designated successor — flaps: its connections drop, the leader's
   * messages to it are lost for a few hundred ms, and its own messages to the leader come
   * slow. Both followers hear of the broken streams and fail over once their promise ran
   * out, while the leader is still alive and talking.
   */
  private flakyLeaderLink(): void {
    const { scheduler, control, network, random, manager } = this.cluster;
    const shardId = random.nextInt(this.cluster.scenario.shards);
    const leader = manager.leaderOf(shardId);
    if (leader === undefined) return;
    const leaderNode = leader.node.nodeId;
    const voters = leader.replica.members().filter((member) => !member.learner && member.nodeId !== leaderNode && member.nodeId !== '');
    // The one `fast-failover.ts` names: the surviving voters in id order, picked by shard id.
    voters.sort((a, b) => a.replicaId - b.replicaId);
    const successor = voters[shardId % voters.length];
    if (successor === undefined) return;
    this.count('flaky-leader-link');
    const lasting = (lift: () => void, minMs: number, spreadMs: number): void => scheduler.after(minMs + random.nextInt(spreadMs), control, lift);
    for (const other of voters.filter((voter) => voter !== successor)) {
      if (random.nextInt(2) === 0) continue;
      network.resetStreams(leaderNode, other.nodeId);
      lasting(network.partition([leaderNode], [other.nodeId]), 600, 1_000);
    }
    network.resetStreams(leaderNode, successor.nodeId);
    lasting(network.cut(leaderNode, successor.nodeId), 200, 400);
    lasting(network.slowLink(successor.nodeId, leaderNode, random.nextInt(150)), 1_000, 1_000);
  }

  /** One step of the nemesis: maybe inject each fault, and schedule its end. */
  private nemesisStep(): void {
    const { scheduler, control, network, random } = this.cluster;
    const faults = this.cluster.scenario.faults;
    const downForMs = (): number => 50 + random.nextInt(3_000);
    if (this.chance(this.cluster.scenario.lullRate)) {
      this.count('lull');
      this.cluster.clients.lull(1_000 + random.nextInt(2_001));
    }
    if (this.chance(faults.kill)) {
      const node = this.randomNode();
      if (node.up) {
        this.count('kill');
        node.kill();
        scheduler.after(downForMs(), control, () => node.start());
      }
    }
    if (this.chance(faults.powerLoss)) {
      const node = this.randomNode();
      if (node.process?.alive === true) {
        this.count('power-loss');
        node.powerLoss();
        scheduler.after(downForMs(), control, () => node.start());
      }
    }
    if (this.chance(faults.pause)) {
      const node = this.randomNode();
      if (node.up) {
        this.count('pause');
        node.pause(50 + random.nextInt(2_000));
      }
    }
    const lasting = (lift: () => void): void => scheduler.after(200 + random.nextInt(4_000), control, lift);
    if (this.chance(faults.partition)) {
      this.count('partition');
      const ids = [...this.cluster.nodes.keys()];
      const side = ids.filter(() => random.nextInt(2) === 0);
      lasting(network.partition(side, ids.filter((id) => !side.includes(id))));
    }
    const [from, to] = [this.randomNode().nodeId, this.randomNode().nodeId];
    if (from !== to && this.chance(faults.oneWayCut)) {
      this.count('one-way-cut');
      lasting(network.cut(from, to));
    }
    if (from !== to && this.chance(faults.slowLink)) {
      this.count('slow-link');
      lasting(network.slowLink(from, to, 100 + random.nextInt(700)));
    }
    if (from !== to && this.chance(faults.streamReset)) {
      this.count('stream-reset');
      network.resetStreams(from, to);
    }
    if (this.chance(faults.flakyLeaderLink)) this.flakyLeaderLink();
    if (this.chance(faults.slowDisk)) {
      this.count('slow-disk');
      this.cluster.disks.get(this.randomNode().nodeId)?.slowFor(scheduler.nowMs, 500 + random.nextInt(3_000));
    }
  }
}
