/**
 * The multi-Raft host: every replica of this node, one timer, one WAL, one
 * transport (C `store_raft.go` `raftTickLoop` + `scheduler.go`; T: groups share one
 * log with group commit). Replicas are created, recovered and destroyed here; placement
 * commands become control actions on them; the transport's reports reach them. How a
 * turn makes their Readies durable and sends them is `turn-loop.ts`; the fast failover
 * after a peer's stream breaks is `fast-failover.ts`.
 * @internal
 */
import type { Logger } from '../common/index.js';
import type { RaftMessage } from '../gen/kvstore/v1/raft.js';
import {
  ConfChangeType,
  type Message,
  MessageType,
  ProgressState,
  type RaftLogger,
  Role,
  SeededRandom,
  type WritableStorage,
} from '../raft/index.js';
import { FastFailover } from './fast-failover.js';
import { GrpcPeerLinks } from './grpc-peer-links.js';
import { InboundGate } from './inbound-gate.js';
import { KvStateMachine, type ShardMember } from './kv-state-machine.js';
import { LeaderWait } from './leader-wait.js';
import { PeerLiveness } from './peer-liveness.js';
import { QUIESCE_AFTER_TICKS, wakeLeaderMessage } from './quiescence.js';
import { fromWireMessage, toWireMessage } from './message-codec.js';
import type { NodeStateFile } from './node-state.js';
import type { RaftHostEvents } from './node-metrics.js';
import type { PeerDirectory } from './peer-directory.js';
import type { PeerLinks } from './peer-links.js';
import { RaftTransport, type TransportReceiver, type TransportReporter } from './raft-transport.js';
import { confChangeFor } from './conf-change-context.js';
import { type MessageRouter, Replica } from './replica.js';
import { leaseTimings } from './replica-reads.js';
import type { ReplicaStorageProvider } from './replica-storage.js';
import { type NodeRuntime, systemRuntime } from './runtime.js';
import { TurnLoop } from './turn-loop.js';
import { SNAPSHOT_BYTES_PER_TURN, SnapshotBudget, snapshotSpread } from './snapshot-budget.js';

/** See {@link RaftHostOptions.snapshotLogBytes}. */
export const DEFAULT_SNAPSHOT_LOG_BYTES = 2 * 1024 * 1024;
/** See {@link RaftHostOptions.retainedBytes}. */
export const DEFAULT_RETAINED_BYTES = 1024 * 1024;

/** Host settings; every field has a default suited to a node on one machine. */
export interface RaftHostOptions {
  nodeId: string;
  logger: Logger;
  storage: ReplicaStorageProvider;
  peers: PeerDirectory;
  state: NodeStateFile;
  /** Tick period of every group. Default 50 ms. */
  tickIntervalMs?: number;
  /** Election timeout in ticks, randomised in [n, 2n) by the core. Default 10 (0.5–1 s at 50 ms). */
  electionTick?: number;
  /** Leader heartbeat period in ticks. Default 2 (100 ms at 50 ms). */
  heartbeatTick?: number;
  /** Snapshot and compact every this many applied entries. Default 10,000. */
  snapshotIntervalEntries?: number;
  /**
   * Also snapshot once the entries applied since the last snapshot hold this many bytes (or
   * the last snapshot's size, if more). Default 2 MiB: with 64 busy groups of 1 KiB values a
   * node holds about 200 MB of log instead of 800 MB.
   */
  snapshotLogBytes?: number;
  /** Entries kept behind a snapshot so slightly slow followers catch up without one. Default 2,000. */
  retainedEntries?: number;
  /** At most about this many bytes of them. Default 1 MiB. */
  retainedBytes?: number;
  /**
   * Snapshot bytes encoded per turn, at least one snapshot (`snapshot-budget.ts`). Default 128 KiB;
   * the simulator, whose states are tiny, also runs with 1 (one snapshot a turn) and 1 KiB.
   */
  snapshotBytesPerTurn?: number;
  /** Snapshot streams sent at once (`RaftTransport`); default 2. The simulator also runs with 1. */
  maxConcurrentSnapshotSends?: number;
  /** Called once when the host cannot go on (WAL I/O failure, broken invariant). */
  onFatal: (error: unknown) => void;
  /** Receives leader changes, dropped proposals, snapshots and fsync times for the metrics endpoint. */
  events?: RaftHostEvents;
  /** TEST ONLY: leaders read without ReadIndex (see `ReplicaOptions.unsafeStaleReads`). */
  unsafeStaleReads?: boolean;
  /**
   * Leaders answer reads under a lease instead of a ReadIndex round each (see `replica-reads.ts`).
   * Default true. Off, no read depends on time at all (`kvstore node --no-lease-reads`).
   */
  leaseReads?: boolean;
  /** Clocks, timers and random seeds. Default: this process's ({@link systemRuntime}); the simulator's in test/sim. */
  runtime?: NodeRuntime;
  /** The wire to peer nodes. Default: gRPC. */
  links?: PeerLinks;
}

