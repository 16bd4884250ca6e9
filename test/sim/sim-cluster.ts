/**
 * A simulated cluster: nodes (machines with disks and clocks), the network between them,
 * the manager, the clients and the checker, on one scheduler. The random runs
 * (`simulation.ts`) and the scripted regression tests both drive one.
 */
import { checkHistory, describeOperation, type Operation } from '../../src/chaos/index.js';
import { type Logger, shardForKey } from '../../src/common/index.js';
import type { Replica } from '../../src/node/replica.js';
import { SeededRandom } from '../../src/raft/index.js';
import type { Scenario } from './scenario.js';
import { SimChecker, SimViolation } from './sim-checker.js';
import { FINAL_READ_CLIENT, SimClients } from './sim-clients.js';
import { newNodeDisk, type SlowableDisk } from './sim-disks.js';
import { simLogger } from './sim-log.js';
import { SimManager } from './sim-manager.js';
import { QUIET_NETWORK, SimNetwork } from './sim-network.js';
import { SimNode, type SimNodeSettings } from './sim-node.js';
import { SimClock } from './sim-runtime.js';
import { SimProcess, SimScheduler } from './sim-scheduler.js';

/** A client gives up on an operation after this long (ms); its write is then `unknown`. */
const CLIENT_GIVE_UP_MS = 4_000;

/** How often the manager looks at the cluster (ms). */
const MANAGER_STEP_MS = 150;

/** Raft timing of every simulated node: the production defaults. */
const TIMING = { tickIntervalMs: 50, electionTick: 10, heartbeatTick: 2 } as const;

/** Everything on one scheduler. */
export class SimCluster {
  readonly scheduler = new SimScheduler();
  readonly random: SeededRandom;
  readonly checker = new SimChecker();
  readonly network: SimNetwork;
  readonly nodes = new Map<string, SimNode>();
  readonly disks = new Map<string, SlowableDisk>();
  readonly manager: SimManager;
  readonly clients: SimClients;
  /** The keys clients use, each with its shard; every shard has at least one. */
  readonly keys: string[] = [];
  private readonly keyShards = new Map<string, number>();
  /** Owns the simulator's own events (fault injection, polling). */
  readonly control = new SimProcess('control');
  private failure: Error | undefined;

  /** `logger` replaces the one `logLevel` would make (tests that read the nodes' log lines). */
  constructor(
    readonly scenario: Scenario,
    logLevel?: string,
    logger?: Logger,
  ) {
    logger ??= simLogger(logLevel, () => this.scheduler.nowMs);
    this.random = new SeededRandom(scenario.seed);
    this.network = new SimNetwork(this.scheduler, this.random, scenario.network);
    this.checker.corruptedSnapshots = () => this.network.stats.snapshotsCorrupted;
    const nodeIds = Array.from({ length: scenario.nodes }, (_, i) => `n${i + 1}`);
    const settings: SimNodeSettings = {
      ...TIMING,
      shardCount: scenario.shards,
      snapshotIntervalEntries: scenario.snapshotIntervalEntries,
      retainedEntries: scenario.retainedEntries,
      ...(scenario.snapshotLogBytes === undefined ? {} : { snapshotLogBytes: scenario.snapshotLogBytes }),
      ...(scenario.retainedBytes === undefined ? {} : { retainedBytes: scenario.retainedBytes }),
      ...(scenario.snapshotBytesPerTurn === undefined ? {} : { snapshotBytesPerTurn: scenario.snapshotBytesPerTurn }),
      leaseReads: scenario.leaseReads,
      ...(scenario.wal === undefined ? {} : { wal: scenario.wal }),
      ...(scenario.snapshotSendSlots === undefined ? {} : { snapshotSendSlots: scenario.snapshotSendSlots }),
    };
    const context = {
      scheduler: this.scheduler, network: this.network, checker: this.checker, random: this.random, logger, settings, nodeIds,
      fail: (error: unknown) => this.fail(error),
    };
    const [low, high] = scenario.fsyncMs;
    nodeIds.forEach((nodeId, i) => {
      const fsyncMs = (): number => low + (this.random.nextInt(1001) / 1000) * (high - low);
      const disk = newNodeDisk(this.random, fsyncMs, scenario.slowFsyncMs, () => this.scheduler.nowMs, scenario.inlineFsyncs);
      this.disks.set(nodeId, disk);
      const clock = new SimClock(this.scheduler, scenario.clockRates[i] ?? 1, scenario.wallOffsetsMs[i] ?? 0);
      this.nodes.set(nodeId, new SimNode(nodeId, context, clock, disk));
    });
    this.manager = new SimManager(this.nodes, this.random, { shardCount: scenario.shards, replicationFactor: scenario.replicationFactor, ...scenario.manager });
    this.pickKeys();
    this.clients = new SimClients(this.scheduler, this.random, {
      shardOf: (key) => this.shardOf(key),
      nodesOf: (shardId) => this.manager.nodesOf(shardId),
      endpoint: (nodeId) => {
        const node = this.nodes.get(nodeId);
        return node?.executor === undefined || node.process === undefined ? undefined : { executor: node.executor, process: node.process };
      },
      delay: () => this.network.delay(),
    }, { clients: scenario.clients, readers: scenario.readers, keys: this.keys, attemptTimeoutMs: 1_000, giveUpMs: CLIENT_GIVE_UP_MS, maxThinkMs: 20 });
  }

