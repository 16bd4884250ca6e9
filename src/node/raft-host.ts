/**
 * The multi-Raft host: every replica of this node, one timer, one WAL, one
 * transport (C `store_raft.go` `raftTickLoop` + `scheduler.go`; T: groups share one
 * log with group commit).
 *
 * Inputs (ticks, messages, proposals, reads, placement actions) only queue work on
 * a replica and mark it. The host loop then runs turns; in each turn every marked
 * replica runs at most once:
 *
 * 1. step its queued inputs into its RawNode;
 * 2. take its Ready and write hard state, entries and snapshot into the shared WAL;
 * 3. apply committed entries this replica already made durable in earlier turns and
 *    answer the reads they unblock — they need not wait for this turn's fsync;
 * 4. ONE `sync()` for all replicas — every write of the turn is durable BEFORE
 *    step 5 (the Ready contract: persist before sending what depends on it);
 * 5. send the remaining messages (follower acks, votes), apply the rest, advance;
 * 6. flush the transport: one `SendRequest` per peer node for the whole turn.
 *
 * A Ready that needs no sync (heartbeats, read-index answers, commit-index moves) is
 * handled in its turn without waiting for any fsync. Turns do not overlap a sync, and
 * inputs arriving meanwhile wait for the next turn, so the busier the node the more
 * work each fsync covers.
 * @internal
 */