/** How often the host checks whether the WAL needs replicas to snapshot (ticks: 1 s at the defaults). */
const PURGE_CHECK_TICKS = 20;

/** A replica to create: bootstrap when `initialMembers` is non-empty. */
export interface CreateReplicaSpec {
  shardId: number;
  replicaId: number;
  initialMembers: ShardMember[];
  campaign: boolean;
}

/** Runs every replica of the node. */
export class RaftHost implements TransportReceiver, TransportReporter, MessageRouter {
  readonly nodeId: string;
  readonly transport: RaftTransport;
  /** Checks every message and snapshot from a peer before a replica sees it (`inbound-gate.ts`). */
  readonly inbound: InboundGate;
  private readonly replicasByShard = new Map<number, Replica>();
  private readonly logger: Logger;
  private readonly options: RaftHostOptions;
  private readonly runtime: NodeRuntime;
  private readonly turns: TurnLoop;
  /** Snapshot bytes per turn, shared by every replica (`snapshot-budget.ts`). */
  private readonly snapshotBudget: SnapshotBudget;
  private readonly failover: FastFailover;
  /**
   * Peer nodes whose stream failed and that sent nothing since: a follower whose leader is
   * on one holds client requests in {@link leaderWait} rather than pointing them there.
   */
  private readonly suspectNodes = new Set<string>();
  /** When each peer node was last heard from: what wakes quiesced groups when one dies (`quiescence.ts`). */
  private readonly liveness: PeerLiveness;
  /** Client requests at followers waiting for their shard's leader (`leader-wait.ts`). */
  readonly leaderWait: LeaderWait;
  private readonly electionTick: number;
  private readonly tickIntervalMs: number;
  /** A leader's heartbeat period (ms): peers get a batch at least this often (`RaftTransport.keepAlive`). */
  private readonly heartbeatMs: number;
  private stopTicking: (() => void) | undefined;
  /** Groups this host's leaders put to sleep since start (tests, the simulator's summary). */
  quiescences = 0;
  /** Ticks since start (the WAL purge check runs every {@link PURGE_CHECK_TICKS}). */
  private ticks = 0;
  private closed = false;
  /** A leader's read lease (ms): `LEASE_RATIO` (replica-reads.ts) of the shortest election timeout; 0 when lease reads are off. */
  readonly leaseMs: number;
  /**
   * How long a follower keeps its promise not to help elect another leader after its
   * leader's last message, and how long a recovered replica ignores vote requests (ms):
   * `PROMISE_RATIO` (replica-reads.ts) of the shortest election timeout, so past every lease it backs.
   */
  readonly voteGuardMs: number;