  /** Global virtual time (ms). */
  get nowMs(): number {
    return this.scheduler.nowMs;
  }

  /** The node `nodeId` (n1, n2, …). */
  node(nodeId: string): SimNode {
    const node = this.nodes.get(nodeId);
    if (node === undefined) throw new Error(`no node ${nodeId}`);
    return node;
  }

  /** The shard of one of {@link keys}. */
  shardOf(key: string): number {
    return this.keyShards.get(key) ?? shardForKey(Buffer.from(key), this.scenario.shards);
  }

  /** Keys `k0, k1, …` until there are enough and every shard has at least one. */
  private pickKeys(): void {
    const covered = new Set<number>();
    for (let i = 0; this.keys.length < this.scenario.keys || covered.size < this.scenario.shards; i++) {
      const key = `k${i}`;
      const shardId = shardForKey(Buffer.from(key), this.scenario.shards);
      if (this.keys.length >= this.scenario.keys && covered.has(shardId)) continue;
      this.keys.push(key);
      covered.add(shardId);
      this.keyShards.set(key, shardId);
    }
  }

  /** Records the run's first failure; the event loop stops after the current event. */
  fail(error: unknown): void {
    this.failure ??= error instanceof Error ? error : new Error(String(error));
  }

  /** Runs events until global time `untilMs`, checking after each; throws the first failure. */
  async runUntil(untilMs: number): Promise<void> {
    await this.scheduler.runUntil(untilMs, () => this.afterEvent());
    if (this.failure !== undefined) throw this.failure;
  }

  /** Runs `durationMs` of virtual time. */
  runFor(durationMs: number): Promise<void> {
    return this.runUntil(this.scheduler.nowMs + durationMs);
  }

  private afterEvent(): boolean {
    if (this.failure !== undefined) return true;
    try {
      this.checker.afterEvent(this.liveReplicas());
    } catch (error) {
      this.fail(error);
      return true;
    }
    return false;
  }

