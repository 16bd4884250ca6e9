/**
 * One replica of one shard on this node: a Raft group member (`RawNode` + storage)
 * and its KV state machine, plus the bookkeeping that turns Raft's asynchronous
 * Ready loop into answers for clients — proposals matched to the entries that apply
 * them, reads confirmed through ReadIndex or served under the leader's lease.
 *
 * Lease reads (C `Lease` in raftstore; thesis §6.4.1): a leader whose quorum acknowledged
 * something it sent at time `t` knows no other leader can be elected before `t + leaseMs`,
 * because every follower that acknowledged promised not to vote for anyone else for an
 * election timeout (CheckQuorum's leader lease, counted in ticks by the core, and kept by
 * the host's fast failover, which waits out the same promise). Within the lease a read is
 * answered from the state machine once it has applied the commit index, with no round of
 * heartbeats. The lease starts at the moment a confirmed ReadIndex round or a committed
 * proposal began, on this process's monotonic clock, so only clock *rate* matters: the
 * lease is 40% of the election timeout, the promise 90%. It ends with the term, when the
 * leader sends TimeoutNow (the transferee's campaign overrides the promise) and when a
 * membership change applies (the quorum it was earned from is gone).
 *
 * The host drives it in turns: {@link Replica.step} feeds the inputs gathered since
 * the last turn, {@link Replica.collectReady} persists (buffers into the WAL), and
 * after the host's one fsync {@link Replica.handleReady} sends, applies, answers
 * and advances. A replica runs at most once per turn.
 * @internal
 */
import type { Logger } from '../common/index.js';
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  decodeConfChange,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  RawNode,
  type RaftConfig,
  type Ready,
  Role,
  type WritableStorage,
} from '../raft/index.js';
import { encodeCommand, type WriteRequest } from './kv-command.js';
import { KvStateMachine, type ShardMember } from './kv-state-machine.js';
import type { ReplicaEvents } from './node-metrics.js';
import { type ReadCallback, REQUEST_TIMEOUT_MS, type WriteCallback, type FailureReason } from './replica-requests.js';

/** Sends a replica's outgoing messages (implemented by the host over the transport). */
export interface MessageRouter {
  route(replica: Replica, message: Message): void;
}

/** What a replica is built from. */
export interface ReplicaOptions {
  shardId: number;
  replicaId: number;
  storage: WritableStorage;
  machine: KvStateMachine;
  logger: Logger;
  /** Raft settings other than id, storage and applied (tick counts, PreVote, random, logger...). */
  raft: Omit<RaftConfig, 'id' | 'storage' | 'applied'>;
  /** Take a snapshot and compact the log every this many applied entries. */
  snapshotIntervalEntries: number;
  /** Entries kept behind a snapshot for slow followers, so they catch up without one. */
  retainedEntries: number;
  /** Receives leader changes, dropped proposals and snapshots for the metrics endpoint. */
  events?: ReplicaEvents;
  /**
   * TEST ONLY (`kvstore node --unsafe-stale-reads`): a leader answers reads from its applied state
   * without a ReadIndex round, so a deposed leader serves stale values. It exists so the chaos
   * checker can prove it catches them (issue 7). Never set it in production.
   */
  unsafeStaleReads?: boolean;
  /**
   * How long a confirmed quorum contact lets the leader answer reads without a ReadIndex
   * round (ms, from when the contact began). 0 turns lease reads off. Must stay well below
   * the followers' promise: the shortest election timeout and {@link voteGuardMs}.
   */
  leaseMs?: number;
  /**
   * Vote requests are ignored this long after the replica is created (ms). Set for replicas
   * recovered at start-up: before a crash they may have promised a leader their vote
   * (its lease), and that promise lived only in memory.
   */
  voteGuardMs?: number;
}

interface PendingWrite {
  term: number;
  /** When it was proposed (monotonic ms): its commit proves a quorum heard from us after it. */
  proposedMs: number;
  deadlineMs: number;
  callback: WriteCallback;
}