  constructor(options: RaftHostOptions) {
    this.options = options;
    this.nodeId = options.nodeId;
    this.logger = options.logger;
    this.runtime = options.runtime ?? systemRuntime;
    this.electionTick = options.electionTick ?? 10;
    this.tickIntervalMs = options.tickIntervalMs ?? 50;
    this.snapshotBudget = new SnapshotBudget(options.snapshotBytesPerTurn ?? SNAPSHOT_BYTES_PER_TURN);
    this.heartbeatMs = (options.heartbeatTick ?? 2) * this.tickIntervalMs;
    ({ leaseMs: this.leaseMs, voteGuardMs: this.voteGuardMs } = leaseTimings(this.electionTick * this.tickIntervalMs, options.leaseReads !== false));
    // A peer is silent after an election timeout without a batch; live ones send one every heartbeat period at least.
    this.liveness = new PeerLiveness(this.electionTick * this.tickIntervalMs, (nodeId) => nodeId !== this.nodeId && options.peers.get(nodeId) !== undefined);
    this.transport = new RaftTransport({
      nodeId: options.nodeId,
      peers: options.peers,
      logger: options.logger,
      reporter: this,
      links: options.links ?? new GrpcPeerLinks(options.nodeId),
      runtime: this.runtime,
      ...(options.maxConcurrentSnapshotSends === undefined ? {} : { maxConcurrentSnapshotSends: options.maxConcurrentSnapshotSends }),
    });
    this.turns = new TurnLoop({
      runtime: this.runtime,
      sync: () => options.storage.sync(),
      flush: () => this.transport.flush(),
      router: this,
      events: options.events,
      onFatal: (error) => this.fail(error),
      snapshotBudget: this.snapshotBudget,
    });
    this.failover = new FastFailover(this, this.runtime, { tickIntervalMs: this.tickIntervalMs });
    // One election timeout: long enough for the fast failover's election (~0.4 s after a kill),
    // short enough that a request held in vain is answered well inside a client's attempt.
    this.leaderWait = new LeaderWait(this.runtime, { maxWaitMs: this.electionTick * this.tickIntervalMs, maxWaiting: MAX_LEADER_WAITERS });
    this.inbound = new InboundGate({
      nodeId: options.nodeId,
      logger: options.logger,
      runtime: this.runtime,
      replica: (shardId) => this.replica(shardId),
      shardCount: () => options.state.shardCount,
      events: options.events,
    });
  }

  /** Counters for tests and metrics: turns run and WAL syncs started. */
  get stats(): { turns: number; lightTurns: number; syncs: number } {
    return this.turns.stats;
  }

  /** Bytes of WAL on disk (metrics, tests). */
  logBytes(): number {
    return this.options.storage.logBytes();
  }

  /** True while the WAL fsyncs inline, on this thread (`fsync-policy.ts`): metrics, tests. */
  fsyncsInline(): boolean {
    return this.options.storage.fsyncsInline();
  }

  /** True once the host stopped (closed, or a fatal error). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Re-creates every replica recorded in the node state from its storage, then starts the timer. */
  start(): void {
    for (const [shardId, record] of this.options.state.replicas()) {
      const storage = this.options.storage.recovered(shardId);
      if (storage === undefined) {
        // Recorded but never persisted anything: recreate it as it was created.
        this.addReplica({ shardId, replicaId: record.replicaId, initialMembers: record.bootstrapMembers, campaign: false }, false);
        continue;
      }
      const snapshot = storage.snapshot();
      const machine =
        snapshot.ok && snapshot.value.metadata.index > 0 ? KvStateMachine.fromSnapshot(snapshot.value.data)
        : record.bootstrapMembers.length > 0 ? KvStateMachine.bootstrap(record.bootstrapMembers)
        : new KvStateMachine();
      this.install(shardId, record.replicaId, storage, machine, true);
      this.logger.info('replica recovered', { shard: shardId, replica: record.replicaId, applied: machine.appliedIndex });
    }
    for (const shardId of this.options.storage.recoveredShardIds()) {
      if (this.options.state.replica(shardId) === undefined) {
        this.logger.warn('dropping WAL group with no replica record', { shard: shardId });
        this.options.storage.drop(shardId);
      }
    }
    this.stopTicking = this.runtime.runEvery(this.tickIntervalMs, () => this.onTick());
  }

