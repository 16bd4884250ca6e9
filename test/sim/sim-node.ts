/**
 * One simulated storage node: a machine (its disk and its clock, which outlive any process)
 * and the process running on it — the real `RaftHost` with its replicas, state machines,
 * WAL on the simulated disk, node state files and transport, plus the `KvRequestExecutor`
 * clients call. The process can be killed (the page cache survives), lose power (unsynced
 * data goes the ways a kernel may lose it), be paused, and restart from its disk.
 */
import type { Logger, TextFileStore } from '../../src/common/index.js';
import { KvRequestExecutor } from '../../src/node/kv-service.js';
import { NodeStateFile } from '../../src/node/node-state.js';
import type { RaftHostEvents } from '../../src/node/node-metrics.js';
import { PeerDirectory } from '../../src/node/peer-directory.js';
import { RaftHost } from '../../src/node/raft-host.js';
import type { Replica } from '../../src/node/replica.js';
import { WalStorageProvider } from '../../src/node/replica-storage.js';
import type { FileSystem, RaftLogger, SeededRandom } from '../../src/raft/index.js';
import { checkedStorage } from './checked-storage.js';
import type { SimChecker } from './sim-checker.js';
import type { PowerLossPlan } from './sim-disk.js';
import type { SimNetwork } from './sim-network.js';
import { type SimClock, SimRuntime } from './sim-runtime.js';
import { SimProcess, type SimScheduler } from './sim-scheduler.js';

/** The disk of one machine, as the node sees it across its processes. */
export interface SimNodeDisk {
  /**
   * The file system of a new process; its operations complete through `schedule` (owned by
   * that process), and an inline fsync stalls it through `stall`.
   */
  attach(schedule: (delayMs: number, run: () => void) => void, stall: (durationMs: number) => void): FileSystem & TextFileStore;
  /** The process was killed: its pending operations never complete; the page cache stays. */
  kill(): void;
  /** Power was lost: like kill, and unsynced data is dropped, zeroed or torn (as `plan` says, else at random). */
  powerLoss(plan?: PowerLossPlan): void;
}

/** Raft settings of the simulated nodes. */
export interface SimNodeSettings {
  shardCount: number;
  tickIntervalMs: number;
  electionTick: number;
  heartbeatTick: number;
  snapshotIntervalEntries: number;
  retainedEntries: number;
  snapshotLogBytes?: number;
  retainedBytes?: number;
  snapshotBytesPerTurn?: number;
  leaseReads: boolean;
  /** WAL segment size and purge threshold; production defaults when absent. */
  wal?: { segmentBytes: number; purgeBytes: number };
  /** Snapshot streams a node sends at once; the production default when absent. */
  snapshotSendSlots?: number;
}

/** What every node of a run shares. */
export interface SimNodeContext {
  scheduler: SimScheduler;
  network: SimNetwork;
  checker: SimChecker;
  random: SeededRandom;
  logger: Logger;
  settings: SimNodeSettings;
  /** Every node id of the cluster (peers' addresses are their ids). */
  nodeIds: readonly string[];
  /** A failure outside any checker (a node that cannot start, a fatal error): fails the run. */
  fail(error: unknown): void;
}

const DATA_DIR = '/data';
const NO_METRICS = { record: (): void => undefined };

/** One machine and its current process. */
export class SimNode {
  process: SimProcess | undefined;
  host: RaftHost | undefined;
  executor: KvRequestExecutor | undefined;
  /** Processes started so far (restarts + 1). */
  incarnations = 0;
  /** Virtual ms its processes were held by inline fsyncs, since the start. */
  stalledMs = 0;

  constructor(
    readonly nodeId: string,
    private readonly context: SimNodeContext,
    readonly clock: SimClock,
    readonly disk: SimNodeDisk,
  ) {}

  /** True while a process runs and has finished starting. */
  get up(): boolean {
    return this.process?.alive === true && this.host !== undefined;
  }

  /** True while the process is stopped (SIGSTOP). */
  get paused(): boolean {
    return this.process !== undefined && this.process.pausedUntilMs > this.context.scheduler.nowMs;
  }

  /** Starts a process: recovers the WAL and every replica, then joins the network. */
  start(): void {
    if (this.process?.alive === true) return;
    const { scheduler } = this.context;
    this.incarnations += 1;
    const process = new SimProcess(`${this.nodeId}#${this.incarnations}`);
    this.process = process;
    scheduler.after(0, process, () => {
      this.boot(process).catch((error: unknown) => {
        if (process.alive) this.context.fail(new Error(`${this.nodeId} could not start: ${String(error)}`, { cause: error }));
      });
    });
  }