interface QueuedWrite {
  request: WriteRequest;
  deadlineMs: number;
  callback: WriteCallback;
}

interface PendingRead {
  key: string;
  callback: ReadCallback;
}

interface ReadBatch {
  reads: PendingRead[];
  deadlineMs: number;
  /** Set once the ReadState arrived (or at once, under the lease): serve when applied ≥ index. */
  index: number;
  /** Term and monotonic time the ReadIndex round began: its confirmation renews the lease. */
  term: number;
  startedMs: number;
}

/** A control action queued for the next turn (placement commands, transport reports). */
type ControlAction =
  | { kind: 'campaign' }
  | { kind: 'conf-change'; change: ConfChange }
  | { kind: 'transfer-leader'; to: number }
  | { kind: 'unreachable'; replicaId: number }
  | { kind: 'snapshot-status'; replicaId: number; status: 'finish' | 'failure' };

/** One hosted replica. */
export class Replica {
  readonly shardId: number;
  readonly replicaId: number;
  readonly rawNode: RawNode;
  readonly storage: WritableStorage;
  machine: KvStateMachine;
  /** The group's configuration as of the applied index. */
  confState: ConfState;
  role: Role = Role.Follower;
  leaderId = 0;
  /** Monotonic ms when this replica last became leader (tests, failover timing). */
  leaderSinceMs = 0;
  term = 0;
  /** Set once this replica applied its own removal: it no longer takes part in the group. */
  removed = false;
  /** Replica id → node id learned from received messages (senders not in `machine.members`, e.g. for a new learner). */
  readonly learnedNodes = new Map<number, string>();

  pendingTicks = 0;
  private inbox: Message[] = [];
  private queuedWrites: QueuedWrite[] = [];
  private queuedReads: PendingRead[] = [];
  private readonly actions: ControlAction[] = [];
  /** Proposed writes by log index, in proposal order. */
  private readonly pendingWrites = new Map<number, PendingWrite>();
  /** ReadIndex batches by context id. */
  private readonly readBatches = new Map<number, ReadBatch>();
  private nextReadId = 1;
  private snapshotIndex: number;
  private snapshotRequested = false;
  private readonly logger: Logger;
  private readonly snapshotIntervalEntries: number;
  private readonly retainedEntries: number;
  private readonly events: ReplicaEvents | undefined;
  private readonly unsafeStaleReads: boolean;
  private readonly leaseMs: number;
  /** The lease: reads may skip ReadIndex while leader in `leaseTerm` and now < `leaseUntilMs`. */
  private leaseTerm = 0;
  private leaseUntilMs = 0;
  /** A term in which this leader sent TimeoutNow: no lease for the rest of it. */
  private leaseRevokedTerm = 0;
  /** The ReadIndex round started only to renew the lease, while it runs (0: none). */
  private renewalReadId = 0;
  /** Monotonic ms when this replica last stepped a leader's message (append, heartbeat, snapshot). */
  lastLeaderMessageMs = Number.NEGATIVE_INFINITY;
  /** Vote requests stepped before this monotonic time are dropped (see `voteGuardMs`). */
  private readonly ignoreVotesUntilMs: number;

  constructor(options: ReplicaOptions) {
    this.shardId = options.shardId;
    this.replicaId = options.replicaId;
    this.storage = options.storage;
    this.machine = options.machine;
    this.logger = options.logger;
    this.snapshotIntervalEntries = options.snapshotIntervalEntries;
    this.retainedEntries = options.retainedEntries;
    this.events = options.events;
    this.unsafeStaleReads = options.unsafeStaleReads === true;
    this.leaseMs = options.leaseMs ?? 0;
    this.ignoreVotesUntilMs = performance.now() + (options.voteGuardMs ?? 0);
    const snapshot = options.storage.snapshot();
    this.snapshotIndex = snapshot.ok ? snapshot.value.metadata.index : 0;
    this.confState = options.storage.initialState().confState;
    this.rawNode = new RawNode({ ...options.raft, id: options.replicaId, storage: options.storage, applied: this.machine.appliedIndex });
  }