  private install(shardId: number, replicaId: number, storage: WritableStorage, machine: KvStateMachine, recovered = false): Replica {
    const logger = this.logger.child({ shard: shardId });
    const replica = new Replica({
      shardId,
      replicaId,
      storage,
      machine,
      logger,
      snapshotIntervalEntries: this.options.snapshotIntervalEntries ?? 10_000,
      snapshotLogBytes: this.options.snapshotLogBytes ?? DEFAULT_SNAPSHOT_LOG_BYTES,
      snapshotSpread: snapshotSpread(shardId),
      retainedEntries: this.options.retainedEntries ?? 2_000,
      retainedBytes: this.options.retainedBytes ?? DEFAULT_RETAINED_BYTES,
      snapshotBudget: this.snapshotBudget,
      ...(this.options.events === undefined ? {} : { events: this.options.events }),
      ...(this.options.unsafeStaleReads === true ? { unsafeStaleReads: true } : {}),
      runtime: this.runtime,
      leaseMs: this.leaseMs,
      voteGuardMs: this.voteGuardMs,
      recovered,
      leaderKnown: () => this.leaderWait.wake(shardId),
      raft: {
        electionTick: this.electionTick,
        heartbeatTick: this.options.heartbeatTick ?? 2,
        maxSizePerMsg: 1024 * 1024,
        maxInflightMsgs: 256,
        maxUncommittedEntriesBytes: 64 * 1024 * 1024,
        preVote: true,
        checkQuorum: true,
        // Half the Raft messages of a write, and no heartbeats in busy groups; followers apply
        // up to two heartbeats later, which nothing on a follower waits for (see RaftConfig).
        piggyback: true,
        random: new SeededRandom(this.runtime.randomSeed()),
        logger: raftLogger(logger),
      },
    });
    this.replicasByShard.set(shardId, replica);
    this.mark(replica);
    return replica;
  }

  /** The local replica of a shard, if hosted. */
  replica(shardId: number): Replica | undefined {
    return this.replicasByShard.get(shardId);
  }

  /** Every hosted replica. */
  replicas(): IterableIterator<Replica> {
    return this.replicasByShard.values();
  }

  /**
   * Creates a replica (idempotent: an existing replica with the same id is kept). Its
   * record is durable before it takes part in the group.
   */
  createReplica(spec: CreateReplicaSpec): void {
    this.addReplica(spec, true);
  }

  private addReplica(spec: CreateReplicaSpec, record: boolean): void {
    const existing = this.replicasByShard.get(spec.shardId);
    if (existing !== undefined) {
      if (existing.replicaId !== spec.replicaId) {
        this.logger.warn('create replica refused: shard hosts another replica', {
          shard: spec.shardId, replica: spec.replicaId, existing: existing.replicaId,
        });
      }
      return;
    }
    const bootstrap = spec.initialMembers.length > 0;
    if (record) this.options.state.setReplica(spec.shardId, { replicaId: spec.replicaId, bootstrapMembers: spec.initialMembers });
    const storage = this.options.storage.create(
      spec.shardId,
      bootstrap ? { voters: spec.initialMembers.map((member) => member.replicaId), learners: [] } : undefined,
    );
    const machine = bootstrap ? KvStateMachine.bootstrap(spec.initialMembers) : new KvStateMachine();
    const replica = this.install(spec.shardId, spec.replicaId, storage, machine);
    if (spec.campaign && bootstrap) replica.control({ kind: 'campaign' });
    this.logger.info('replica created', {
      shard: spec.shardId, replica: spec.replicaId, bootstrap, members: spec.initialMembers.map((member) => member.nodeId),
    });
  }