  private async boot(process: SimProcess): Promise<void> {
    const { scheduler, network, checker, settings, logger } = this.context;
    // An inline fsync holds the process as a blocked thread would: its events wait until
    // the fsync's latency has passed, and its WAL's clock (which times the fsync) reads that end.
    // (Stalls add up: two inline fsyncs in one slice hold it for both. A pause fault's end does not cut one short.)
    const stall = (durationMs: number): void => {
      if (!process.alive) return;
      process.stalledUntilMs = Math.max(scheduler.nowMs, process.stalledUntilMs) + durationMs;
      process.pausedUntilMs = Math.max(process.pausedUntilMs, process.stalledUntilMs);
      this.stalledMs += durationMs;
    };
    const files = this.disk.attach((delayMs, run) => scheduler.after(delayMs, process, run), stall);
    const nodeLogger = logger.child({ component: 'node', node: this.nodeId });
    const walClock = (): number => Math.max(scheduler.nowMs, process.stalledUntilMs) * this.clock.rate;
    const provider = await WalStorageProvider.open(DATA_DIR, raftLogger(nodeLogger), { fs: files, random: this.context.random, clock: walClock, ...settings.wal });
    if (!process.alive) return;
    const runtime = new SimRuntime(scheduler, process, this.clock, this.context.random);
    const state = new NodeStateFile(DATA_DIR, files);
    state.shardCount = settings.shardCount;
    const peers = new PeerDirectory(DATA_DIR, files);
    peers.update(this.context.nodeIds.filter((id) => id !== this.nodeId).map((nodeId) => ({ nodeId, address: nodeId })));
    const host = new RaftHost({
      nodeId: this.nodeId,
      logger: nodeLogger,
      storage: checkedStorage(provider, checker, this.nodeId),
      peers,
      state,
      runtime,
      links: network.links(this.nodeId, process),
      tickIntervalMs: settings.tickIntervalMs,
      electionTick: settings.electionTick,
      heartbeatTick: settings.heartbeatTick,
      snapshotIntervalEntries: settings.snapshotIntervalEntries,
      retainedEntries: settings.retainedEntries,
      ...(settings.snapshotLogBytes === undefined ? {} : { snapshotLogBytes: settings.snapshotLogBytes }),
      ...(settings.retainedBytes === undefined ? {} : { retainedBytes: settings.retainedBytes }),
      ...(settings.snapshotBytesPerTurn === undefined ? {} : { snapshotBytesPerTurn: settings.snapshotBytesPerTurn }),
      leaseReads: settings.leaseReads,
      ...(settings.snapshotSendSlots === undefined ? {} : { maxConcurrentSnapshotSends: settings.snapshotSendSlots }),
      events: this.events(),
      onFatal: (error) => {
        if (process.alive) this.context.fail(new Error(`${this.nodeId} stopped on a fatal error: ${String(error)}`, { cause: error }));
      },
    });
    // The send rule (sim-checker.ts) is checked where the host hands a message to its transport,
    // while the replica that made it still exists: a message may then wait in the transport's
    // backlog for a peer whose stream is not writable, and leave much later.
    const transport = host.transport;
    const send = transport.send.bind(transport);
    const sendSnapshot = transport.sendSnapshot.bind(transport);
    transport.send = (peer, message) => {
      checker.onSend(this.nodeId, message);
      send(peer, message);
    };
    transport.sendSnapshot = (peer, header, data) => {
      checker.onSend(this.nodeId, header);
      sendSnapshot(peer, header, data);
    };
    network.attach(this.nodeId, process, host);
    host.start();
    this.host = host;
    this.executor = new KvRequestExecutor({
      host, peers, metrics: NO_METRICS, runtime, address: this.nodeId, shardCount: () => settings.shardCount, closing: () => false,
    });
  }

  private events(): RaftHostEvents {
    const checker = this.context.checker;
    const where = (replica: Replica): string => `${this.nodeId}/${replica.replicaId}`;
    return {
      leaderChanged: () => undefined,
      proposalDropped: () => undefined,
      snapshotCreated: () => undefined,
      snapshotInstalled: () => undefined,
      keysExpired: () => undefined,
      readsServed: () => undefined,
      walSynced: () => undefined,
      entryApplied: (replica, entry) => checker.onApply(where(replica), replica, entry),
      messageRejected: (reason, detail) => checker.onRejected(this.nodeId, reason, detail),
    };
  }

  /** SIGKILL: the process is gone, its disk's page cache is not. */
  kill(): void {
    this.stop();
    this.disk.kill();
  }

  /** Power loss: the process is gone and unsynced data may be lost (`plan` fixes how, for scripted tests). */
  powerLoss(plan?: PowerLossPlan): void {
    this.stop();
    this.disk.powerLoss(plan);
  }

  private stop(): void {
    const process = this.process;
    if (process === undefined || !process.alive) return;
    process.alive = false;
    this.context.network.detach(this.nodeId);
    this.host = undefined;
    this.executor = undefined;
  }

  /** SIGSTOP for `durationMs`: nothing runs, the clock goes on. */
  pause(durationMs: number): void {
    const process = this.process;
    if (process === undefined || !process.alive) return;
    process.pausedUntilMs = Math.max(process.pausedUntilMs, this.context.scheduler.nowMs + durationMs);
  }

  /** Resumes a paused process now (an inline fsync's stall still runs its course). */
  resume(): void {
    if (this.process !== undefined) this.process.pausedUntilMs = this.process.stalledUntilMs;
  }

  /** The running process's replicas. */
  replicas(): Replica[] {
    return this.host === undefined ? [] : [...this.host.replicas()];
  }
}

/** The core's log lines, its info at debug (as the host does). */
function raftLogger(logger: Logger): RaftLogger {
  return {
    debug: (event, fields) => logger.debug(event, fields),
    info: (event, fields) => logger.debug(event, fields),
    warn: (event, fields) => logger.warn(event, fields),
    error: (event, fields) => logger.error(event, fields),
  };
}