  /** True while the group has no configuration (created without members, waiting for the leader). */
  get uninitialized(): boolean {
    return this.confState.voters.length === 0 && this.confState.learners.length === 0;
  }

  /** The node hosting `replicaId` in this group, when known. */
  nodeIdOf(replicaId: number): string | undefined {
    return this.machine.members.get(replicaId) ?? this.learnedNodes.get(replicaId);
  }

  /** The group's members with their node ids and learner flags, as applied. */
  members(): (ShardMember & { learner: boolean })[] {
    const members: (ShardMember & { learner: boolean })[] = [];
    for (const replicaId of this.confState.voters) members.push({ replicaId, nodeId: this.nodeIdOf(replicaId) ?? '', learner: false });
    for (const replicaId of this.confState.learners) members.push({ replicaId, nodeId: this.nodeIdOf(replicaId) ?? '', learner: true });
    return members;
  }

  // ---- inputs, queued for the next turn --------------------------------------------------------

  /** Queues a received message. */
  receive(message: Message): void {
    this.inbox.push(message);
  }

  /** Queues a write; the callback gets the result once its entry applies. */
  write(request: WriteRequest, callback: WriteCallback): void {
    this.queuedWrites.push({ request, callback, deadlineMs: Date.now() + REQUEST_TIMEOUT_MS });
  }

  /** Queues a linearizable read of `key` (latin1 key string). */
  read(key: string, callback: ReadCallback): void {
    this.queuedReads.push({ key, callback });
  }

  /** Queues a control action (placement command or transport report). */
  control(action: ControlAction): void {
    this.actions.push(action);
  }

  /** True when the next turn has something to do for this replica. */
  hasWork(): boolean {
    if (this.removed) return false;
    return (
      this.pendingTicks > 0 ||
      this.inbox.length > 0 ||
      this.queuedWrites.length > 0 ||
      this.queuedReads.length > 0 ||
      this.actions.length > 0 ||
      this.rawNode.hasReady()
    );
  }

  // ---- one turn --------------------------------------------------------------------------------

  /** Feeds everything queued since the last turn into the Raft node. */
  step(): void {
    if (this.removed) {
      this.failQueued('UNAVAILABLE');
      return;
    }
    for (; this.pendingTicks > 0; this.pendingTicks--) this.rawNode.tick();
    const inbox = this.inbox;
    this.inbox = [];
    let nowMs = 0;
    for (const message of inbox) {
      switch (message.type) {
        case MessageType.Append:
        case MessageType.Heartbeat:
        case MessageType.Snapshot:
          // Stepping it (re)starts our promise not to vote for another leader: see the host's fast failover.
          nowMs ||= performance.now();
          this.lastLeaderMessageMs = nowMs;
          break;
        case MessageType.Vote:
        case MessageType.PreVote:
          nowMs ||= performance.now();
          if (nowMs < this.ignoreVotesUntilMs) {
            this.logger.debug('vote request ignored: replica just recovered', { from: message.from });
            continue;
          }
          break;
        default:
          break;
      }
      this.rawNode.step(message);
    }
    for (const action of this.actions.splice(0)) this.runAction(action);
    this.proposeQueuedWrites();
    this.startQueuedReads();
  }

  private runAction(action: ControlAction): void {
    switch (action.kind) {
      case 'campaign':
        this.rawNode.campaign();
        return;
      case 'conf-change': {
        const outcome = this.rawNode.proposeConfChange(action.change);
        if (!outcome.ok) this.logger.debug('conf change not proposed', { reason: outcome.reason, replica: action.change.replicaId });
        return;
      }
      case 'transfer-leader': {
        // Handing leadership to a follower we have not heard from within an election
        // timeout (a node killed a moment ago) would stall writes until the transfer
        // times out; the manager re-sends the command if it still wants it.
        const target = this.rawNode.status().progress?.get(action.to);
        if (target?.recentActive !== true) {
          this.logger.debug('leader transfer refused: target inactive', { to: action.to });
          return;
        }
        this.rawNode.transferLeader(action.to);
        return;
      }
      case 'unreachable':
        this.rawNode.reportUnreachable(action.replicaId);
        return;
      case 'snapshot-status':
        this.rawNode.reportSnapshot(action.replicaId, action.status);
        return;
    }
  }