  /** Destroys a replica that is no longer a member, with its data. Idempotent. */
  destroyReplica(shardId: number, replicaId: number): void {
    const replica = this.replicasByShard.get(shardId);
    if (replica === undefined || replica.replicaId !== replicaId) return;
    replica.removed = true;
    replica.destroyed = true;
    replica.failAll('UNAVAILABLE');
    this.replicasByShard.delete(shardId);
    this.turns.forget(replica);
    this.options.storage.drop(shardId);
    this.options.state.deleteReplica(shardId);
    this.logger.info('replica destroyed', { shard: shardId, replica: replicaId });
  }

  /** Proposes adding `replicaId` on `nodeId` as a learner (leader only; idempotent). */
  addLearner(shardId: number, replicaId: number, nodeId: string): void {
    const replica = this.leaderReplica(shardId);
    if (replica === undefined || replica.nodeIdOf(replicaId) !== undefined && isMember(replica, replicaId)) return;
    replica.control({ kind: 'conf-change', change: confChangeFor(ConfChangeType.AddLearner, replicaId, nodeId) });
    this.mark(replica);
  }

  /** Proposes promoting a learner to voter (leader only; idempotent). */
  promoteLearner(shardId: number, replicaId: number): void {
    const replica = this.leaderReplica(shardId);
    if (replica === undefined || !replica.confState.learners.includes(replicaId)) return;
    const nodeId = replica.nodeIdOf(replicaId) ?? '';
    replica.control({ kind: 'conf-change', change: confChangeFor(ConfChangeType.AddVoter, replicaId, nodeId) });
    this.mark(replica);
  }

  /**
   * Proposes removing a member (leader only; idempotent). A leader asked to remove
   * itself first hands leadership to the most caught-up voter; the manager repeats
   * the command, which then reaches the new leader.
   */
  removeMember(shardId: number, replicaId: number): void {
    const replica = this.leaderReplica(shardId);
    if (replica === undefined || !isMember(replica, replicaId)) return;
    if (replicaId === replica.replicaId) {
      const successor = bestSuccessor(replica);
      if (successor !== undefined) replica.control({ kind: 'transfer-leader', to: successor });
    } else {
      const nodeId = replica.nodeIdOf(replicaId) ?? '';
      replica.control({ kind: 'conf-change', change: confChangeFor(ConfChangeType.RemoveReplica, replicaId, nodeId) });
    }
    this.mark(replica);
  }

  /** Asks the leader to hand leadership to `toReplicaId`. */
  transferLeader(shardId: number, toReplicaId: number): void {
    const replica = this.leaderReplica(shardId);
    if (replica === undefined || toReplicaId === replica.replicaId || !replica.confState.voters.includes(toReplicaId)) return;
    replica.control({ kind: 'transfer-leader', to: toReplicaId });
    this.mark(replica);
  }

  private leaderReplica(shardId: number): Replica | undefined {
    const replica = this.replicasByShard.get(shardId);
    if (replica === undefined || replica.removed || replica.role !== Role.Leader) return undefined;
    return replica;
  }

  /** Marks a replica for the next turn and makes sure a turn will run. */
  mark(replica: Replica): void {
    this.turns.mark(replica);
  }

  /** True while `replica` is this node's replica of its shard (not destroyed). */
  isHosted(replica: Replica): boolean {
    return this.replicasByShard.get(replica.shardId) === replica;
  }