import { randomInt } from 'node:crypto';
import type { Logger } from '../common/index.js';
import type { RaftMessage } from '../gen/kvstore/v1/raft.js';
import {
  ConfChangeType,
  type Message,
  MessageType,
  type RaftLogger,
  type Ready,
  Role,
  SeededRandom,
  type WritableStorage,
} from '../raft/index.js';
import { KvStateMachine, type ShardMember } from './kv-state-machine.js';
import { fromWireMessage, toWireMessage } from './message-codec.js';
import type { NodeStateFile } from './node-state.js';
import type { RaftHostEvents } from './node-metrics.js';
import type { PeerDirectory } from './peer-directory.js';
import { RaftTransport, type TransportReceiver, type TransportReporter } from './raft-transport.js';
import { confChangeFor, type MessageRouter, Replica } from './replica.js';
import type { ReplicaStorageProvider } from './replica-storage.js';

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
  /** Entries kept behind a snapshot so slightly slow followers catch up without one. Default 2,000. */
  retainedEntries?: number;
  /** Called once when the host cannot go on (WAL I/O failure, broken invariant). */
  onFatal: (error: unknown) => void;
  /** Receives leader changes, dropped proposals, snapshots and fsync times for the metrics endpoint. */
  events?: RaftHostEvents;
  /** TEST ONLY: leaders read without ReadIndex (see `ReplicaOptions.unsafeStaleReads`). */
  unsafeStaleReads?: boolean;
  /**
   * Leaders answer reads under a lease instead of a ReadIndex round each (see {@link Replica}).
   * Default true. Off, no read depends on time at all (`kvstore node --no-lease-reads`).
   */
  leaseReads?: boolean;
}

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
  private readonly replicasByShard = new Map<number, Replica>();
  private readonly marked = new Set<Replica>();
  private readonly logger: Logger;
  private readonly options: RaftHostOptions;
  private timer: NodeJS.Timeout | undefined;
  private turnScheduled = false;
  /** Replicas whose Ready waits for a WAL sync: they take no new Ready until it ends. */
  private readonly syncing = new Set<Replica>();
  /** Syncs on disk (or queued in the WAL) with the Readies that wait for them. */
  private readonly syncsInFlight = new Set<Promise<void>>();
  private closed = false;
  /** Counters for tests and metrics. */
  readonly stats = { turns: 0, syncs: 0 };
  /** A leader's read lease (ms): 40% of the shortest election timeout; 0 when lease reads are off. */
  readonly leaseMs: number;
  /**
   * How long a follower keeps its promise not to vote after a leader's message when the
   * fast failover cuts the election timeout short, and how long a recovered replica ignores
   * vote requests (ms): 60% of the shortest election timeout, so past every lease it backs.
   */
  readonly voteGuardMs: number;

  constructor(options: RaftHostOptions) {
    this.options = options;
    this.nodeId = options.nodeId;
    this.logger = options.logger;
    const electionTimeoutMs = (options.electionTick ?? 10) * (options.tickIntervalMs ?? 50);
    this.leaseMs = options.leaseReads === false ? 0 : Math.floor(electionTimeoutMs * 0.4);
    this.voteGuardMs = this.leaseMs === 0 ? 0 : Math.ceil(electionTimeoutMs * 0.6);
    this.transport = new RaftTransport({ nodeId: options.nodeId, peers: options.peers, logger: options.logger, reporter: this });
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
      this.install(shardId, record.replicaId, storage, machine, this.voteGuardMs);
      this.logger.info('replica recovered', { shard: shardId, replica: record.replicaId, applied: machine.appliedIndex });
    }
    for (const shardId of this.options.storage.recoveredShardIds()) {
      if (this.options.state.replica(shardId) === undefined) {
        this.logger.warn('dropping WAL group with no replica record', { shard: shardId });
        this.options.storage.drop(shardId);
      }
    }
    const tickIntervalMs = this.options.tickIntervalMs ?? 50;
    this.timer = setInterval(() => this.onTick(), tickIntervalMs);
    this.timer.unref();
  }

  private install(shardId: number, replicaId: number, storage: WritableStorage, machine: KvStateMachine, voteGuardMs = 0): Replica {
    const logger = this.logger.child({ shard: shardId });
    const replica = new Replica({
      shardId,
      replicaId,
      storage,
      machine,
      logger,
      snapshotIntervalEntries: this.options.snapshotIntervalEntries ?? 10_000,
      retainedEntries: this.options.retainedEntries ?? 2_000,
      ...(this.options.events === undefined ? {} : { events: this.options.events }),
      ...(this.options.unsafeStaleReads === true ? { unsafeStaleReads: true } : {}),
      leaseMs: this.leaseMs,
      voteGuardMs,
      raft: {
        electionTick: this.options.electionTick ?? 10,
        heartbeatTick: this.options.heartbeatTick ?? 2,
        maxSizePerMsg: 1024 * 1024,
        maxInflightMsgs: 256,
        maxUncommittedEntriesBytes: 64 * 1024 * 1024,
        preVote: true,
        checkQuorum: true,
        // Half the Raft messages of a write, and no heartbeats in busy groups; followers apply
        // up to two heartbeats later, which nothing on a follower waits for (see RaftConfig).
        piggyback: true,
        random: new SeededRandom(randomInt(0x7fff_ffff)),
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
    replica.failAll('UNAVAILABLE');
    this.replicasByShard.delete(shardId);
    this.marked.delete(replica);
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
    if (this.closed) return;
    this.marked.add(replica);
    this.scheduleTurn();
  }

  private onTick(): void {
    const nowMs = Date.now();
    for (const replica of this.replicasByShard.values()) {
      replica.expire(nowMs);
      if (replica.removed) continue;
      replica.pendingTicks += 1;
      this.mark(replica);
    }
  }

  private runTurns(): void {
    this.turnScheduled = false;
    if (this.closed || this.marked.size === 0) return;
    // Turns do not overlap a sync: inputs gather meanwhile, so each fsync covers more work.
    // (Measured on the 2-core bench machine: overlapping turns, each with its own sync and
    // SendRequests, cost ~20% more CPU per operation and lowered throughput under load.)
    if (this.syncsInFlight.size > 0) return; // the sync's end re-schedules
    try {
      this.turn();
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.marked.size > 0 && !this.closed && !this.turnScheduled) {
      this.turnScheduled = true;
      setImmediate(() => this.runTurns());
    }
  }

  private fail(error: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.options.onFatal(error);
  }

  /**
   * One turn. A replica whose Ready waits for a sync only steps its new inputs (proposals
   * join its log, acks move its commit index); it takes its next Ready once that sync ended,
   * so every entry a replica wrote in an earlier Ready is durable when it takes the next one
   * (what {@link Replica.applyDurable} relies on). Readies that need no sync are handled at
   * once; the others' committed entries already durable here are applied before the sync.
   */
  private turn(): void {
    this.stats.turns += 1;
    const batch = [...this.marked];
    this.marked.clear();
    const waiting: [Replica, Ready, boolean][] = [];
    for (const replica of batch) {
      replica.step();
      if (this.syncing.has(replica)) continue; // marked again when its sync ends
      const ready = replica.collectReady();
      if (ready === undefined) continue;
      if (!ready.mustSync) {
        // Nothing to make durable (a commit-index-only hard state rides along with the
        // next sync): heartbeat and read-index answers, applying entries synced earlier.
        replica.handleReady(ready, this);
        if (replica.hasWork()) this.marked.add(replica);
        continue;
      }
      // A leader's messages go out before its fsync (Raft thesis §10.2.1; etcd does the
      // same): an entry commits only once a quorum persisted it, and a leader acknowledges
      // nothing. A follower's acks and votes wait for the sync (persist before send).
      const isLeader = (ready.softState?.role ?? replica.role) === Role.Leader;
      const sendEarly = ready.snapshot === undefined && isLeader;
      if (sendEarly) for (const message of ready.messages) this.route(replica, message);
      replica.applyDurable(ready);
      this.syncing.add(replica);
      waiting.push([replica, ready, sendEarly]);
    }
    this.transport.flush();
    if (waiting.length === 0) return;
    // One fsync for every group's writes of this turn (the WAL chains it after a sync on disk).
    this.stats.syncs += 1;
    const syncStartMs = performance.now();
    const synced = this.options.storage.sync().then(() => {
      this.options.events?.walSynced((performance.now() - syncStartMs) / 1000);
      for (const [replica, ready, messagesSent] of waiting) {
        this.syncing.delete(replica);
        if (this.replicasByShard.get(replica.shardId) !== replica) continue; // destroyed meanwhile
        replica.handleReady(ready, messagesSent ? undefined : this);
        if (replica.hasWork()) this.mark(replica);
      }
      // With a turn to come (it starts as soon as this callback returns), its flush carries
      // these acks together with its own messages: one SendRequest per peer instead of two.
      if (this.marked.size === 0) this.transport.flush();
    });
    this.syncsInFlight.add(synced);
    synced.then(
      () => {
        this.syncsInFlight.delete(synced);
        if (this.marked.size > 0) this.scheduleTurn();
      },
      (error: unknown) => {
        this.syncsInFlight.delete(synced);
        this.fail(error);
      },
    );
  }

  private scheduleTurn(): void {
    if (this.turnScheduled || this.closed) return;
    this.turnScheduled = true;
    setImmediate(() => this.runTurns());
  }

  // ---- transport ---------------------------------------------------------------------------------

  /** Sends a replica's message to the node hosting its destination. */
  route(replica: Replica, message: Message): void {
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
    this.transport.send(nodeId, toWireMessage(replica.shardId, message));
  }

  /** Routes a received message to the local replica `(shardId, to)`; unknown ones are dropped. */
  deliver(fromNodeId: string, wire: RaftMessage, snapshotData?: Buffer): void {
    const replica = this.replicasByShard.get(wire.shardId);
    if (replica === undefined || replica.replicaId !== wire.to || replica.removed) {
      this.logger.debug('message for unknown replica dropped', { shard: wire.shardId, to: wire.to, from: fromNodeId });
      return;
    }
    if (!replica.machine.members.has(wire.from)) replica.learnedNodes.set(wire.from, fromNodeId);
    replica.receive(fromWireMessage(wire, snapshotData));
    this.mark(replica);
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
   * The stream to `nodeId` failed: the node may have crashed. Followers whose leader it hosts
   * skip ahead one election timeout, so the leader lease of CheckQuorum/PreVote has run out
   * and the first randomized timeout campaigns (issue: every shard writable again within
   * 1.5 s of a kill -9). Only time moves faster: if the leader is in fact alive, its next
   * heartbeat resets the followers as usual, and a pre-vote still needs a majority that did
   * not hear from it.
   *
   * A broken stream does not prove the leader dead (a network fault can cut it), and the
   * leader may be answering reads under a lease our last acknowledgement backs. So the
   * skip waits until {@link voteGuardMs} after the last message we stepped from that leader.
   */
  reportPeerFailed(nodeId: string): void {
    for (const replica of this.replicasByShard.values()) {
      if (replica.removed || replica.role !== Role.Follower || replica.leaderId === 0) continue;
      if (replica.nodeIdOf(replica.leaderId) !== nodeId) continue;
      const failedLeader = replica.leaderId;
      const waitMs = this.promiseRemainingMs(replica);
      if (waitMs <= 0) this.failOver(replica, failedLeader);
      else setTimeout(() => this.failOver(replica, failedLeader), Math.ceil(waitMs)).unref();
    }
  }

  /** Ms until `replica` may vote for someone other than its leader without breaking a lease. */
  private promiseRemainingMs(replica: Replica): number {
    return replica.lastLeaderMessageMs + this.voteGuardMs - performance.now();
  }

  private failOver(replica: Replica, failedLeader: number): void {
    if (this.closed || replica.removed || replica.role !== Role.Follower || replica.leaderId !== failedLeader) return;
    // Heard from the leader while waiting: it is alive, and its election timeout applies.
    if (this.promiseRemainingMs(replica) > 0) return;
    const electionTick = this.options.electionTick ?? 10;
    const tickIntervalMs = this.options.tickIntervalMs ?? 50;
    replica.pendingTicks += electionTick;
    this.mark(replica);
    // The survivors' timeouts are whole ticks, so two of them often fire together and split
    // the vote, costing another 0.5–1 s. The designated successor — the lowest voter id
    // other than the failed leader — campaigns two ticks from now instead, once the other
    // survivors have noticed the failure too (before that they would refuse its pre-vote:
    // their leader lease still runs). Its randomized timeout stays the fallback.
    const others = replica.confState.voters.filter((id) => id !== failedLeader);
    if (others.length === 0 || Math.min(...others) !== replica.replicaId) return;
    setTimeout(() => {
      if (this.closed || replica.removed || replica.role === Role.Leader) return;
      if (replica.leaderId !== failedLeader && replica.leaderId !== 0) return; // a new leader is known
      if (this.promiseRemainingMs(replica) > 0) return; // the old leader spoke meanwhile
      replica.control({ kind: 'campaign' });
      this.mark(replica);
    }, 2 * tickIntervalMs).unref();
  }

  /** Stops the timer, finishes the running turn, fails waiting requests, closes the transport and syncs storage. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.closed = true;
    while (this.syncsInFlight.size > 0) await Promise.allSettled([...this.syncsInFlight]);
    for (const replica of this.replicasByShard.values()) replica.failAll('UNAVAILABLE');
    await this.transport.close();
    await this.options.storage.close();
  }
}

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