  private proposeQueuedWrites(): void {
    if (this.queuedWrites.length === 0) return;
    const queued = this.queuedWrites;
    this.queuedWrites = [];
    if (this.role !== Role.Leader) {
      for (const write of queued) write.callback({ ok: false, reason: 'NOT_LEADER' });
      return;
    }
    const nowMs = Date.now();
    const proposedMs = performance.now();
    for (const write of queued) {
      const outcome = this.rawNode.propose(encodeCommand(write.request, nowMs));
      if (!outcome.ok) {
        this.events?.proposalDropped(this.shardId, outcome.reason);
        write.callback({ ok: false, reason: this.role === Role.Leader ? 'UNAVAILABLE' : 'NOT_LEADER' });
        continue;
      }
      // A proposal at an index some older, lost proposal held: that one can no longer apply.
      const lost = this.pendingWrites.get(outcome.index);
      if (lost !== undefined) {
        this.pendingWrites.delete(outcome.index); // re-inserted last, keeping the map in deadline order
        this.events?.proposalDropped(this.shardId, 'superseded');
        lost.callback({ ok: false, reason: 'DROPPED' });
      }
      this.pendingWrites.set(outcome.index, { term: outcome.term, proposedMs, deadlineMs: write.deadlineMs, callback: write.callback });
    }
  }

  private startQueuedReads(): void {
    if (this.queuedReads.length === 0) return;
    const reads = this.queuedReads;
    this.queuedReads = [];
    if (this.role !== Role.Leader) {
      for (const read of reads) read.callback({ ok: false, reason: 'NOT_LEADER' });
      return;
    }
    if (this.unsafeStaleReads) {
      for (const read of reads) read.callback({ ok: true, value: this.machine.get(read.key) });
      return;
    }
    const nowMs = performance.now();
    if (this.inLease(nowMs)) {
      // Under the lease no other leader exists, so our commit index covers every write
      // acknowledged before these reads arrived: serve them once it is applied.
      const index = this.rawNode.commitIndex();
      this.events?.readsServed(this.shardId, 'lease', reads.length);
      if (index <= this.machine.appliedIndex) {
        for (const read of reads) read.callback({ ok: true, value: this.machine.get(read.key) });
      } else {
        this.readBatches.set(this.nextReadId++, { reads, deadlineMs: Date.now() + REQUEST_TIMEOUT_MS, index, term: 0, startedMs: nowMs });
      }
      // Renew before it runs out, so a steady read load never waits for a round.
      if (this.renewalReadId === 0 && this.leaseUntilMs - nowMs < this.leaseMs / 2) this.renewalReadId = this.startReadRound([], nowMs);
      return;
    }
    this.events?.readsServed(this.shardId, 'read_index', reads.length);
    this.startReadRound(reads, nowMs);
  }

  /** Starts a ReadIndex round (Raft thesis §6.4) shared by `reads`; returns its id. */
  private startReadRound(reads: PendingRead[], nowMs: number): number {
    const readId = this.nextReadId++;
    const context = Buffer.allocUnsafe(8);
    context.writeDoubleLE(readId, 0);
    this.readBatches.set(readId, { reads, deadlineMs: Date.now() + REQUEST_TIMEOUT_MS, index: -1, term: this.rawNode.term(), startedMs: nowMs });
    this.rawNode.readIndex(context);
    return readId;
  }

  /** True while the lease lets this leader answer reads without a ReadIndex round. */
  private inLease(nowMs: number): boolean {
    return this.leaseMs > 0 && nowMs < this.leaseUntilMs && this.leaseTerm === this.rawNode.term() && this.rawNode.isLeader();
  }