  private onTick(): void {
    // A write the storage makes on its own (a snapshot's file, wal.ts) failed: no sync may
    // report it on an idle node, and the node cannot go on.
    const failure = this.options.storage.failure();
    if (failure !== undefined) {
      this.fail(failure);
      return;
    }
    const nowMs = this.runtime.monotonicMs();
    if (++this.ticks % PURGE_CHECK_TICKS === 0) this.purgeLog();
    this.checkPeers(nowMs);
    let quiesced = false;
    for (const replica of this.replicasByShard.values()) {
      if (replica.quiesced) continue; // it sleeps: no ticks, and no request waits on it (quiescence.ts)
      replica.expire(nowMs);
      if (replica.role === Role.Leader && ++replica.idleTicks >= QUIESCE_AFTER_TICKS && this.quiesce(replica, nowMs)) {
        quiesced = true;
        continue;
      }
      // A removed replica ticks on: it may still have to vote (see Replica.removed).
      replica.pendingTicks += 1;
      replica.expiryTick(nowMs);
      this.mark(replica);
    }
    // Quiesce heartbeats leave now: sleeping groups take no turn.
    if (quiesced) this.transport.flush();
    this.transport.keepAlive(this.heartbeatMs);
    this.turns.ticked();
  }

  /** Puts a leader's idle group to sleep if it may (`quiescence.ts`); true if it did. */
  private quiesce(replica: Replica, nowMs: number): boolean {
    if (this.turns.isSyncing(replica)) return false;
    const live = (replicaId: number): boolean => {
      const nodeId = replica.nodeIdOf(replicaId);
      return nodeId !== undefined && this.liveness.isLive(nodeId, nowMs) && !this.suspectNodes.has(nodeId);
    };
    const heartbeats = replica.quiesce(live);
    if (heartbeats === undefined) return false;
    for (const heartbeat of heartbeats) this.route(replica, heartbeat, true);
    this.quiescences += 1;
    this.logger.debug('group quiesced', { shard: replica.shardId, term: replica.term, index: replica.machine.appliedIndex });
    return true;
  }

  /** Wakes the quiesced groups with a member on a peer that fell silent or was heard again (`peer-liveness.ts`). */
  private checkPeers(nowMs: number): void {
    const { silent, revived } = this.liveness.changes(nowMs);
    for (const nodeId of silent) {
      this.logger.debug('peer silent: waking the groups it takes part in', { peer: nodeId });
      this.wakeGroupsOn(nodeId);
    }
    for (const nodeId of revived) {
      this.logger.debug('peer heard again: waking the groups it takes part in', { peer: nodeId });
      this.wakeGroupsOn(nodeId);
    }
  }

  /**
   * Wakes every quiesced replica with a member on `nodeId`: it ticks again from the next tick.
   * A follower whose leader is elsewhere wakes that leader too.
   */
  private wakeGroupsOn(nodeId: string): void {
    for (const replica of this.replicasByShard.values()) {
      if (!replica.quiesced || !replica.members().some((member) => member.nodeId === nodeId)) continue;
      const leaderNodeId = replica.leaderId === 0 ? undefined : replica.nodeIdOf(replica.leaderId);
      if (replica.role === Role.Follower && leaderNodeId !== nodeId) this.wakeLeaderOf(replica);
      else replica.wake();
      this.mark(replica);
    }
  }

  /**
   * Wakes a sleeping follower and its leader: an unflagged heartbeat answer (what else a
   * follower may send its leader unasked), carrying only its durable term.
   */
  private wakeLeaderOf(replica: Replica): void {
    replica.wake();
    const leader = replica.leaderId;
    if (leader === 0 || replica.term !== replica.rawNode.term()) return;
    this.route(replica, wakeLeaderMessage(replica.replicaId, leader, replica.term));
  }

  /**
   * Keeps the WAL bounded: asks the replicas whose entries keep its oldest segments to
   * snapshot, once the log on disk passed its purge threshold (`wal-purge.ts`).
   */
  private purgeLog(): void {
    const pinning = this.options.storage.groupsPinningLog();
    if (pinning.length === 0) return;
    this.logger.debug('wal over its purge threshold: snapshotting the replicas that pin it', { shards: pinning, bytes: this.options.storage.logBytes() });
    for (const shardId of pinning) {
      const replica = this.replicasByShard.get(shardId);
      if (replica === undefined || replica.removed) continue;
      replica.requestSnapshot();
      this.mark(replica);
    }
  }

  private fail(error: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.options.onFatal(error);
  }