  private *liveReplicas(): Iterable<[string, Replica]> {
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      for (const replica of node.replicas()) yield [node.nodeId, replica];
    }
  }

  /** Runs until `done()` holds, looking every 10 ms, at most `withinMs`; a liveness violation past it. */
  async until(what: string, withinMs: number, done: () => boolean): Promise<void> {
    const deadline = this.scheduler.nowMs + withinMs;
    while (!done()) {
      if (this.scheduler.nowMs >= deadline) throw new SimViolation(`liveness: no ${what} within ${withinMs} ms`);
      await this.runFor(10);
    }
  }

  /** Runs until `promise` settles (the clients' calls), at most `withinMs`. */
  async settle<T>(promise: Promise<T>, withinMs: number, what: string): Promise<T> {
    let settled: { value: T } | undefined;
    void promise.then((value) => {
      settled = { value };
    });
    await this.until(what, withinMs, () => settled !== undefined);
    return (settled as { value: T }).value;
  }

  /** Until this global time the manager also starts moves and leadership transfers (the chaos phase). */
  movesUntilMs = 0;

  /**
   * Starts every node and the manager (every {@link MANAGER_STEP_MS} it follows the leaders'
   * configurations, the map clients route by, and before {@link movesUntilMs} starts moves
   * and transfers), places every shard and waits for its first leader.
   */
  async start(): Promise<void> {
    for (const node of this.nodes.values()) node.start();
    const step = (): void => {
      this.manager.step(this.nowMs, this.nowMs < this.movesUntilMs);
      this.scheduler.after(MANAGER_STEP_MS, this.control, step);
    };
    this.scheduler.after(MANAGER_STEP_MS, this.control, step);
    await this.until('initial placement', 5_000, () => this.manager.bootstrap());
    await this.until('leader for every shard', 10_000, () => this.allShardsLed());
  }

  /** True when every shard has a leader on a running node. */
  allShardsLed(): boolean {
    for (let shardId = 0; shardId < this.scenario.shards; shardId++) if (this.manager.leaderOf(shardId) === undefined) return false;
    return true;
  }

  /** Ends every fault: nodes up and running, network whole and quiet, disks fast. */
  heal(): void {
    this.network.heal();
    this.network.faults = QUIET_NETWORK;
    for (const disk of this.disks.values()) disk.slowFor(0, 0);
    for (const node of this.nodes.values()) {
      node.resume();
      if (node.process?.alive !== true) node.start();
    }
  }

  /** Stops the clients and waits until their last operations finished or gave up. */
  async stopClients(): Promise<void> {
    this.clients.stop();
    await this.until('end of the clients\' operations', CLIENT_GIVE_UP_MS + 100, () => this.clients.idle);
  }

  /** Each replica of each shard as its node sees it: for failure reports. */
  describeShards(): string {
    const lines: string[] = [];
    for (let shardId = 0; shardId < this.scenario.shards; shardId++) {
      const parts: string[] = [];
      for (const node of this.nodes.values()) {
        if (!node.up) {
          parts.push(`${node.nodeId}:down`);
          continue;
        }
        const replica = node.host?.replica(shardId);
        if (replica === undefined) continue;
        const status = replica.rawNode.status();
        const { voters, learners } = replica.confState;
        parts.push(
          `${node.nodeId}/${replica.replicaId}:${status.role}${replica.removed ? '(removed)' : ''} t${status.term} lead${status.leaderId} ` +
            `c${status.commit} a${replica.machine.appliedIndex} last${replica.storage.lastIndex()} v[${voters.join(',')}] l[${learners.join(',')}]`,
        );
      }
      lines.push(`shard ${shardId} (map: ${this.manager.nodesOf(shardId).join(',')}): ${parts.join('; ')}`);
    }
    return lines.join('\n  ');
  }

  /** Every shard commits a new write within `withinMs` (one deadline for all). */
  async liveness(withinMs: number): Promise<void> {
    const deadlineMs = this.scheduler.nowMs + withinMs;
    for (let shardId = 0; shardId < this.scenario.shards; shardId++) {
      const key = this.keys.find((candidate) => this.shardOf(candidate) === shardId) as string;
      for (let attempt = 1; ; attempt++) {
        const remainingMs = deadlineMs - this.scheduler.nowMs;
        const stuck = (): SimViolation =>
          new SimViolation(`liveness: shard ${shardId} committed no write within ${withinMs} ms after healing\n  ${this.describeShards()}`);
        if (remainingMs <= 0) throw stuck();
        const write = this.clients.write(1_000 + shardId, key, `live.${shardId}.${attempt}`, attempt);
        const operation = await this.settle(write, remainingMs, `write to shard ${shardId}`).catch((error: unknown) => {
          throw error instanceof SimViolation ? stuck() : error;
        });
        if (operation?.status === 'ok') break;
      }
    }
  }

  /** Reads every key (the final reads of the history) within `withinMs`. */
  async finalReads(withinMs: number): Promise<void> {
    const deadlineMs = this.scheduler.nowMs + withinMs;
    for (const key of this.keys) {
      for (;;) {
        const remainingMs = deadlineMs - this.scheduler.nowMs;
        if (remainingMs <= 0) throw new SimViolation(`liveness: no final read of ${key} within ${withinMs} ms`);
        const operation = await this.settle(this.clients.read(FINAL_READ_CLIENT, key), remainingMs, `final read of ${key}`);
        if (operation?.status === 'ok') break;
      }
    }
  }

  /** Throws unless the clients' history is linearizable per key. */
  checkHistory(): void {
    const history = this.clients.history;
    const check = checkHistory(history);
    if (check.verdict === 'linearizable') return;
    const lines = check.keys.filter((key) => key.verdict !== 'linearizable').map((key) => {
      const named = (key.operationIds ?? []).map((id) => history.find((operation) => operation.id === id));
      const operations = named.filter((operation): operation is Operation => operation !== undefined).map(describeOperation);
      return `key ${key.key}: ${key.verdict}: ${key.reason ?? ''} ${operations.join('; ')}`;
    });
    throw new SimViolation(`history not linearizable:\n  ${lines.join('\n  ')}`);
  }
}