  /** A quorum acknowledged what this leader sent in `term` after `startedMs`: the lease runs to `startedMs + leaseMs`. */
  private renewLease(term: number, startedMs: number): void {
    if (this.leaseMs === 0 || term !== this.rawNode.term() || term === this.leaseRevokedTerm || !this.rawNode.isLeader()) return;
    const untilMs = startedMs + this.leaseMs;
    if (this.leaseTerm !== term) {
      this.leaseTerm = term;
      this.leaseUntilMs = untilMs;
    } else if (untilMs > this.leaseUntilMs) {
      this.leaseUntilMs = untilMs;
    }
  }

  /** Ends the lease now; `forTerm` also refuses renewals for the rest of that term. */
  private revokeLease(forTerm?: number): void {
    this.leaseUntilMs = 0;
    if (forTerm !== undefined) this.leaseRevokedTerm = forTerm;
  }

  /** Takes this turn's Ready, if any, and writes its state to storage (buffered until the host's sync). */
  collectReady(): Ready | undefined {
    if (this.removed || !this.rawNode.hasReady()) return undefined;
    const ready = this.rawNode.ready();
    if (this.leaseMs > 0 && this.rawNode.isLeader()) {
      // The transferee campaigns past every follower's promise: from the moment TimeoutNow
      // leaves (it is sent from this Ready), another leader may be elected.
      for (const message of ready.messages) if (message.type === MessageType.TimeoutNow) this.revokeLease(this.rawNode.term());
    }
    if (ready.snapshot !== undefined) this.storage.applySnapshot(ready.snapshot);
    if (ready.entries.length > 0) this.storage.append(ready.entries);
    if (ready.hardState !== undefined) this.storage.setHardState(ready.hardState);
    return ready;
  }

  /**
   * Before the host's fsync: applies the committed entries this replica made durable in
   * earlier turns — those below the first entry this Ready writes — and answers the reads
   * they unblock. Committed means durable on a majority, and these are durable here too, so
   * acknowledging them need not wait for this turn's fsync, which covers only newer entries
   * (the host takes a replica's next Ready only after its previous one's sync completed).
   * {@link handleReady} applies the rest; applying is idempotent by index.
   */
  applyDurable(ready: Ready): void {
    if (this.removed || ready.softState !== undefined || ready.snapshot !== undefined) return;
    const firstNewIndex = ready.entries[0]?.index ?? Number.POSITIVE_INFINITY;
    for (const entry of ready.committedEntries) {
      if (entry.index >= firstNewIndex) break;
      this.applyEntry(entry);
      if (this.removed) return;
    }
    for (const readState of ready.readStates) this.onReadState(readState.index, readState.context);
    this.serveReads();
  }

  /**
   * After the host's fsync: sends the messages (unless the host already did, `router`
   * undefined), applies the snapshot and committed entries, answers reads, advances.
   */
  handleReady(ready: Ready, router: MessageRouter | undefined): void {
    if (ready.softState !== undefined) this.changeRole(ready.softState.role, ready.softState.leaderId);
    if (ready.hardState !== undefined) this.term = ready.hardState.term;
    if (router !== undefined) for (const message of ready.messages) router.route(this, message);
    if (ready.snapshot !== undefined) this.installSnapshot(ready.snapshot.metadata.index, ready.snapshot.data, ready.snapshot.metadata.confState);
    for (const entry of ready.committedEntries) {
      this.applyEntry(entry);
      if (this.removed) break;
    }
    for (const readState of ready.readStates) this.onReadState(readState.index, readState.context);
    this.serveReads();
    this.rawNode.advance(ready);
    this.maybeSnapshot();
  }