  // ---- transport ---------------------------------------------------------------------------------

  /** Sends a replica's message to the node hosting its destination; `quiesce` flags a quiesce heartbeat. */
  route(replica: Replica, message: Message, quiesce = false): void {
    const nodeId = replica.nodeIdOf(message.to);
    if (nodeId === undefined || nodeId === this.nodeId) {
      this.logger.debug('no node for replica', { shard: replica.shardId, to: message.to });
      if (message.type === MessageType.Snapshot) replica.control({ kind: 'snapshot-status', replicaId: message.to, status: 'failure' });
      else replica.control({ kind: 'unreachable', replicaId: message.to });
      return;
    }
    if (message.type === MessageType.Snapshot && message.snapshot !== undefined) {
      this.transport.sendSnapshot(nodeId, toWireMessage(replica.shardId, message, true), message.snapshot.data);
      return;
    }
    const wire = toWireMessage(replica.shardId, message);
    // A sleeping replica's heartbeat answers are flagged: they must not wake its leader.
    if (quiesce || (message.type === MessageType.HeartbeatResponse && replica.quiesced)) wire.quiesce = true;
    this.transport.send(nodeId, wire);
  }

  /** A batch arrived from a peer node: it is alive. */
  heardFrom(fromNodeId: string): void {
    this.liveness.heard(fromNodeId, this.runtime.monotonicMs());
    this.unsuspect(fromNodeId);
  }

  /**
   * A suspect node sent something: it is alive after all, so requests held for its replicas'
   * leadership go on (they get that leader's address, or are served here if a leader changed
   * meanwhile).
   */
  private unsuspect(nodeId: string): void {
    if (this.suspectNodes.size === 0 || !this.suspectNodes.delete(nodeId)) return;
    this.leaderWait.wakeWhere((shardId) => {
      const waiting = this.replicasByShard.get(shardId);
      return waiting === undefined || waiting.removed || waiting.role === Role.Leader || !this.leaderUnusable(waiting);
    });
  }

  /** Routes a received message to the local replica `(shardId, to)`; unknown ones are dropped. */
  deliver(fromNodeId: string, wire: RaftMessage, snapshotData?: Buffer): void {
    if (!this.inbound.admit(fromNodeId, wire, snapshotData)) return;
    this.unsuspect(fromNodeId);
    const replica = this.replicasByShard.get(wire.shardId);
    if (replica === undefined || replica.replicaId !== wire.to) {
      this.logger.debug('message for unknown replica dropped', { shard: wire.shardId, to: wire.to, from: fromNodeId });
      return;
    }
    if (!replica.machine.members.has(wire.from)) replica.learnedNodes.set(wire.from, fromNodeId);
    // A sleeping follower woken by another than its leader (a candidate's pre-vote) wakes the
    // leader too: a sleeping leader sends no heartbeats, and without them the follower would
    // time out and help elect the candidate.
    if (replica.quiesced && replica.role === Role.Follower && wire.from !== replica.leaderId && wire.quiesce !== true) this.wakeLeaderOf(replica);
    replica.receive(fromWireMessage(wire, snapshotData), wire.quiesce === true);
    this.mark(replica);
  }

  /**
   * A whole snapshot from a peer's snapshot stream: checked BEFORE its replica or storage
   * sees any of it (`inbound-gate.ts`), then routed like any message. False refuses it: the
   * stream answers not accepted and the sender retries later.
   */
  deliverSnapshot(fromNodeId: string, wire: RaftMessage, data: Buffer, dataCrc32c: number | undefined): boolean {
    if (!this.inbound.admitSnapshot(fromNodeId, wire, data, dataCrc32c)) return false;
    this.deliver(fromNodeId, wire, data);
    return true;
  }

  /** A peer's snapshot stream that made no whole snapshot: counted and logged by the gate. */
  refuseSnapshotStream(fromNodeId: string, detail: string): void {
    this.inbound.refuseStream(fromNodeId, detail);
  }