  private changeRole(role: Role, leaderId: number): void {
    const wasLeader = this.role === Role.Leader;
    if (leaderId !== 0 && leaderId !== this.leaderId) this.events?.leaderChanged(this.shardId);
    this.role = role;
    this.leaderId = leaderId;
    const term = this.rawNode.status().term;
    if (role === Role.Leader && !wasLeader) {
      this.leaderSinceMs = performance.now();
      this.logger.info('became leader', { term });
    }
    if (wasLeader && role !== Role.Leader) {
      this.logger.info('lost leadership', { term, leader: leaderId });
      this.revokeLease();
      this.renewalReadId = 0;
      // Reads whose index never came back cannot be confirmed by a non-leader.
      for (const [readId, batch] of this.readBatches) {
        if (batch.index >= 0) continue;
        this.readBatches.delete(readId);
        for (const read of batch.reads) read.callback({ ok: false, reason: 'NOT_LEADER' });
      }
    }
  }

  private installSnapshot(index: number, data: Uint8Array, confState: ConfState): void {
    this.machine = KvStateMachine.fromSnapshot(data);
    if (this.machine.appliedIndex !== index) {
      throw new Error(`snapshot at index ${index} holds state applied through ${this.machine.appliedIndex}`);
    }
    this.confState = { voters: [...confState.voters], learners: [...confState.learners] };
    this.snapshotIndex = index;
    // Proposals the snapshot covers can no longer be matched to their entries.
    for (const [pendingIndex, pending] of this.pendingWrites) {
      if (pendingIndex > index) continue;
      this.pendingWrites.delete(pendingIndex);
      pending.callback({ ok: false, reason: 'TIMEOUT' });
    }
    this.events?.snapshotInstalled(this.shardId);
    this.logger.info('snapshot installed', { index, epoch: this.machine.epoch, keys: this.machine.keyCount });
  }

  private applyEntry(entry: Entry): void {
    if (entry.index <= this.machine.appliedIndex) return;
    const pending = this.pendingWrites.get(entry.index);
    if (pending !== undefined) this.pendingWrites.delete(entry.index);
    if (entry.type === EntryType.ConfChange) {
      this.applyConfChange(entry);
    } else if (entry.data.length === 0) {
      this.machine.applyEmpty(entry.index);
    } else {
      const result = this.machine.applyCommand(entry.index, entry.data);
      if (pending !== undefined && pending.term === entry.term) {
        // Committed: a quorum accepted an append sent after the proposal.
        this.renewLease(pending.term, pending.proposedMs);
        pending.callback({ ok: true, result });
        return;
      }
    }
    pending?.callback({ ok: false, reason: 'DROPPED' });
  }

  private applyConfChange(entry: Entry): void {
    const change = decodeConfChange(entry.data);
    const wasMember = this.confState.voters.includes(change.replicaId) || this.confState.learners.includes(change.replicaId);
    this.confState = this.rawNode.applyConfChange(change);
    // The lease was earned from the old configuration's quorum.
    this.revokeLease();
    if (change.type === ConfChangeType.RemoveReplica) {
      this.machine.applyMembershipChange(entry.index, { type: 'remove', replicaId: change.replicaId });
    } else {
      const nodeId = nodeIdFromContext(change.context) ?? this.nodeIdOf(change.replicaId) ?? '';
      this.machine.applyMembershipChange(entry.index, { type: 'add', replicaId: change.replicaId, nodeId });
      // A new member must start from a snapshot holding the whole configuration: the
      // bootstrap members are not in the log, so replaying it from index 1 is not enough.
      if (!wasMember) this.snapshotRequested = true;
    }
    this.logger.info('membership change applied', {
      change: ConfChangeType[change.type],
      replica: change.replicaId,
      epoch: this.machine.epoch,
      voters: this.confState.voters,
      learners: this.confState.learners,
    });
    if (change.type === ConfChangeType.RemoveReplica && change.replicaId === this.replicaId) {
      this.removed = true;
      this.logger.info('replica removed from its group', { epoch: this.machine.epoch });
      this.failAll('UNAVAILABLE');
    }
  }

  private onReadState(index: number, context: Uint8Array): void {
    if (context.length !== 8) return;
    const readId = Buffer.from(context.buffer, context.byteOffset, 8).readDoubleLE(0);
    const batch = this.readBatches.get(readId);
    if (batch === undefined) return;
    batch.index = index;
    // A quorum answered a heartbeat sent after the round began.
    this.renewLease(batch.term, batch.startedMs);
    if (readId === this.renewalReadId) this.renewalReadId = 0;
  }

  private serveReads(): void {
    if (this.readBatches.size === 0) return;
    const applied = this.machine.appliedIndex;
    for (const [readId, batch] of this.readBatches) {
      if (batch.index < 0 || batch.index > applied) continue;
      this.readBatches.delete(readId);
      for (const read of batch.reads) read.callback({ ok: true, value: this.machine.get(read.key) });
    }
  }

  private maybeSnapshot(): void {
    if (this.removed) return;
    const applied = this.machine.appliedIndex;
    if (applied <= this.snapshotIndex) return;
    if (!this.snapshotRequested && applied - this.snapshotIndex < this.snapshotIntervalEntries) return;
    const forced = this.snapshotRequested;
    this.snapshotRequested = false;
    this.storage.createSnapshot(applied, this.confState, this.machine.encodeSnapshot());
    this.snapshotIndex = applied;
    const keepFrom = forced ? applied + 1 : Math.max(this.storage.firstIndex(), applied + 1 - this.retainedEntries);
    if (keepFrom > this.storage.firstIndex()) this.storage.compact(keepFrom);
    this.events?.snapshotCreated(this.shardId);
    this.logger.debug('snapshot taken', { index: applied, forced });
  }

  // ---- deadlines and shutdown --------------------------------------------------------------------

  /** Answers TIMEOUT to every write and read past its deadline. */
  expire(nowMs: number): void {
    for (const [index, pending] of this.pendingWrites) {
      if (pending.deadlineMs > nowMs) break;
      this.pendingWrites.delete(index);
      pending.callback({ ok: false, reason: 'TIMEOUT' });
    }
    for (const [readId, batch] of this.readBatches) {
      if (batch.deadlineMs > nowMs) break;
      this.readBatches.delete(readId);
      if (readId === this.renewalReadId) this.renewalReadId = 0;
      for (const read of batch.reads) read.callback({ ok: false, reason: 'TIMEOUT' });
    }
  }

  private failQueued(reason: FailureReason): void {
    for (const write of this.queuedWrites.splice(0)) write.callback({ ok: false, reason });
    for (const read of this.queuedReads.splice(0)) read.callback({ ok: false, reason });
  }

  /** Answers every waiting request with `reason` (shutdown, removal, destruction). */
  failAll(reason: FailureReason): void {
    this.failQueued(reason);
    for (const pending of this.pendingWrites.values()) pending.callback({ ok: false, reason: reason === 'UNAVAILABLE' ? 'TIMEOUT' : reason });
    this.pendingWrites.clear();
    for (const batch of this.readBatches.values()) for (const read of batch.reads) read.callback({ ok: false, reason });
    this.readBatches.clear();
    this.renewalReadId = 0;
    this.inbox = [];
  }

  /** Number of writes and reads waiting for an answer (tests, metrics). */
  get waitingRequests(): number {
    let reads = 0;
    for (const batch of this.readBatches.values()) reads += batch.reads.length;
    return this.pendingWrites.size + this.queuedWrites.length + this.queuedReads.length + reads;
  }
}

/** A ConfChange for a placement command, with the node id in its context. */
export function confChangeFor(type: ConfChangeType, replicaId: number, nodeId: string): ConfChange {
  return { type, replicaId, context: Buffer.from(JSON.stringify({ nodeId }), 'utf8') };
}

/** The node id in a ConfChange context (`{"nodeId":"n3"}`), or undefined if absent or malformed. */
export function nodeIdFromContext(context: Uint8Array): string | undefined {
  if (context.length === 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(context.buffer, context.byteOffset, context.byteLength).toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'nodeId' in parsed && typeof parsed.nodeId === 'string') return parsed.nodeId;
  } catch {
    return undefined;
  }
  return undefined;
}