  /** The transport dropped a message to `(shardId, replicaId)`. */
  reportUnreachable(shardId: number, replicaId: number): void {
    const replica = this.replicasByShard.get(shardId);
    if (replica === undefined || replica.removed) return;
    replica.control({ kind: 'unreachable', replicaId });
    this.mark(replica);
  }

  /** A snapshot stream to `(shardId, replicaId)` ended. */
  reportSnapshot(shardId: number, replicaId: number, status: 'finish' | 'failure'): void {
    const replica = this.replicasByShard.get(shardId);
    if (replica === undefined || replica.removed) return;
    replica.control({ kind: 'snapshot-status', replicaId, status });
    this.mark(replica);
  }

  /**
   * Whether the snapshot of `term` to `(shardId, replicaId)`, which waited for a send slot,
   * is still wanted: this replica still leads in that term and still has the follower
   * waiting for a snapshot. One that is not (leadership lost, follower caught up or gone)
   * is not sent; the replica's progress no longer expects its report.
   */
  snapshotWanted(shardId: number, replicaId: number, term: number): boolean {
    const replica = this.replicasByShard.get(shardId);
    if (replica === undefined || replica.removed) return false;
    const status = replica.rawNode.status();
    return status.role === Role.Leader && status.term === term && status.progress?.get(replicaId)?.state === ProgressState.Snapshot;
  }

  /** The stream to `nodeId` failed: the node may have crashed (see `fast-failover.ts`). */
  reportPeerFailed(nodeId: string): void {
    this.suspectNodes.add(nodeId);
    this.wakeGroupsOn(nodeId);
    this.failover.peerFailed(nodeId);
  }

  /**
   * True when a client request at this follower replica should wait for a leader rather than be
   * answered now: the shard has no known leader (an election is running), or its leader is on a
   * node whose stream failed and that has sent nothing since (it may be dead; its successor is
   * being elected). Pointing the client at it would only send it into backoff.
   */
  leaderUnusable(replica: Replica): boolean {
    if (replica.leaderId === 0) return true;
    const leaderNodeId = replica.nodeIdOf(replica.leaderId);
    return leaderNodeId !== undefined && this.suspectNodes.has(leaderNodeId);
  }

  /** Stops the timer, finishes the running turn, fails waiting requests, closes the transport and syncs storage. */
  async close(): Promise<void> {
    this.stopTicking?.();
    this.stopTicking = undefined;
    this.closed = true;
    this.leaderWait.wakeAll(); // they answer UNAVAILABLE: the node is stopping
    await this.turns.close();
    for (const replica of this.replicasByShard.values()) replica.failAll('UNAVAILABLE');
    await this.transport.close();
    await this.options.storage.close();
  }
}

/** Most client requests held at once, node-wide, waiting for a shard's leader (past it they are answered at once). */
const MAX_LEADER_WAITERS = 4096;

function isMember(replica: Replica, replicaId: number): boolean {
  return replica.confState.voters.includes(replicaId) || replica.confState.learners.includes(replicaId);
}

/** The voter other than the leader with the highest match index. */
function bestSuccessor(replica: Replica): number | undefined {
  const progress = replica.rawNode.status().progress;
  let best: number | undefined;
  let bestMatch = -1;
  for (const voter of replica.confState.voters) {
    if (voter === replica.replicaId) continue;
    const match = progress?.get(voter)?.match ?? 0;
    if (match > bestMatch) {
      best = voter;
      bestMatch = match;
    }
  }
  return best;
}

/** The core's events at info are ones the node logs itself with node context (role, snapshots, membership): keep them at debug. */
function raftLogger(logger: Logger): RaftLogger {
  return {
    debug: (event, fields) => logger.debug(event, fields),
    info: (event, fields) => logger.debug(event, fields),
    warn: (event, fields) => logger.warn(event, fields),
    error: (event, fields) => logger.error(event, fields),
  };
}
