/**
 * One replica of one shard on this node: a Raft group member (`RawNode` + storage)
 * and its KV state machine, plus the bookkeeping that turns Raft's asynchronous
 * Ready loop into answers for clients — proposals matched to the entries that apply
 * them; reads go through {@link ReadPath} (ReadIndex or the lease, with its safety
 * argument, in `replica-reads.ts`).
 *
 * The host drives it in turns (`turn-loop.ts`): {@link Replica.step} feeds the inputs
 * gathered since the last turn, {@link Replica.collectReady} persists (buffers into the
 * WAL), and after the host's one fsync {@link Replica.handleReady} sends, applies,
 * answers and advances. A replica runs at most once per turn.
 * @internal
 */
import type { Logger } from '../common/index.js';
import {
  assertInvariant,
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
import { requestBytes } from './admission.js';
import { CommandOp, type WriteRequest, writeRequestBytes } from './kv-command.js';
import { KvStateMachine, type ShardMember } from './kv-state-machine.js';
import type { ReplicaEvents } from './node-metrics.js';
import { followerMayQuiesce, quiesceHeartbeats } from './quiescence.js';
import { ReplicaAdmission, type ReplicaRefusal } from './replica-admission.js';
import { LeaderPromise, ReadPath } from './replica-reads.js';
import { WritePath } from './replica-writes.js';
import { nodeIdFromContext } from './conf-change-context.js';
import { type FailureReason, type ReadCallback, type WriteCallback, type WriteOutcome } from './replica-requests.js';
import { type NodeRuntime, systemRuntime } from './runtime.js';
import { ReplicaSnapshots } from './replica-snapshots.js';
import type { SnapshotBudget } from './snapshot-budget.js';

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
  /**
   * Also take one once the entries applied since the last snapshot hold this many bytes, or
   * as many as that snapshot, whichever is more: the log in memory stays small, and a snapshot
   * never writes more than about what the log wrote since the last. Default: no byte bound.
   */
  snapshotLogBytes?: number;
  /**
   * This replica's multiple of both snapshot bounds (`snapshotSpread` in snapshot-budget.ts), so
   * a node's groups loaded alike do not all reach theirs in the same second. Default 1.
   */
  snapshotSpread?: number;
  /** Entries kept behind a snapshot for slow followers, so they catch up without one. */
  retainedEntries: number;
  /** At most this many bytes of them. Default: no byte bound. */
  retainedBytes?: number;
  /** Shared by a node's replicas: how many snapshot bytes the current turn may still encode (`snapshot-budget.ts`). Default: no limit. */
  snapshotBudget?: SnapshotBudget;
  /** Clocks for leases, promises and deadlines. Default: this process's. */
  runtime?: NodeRuntime;
  /** Receives leader changes, dropped proposals, snapshots and applied entries. */
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
   * {@link voteGuardMs} (see `replica-reads.ts`).
   */
  leaseMs?: number;
  /** How long this replica's promise to a leader lasts after its last message (ms; see `replica-reads.ts`). */
  voteGuardMs?: number;
  /**
   * True for a replica recreated from disk at start-up: it ignores vote requests for
   * `voteGuardMs`, since a promise made before the crash lived only in memory.
   */
  recovered?: boolean;
  /** Bounds its waiting requests. Default: the `replica-admission.ts` constants. */
  admission?: ReplicaAdmission;
  /** Called (inside the turn) when the replica learns a leader, itself or another: requests waiting for one go on (`leader-wait.ts`). */
  leaderKnown?: () => void;
}


/** A control action queued for the next turn (placement commands, transport reports). */
export type ControlAction =
  /** Campaign now, unless that would break this replica's promise to a leader (checked when it runs). */
  | { kind: 'campaign' }
  /** Forget `leader` (fast failover: its node seems dead) unless that would break the promise or another leader is known. */
  | { kind: 'forget-leader'; leader: number }
  | { kind: 'conf-change'; change: ConfChange }
  | { kind: 'transfer-leader'; to: number }
  | { kind: 'unreachable'; replicaId: number }
  | { kind: 'snapshot-status'; replicaId: number; status: 'finish' | 'failure' };

/**
 * How long (monotonic ms) a leader whose shard holds expiring keys lets pass without stamping an
 * entry before it proposes an expire entry to move log time (see `Replica.expiryTick`).
 */
export const EXPIRY_CLOCK_MS = 1000;

const EMPTY_KEY = new Uint8Array(0);

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
  /** Term and vote as of the last Ready made durable: what messages sent before a sync may rely on. */
  term = 0;
  vote = 0;
  /**
   * Set once this replica applied its own removal: it serves no client and proposes nothing.
   * It still steps messages, ticks and persists until the host destroys it: the survivors
   * may not know yet that its removal committed, and a group shrinking from two voters to
   * one needs its vote to elect the survivor, which then commits the removal.
   */
  removed = false;
  /** Set when the host destroyed this replica (its data is dropped): it does nothing any more. */
  destroyed = false;
  /** Replica id → node id learned from received messages (senders not in `machine.members`, e.g. for a new learner). */
  readonly learnedNodes = new Map<number, string>();
  /** The follower side of the lease: when the leader last spoke, and what this replica promised it. */
  readonly promise: LeaderPromise;

  pendingTicks = 0;
  /** Callbacks of the expire entry this leader proposed and that has not applied (or failed); undefined when none is out. */
  private expireWaiters: ((applied: boolean) => void)[] | undefined;
  /** True while this replica does not tick: its group sleeps (`quiescence.ts`). Any input but sleep clears it. */
  quiesced = false;
  /** Ticks since this replica last had anything to do but heartbeats (a leader quiesces after `QUIESCE_AFTER_TICKS`). */
  idleTicks = 0;
  /** The last quiesce heartbeat received and not yet stepped: stepping it may put this follower to sleep. */
  private quiesceHeartbeat: Message | undefined;
  /** A follower asked this sleeping replica to wake (see {@link receive}). */
  private wakeRequested = false;
  private inbox: Message[] = [];
  private membersCache: {
    confState: ConfState; machine: KvStateMachine; epoch: number; learned: number; members: readonly Readonly<ShardMember & { learner: boolean }>[];
  } | undefined;
  private readonly actions: ControlAction[] = [];
  private readonly writes: WritePath;
  private readonly reads: ReadPath;
  /** Bounds the writes and reads waiting here (queued, proposed, or waiting for a read round). */
  private readonly admission: ReplicaAdmission;
  /** When this replica snapshots and how much log it keeps (`replica-snapshots.ts`). */
  private readonly snapshots: ReplicaSnapshots;
  private readonly logger: Logger;
  private readonly runtime: NodeRuntime;
  private readonly events: ReplicaEvents | undefined;
  private readonly leaderKnown: (() => void) | undefined;
  private readonly leaseMs: number;

  constructor(options: ReplicaOptions) {
    this.shardId = options.shardId;
    this.replicaId = options.replicaId;
    this.storage = options.storage;
    this.machine = options.machine;
    this.logger = options.logger;
    this.runtime = options.runtime ?? systemRuntime;
    this.snapshots = new ReplicaSnapshots(options.storage, {
      intervalEntries: options.snapshotIntervalEntries,
      logBytes: options.snapshotLogBytes ?? Number.POSITIVE_INFINITY,
      spread: options.snapshotSpread ?? 1,
      retainedEntries: options.retainedEntries,
      retainedBytes: options.retainedBytes ?? Number.POSITIVE_INFINITY,
      budget: options.snapshotBudget,
    });
    this.events = options.events;
    this.leaderKnown = options.leaderKnown;
    this.leaseMs = options.leaseMs ?? 0;
    this.admission = options.admission ?? new ReplicaAdmission();
    this.promise = new LeaderPromise(options.voteGuardMs ?? 0, this.runtime.monotonicMs(), options.recovered === true);
    const initial = options.storage.initialState();
    this.confState = initial.confState;
    this.term = initial.hardState.term;
    this.vote = initial.hardState.vote;
    this.rawNode = new RawNode({ ...options.raft, id: options.replicaId, storage: options.storage, applied: this.machine.appliedIndex });
    const paths = { shardId: options.shardId, rawNode: this.rawNode, runtime: this.runtime, machine: () => this.machine, events: options.events };
    this.writes = new WritePath(paths);
    this.reads = new ReadPath({ ...paths, leaseMs: this.leaseMs, unsafeStaleReads: options.unsafeStaleReads === true });
  }

  /** True while the group has no configuration (created without members, waiting for the leader). */
  get uninitialized(): boolean {
    return this.confState.voters.length === 0 && this.confState.learners.length === 0;
  }

  /** The node hosting `replicaId` in this group, when known. */
  nodeIdOf(replicaId: number): string | undefined {
    return this.machine.members.get(replicaId) ?? this.learnedNodes.get(replicaId);
  }

  /**
   * The group's members with their node ids and learner flags, as applied: the same array
   * until the configuration, the state machine or the learned node ids change (heartbeats
   * ask for every replica's each second).
   */
  members(): readonly Readonly<ShardMember & { learner: boolean }>[] {
    const cached = this.membersCache;
    if (cached !== undefined && cached.confState === this.confState && cached.machine === this.machine && cached.epoch === this.machine.epoch &&
      cached.learned === this.learnedNodes.size) {
      return cached.members;
    }
    const members: (ShardMember & { learner: boolean })[] = [];
    for (const replicaId of this.confState.voters) members.push({ replicaId, nodeId: this.nodeIdOf(replicaId) ?? '', learner: false });
    for (const replicaId of this.confState.learners) members.push({ replicaId, nodeId: this.nodeIdOf(replicaId) ?? '', learner: true });
    this.membersCache = { confState: this.confState, machine: this.machine, epoch: this.machine.epoch, learned: this.learnedNodes.size, members };
    return members;
  }

  // ---- inputs, queued for the next turn --------------------------------------------------------

  /** Queues a received message; `quiesce`: a leader's quiesce heartbeat (`quiescence.ts`). */
  receive(message: Message, quiesce = false): void {
    this.inbox.push(message);
    if (quiesce) {
      if (message.type === MessageType.Heartbeat) this.quiesceHeartbeat = message;
    } else if (message.type === MessageType.HeartbeatResponse && this.quiesced) {
      // A heartbeat answer not flagged as a sleeping follower's: a follower woke and wants its
      // sleeping leader to heartbeat again (`quiescence.ts`).
      this.wakeRequested = true;
    }
  }

  /**
   * Queues a write; the callback gets the result once its entry applies, or at once when the
   * replica holds as many waiting requests as it admits (`replica-admission.ts`).
   */
  write(request: WriteRequest, callback: WriteCallback): void {
    const clientIdBytes = 'session' in request ? request.session?.clientId.length ?? 0 : 0;
    const admitted = this.admission.admit(requestBytes(writeRequestBytes(request), 0, clientIdBytes), callback);
    if (typeof admitted === 'string') {
      callback({ ok: false, reason: refusalReason(admitted) });
      return;
    }
    this.writes.queue(request, admitted);
  }

  /**
   * A linearizable read of `key` (latin1 key string): answered at once under the lease when
   * nothing is left to apply (`ReadPath.tryNow`), refused at once like a write past the bound,
   * or queued for the next turn. True when `callback` already ran: no turn is needed.
   */
  read(key: string, callback: ReadCallback): boolean {
    if (!this.removed && !this.destroyed && this.reads.tryNow(key, callback, this.role === Role.Leader)) return true;
    const admitted = this.admission.admit(requestBytes(key.length), callback);
    if (typeof admitted === 'string') {
      callback({ ok: false, reason: refusalReason(admitted) });
      return true;
    }
    this.reads.queue(key, admitted);
    return false;
  }

  /** The log time this leader would stamp a proposal with now (see `WritePath.logTimeNow`). */
  logTimeNowMs(): number {
    return this.writes.logTimeNow();
  }

  /**
   * Proposes an expire entry: its log time removes every key whose expiry it reached, on every
   * replica (`KvStateMachine.removeExpired`). `callback` runs once it applied (true) or failed
   * (false). At most one is out per replica: a caller while one is out waits for that one — so
   * not counted against the admission bounds. A read that waits on one proposed after it found
   * its key due is answered after it: its stamp is at least the log time the read saw.
   */
  proposeExpire(callback?: (applied: boolean) => void): void {
    if (this.removed || this.destroyed) {
      callback?.(false);
      return;
    }
    if (this.expireWaiters !== undefined) {
      if (callback !== undefined) this.expireWaiters.push(callback);
      return;
    }
    const waiters: ((applied: boolean) => void)[] = callback === undefined ? [] : [callback];
    this.expireWaiters = waiters;
    this.writes.queue({ op: CommandOp.Expire, key: EMPTY_KEY }, (outcome) => {
      this.expireWaiters = undefined;
      for (const waiter of waiters) waiter(outcome.ok);
    });
  }

  /**
   * A leader's expiry check, once per host tick: proposes an expire entry when a key's expiry is
   * due by its log clock, or when keys expire and log time has not moved for
   * {@link EXPIRY_CLOCK_MS} (so an idle shard's log time, which moves only with entries, lags
   * real time by at most about that much: a key outlives its TTL by at most that after a failover).
   */
  expiryTick(nowMs: number): boolean {
    if (this.role !== Role.Leader || this.removed || this.destroyed || this.expireWaiters !== undefined) return false;
    const next = this.machine.nextExpiryMs;
    if (next === undefined) return false;
    if (nowMs - this.writes.lastStampMs < EXPIRY_CLOCK_MS && next > this.writes.logTimeNow()) return false;
    this.proposeExpire();
    return true;
  }

  /** Queues a control action (placement command or transport report). */
  control(action: ControlAction): void {
    this.actions.push(action);
  }

  /** True when the next turn has something to do for this replica. */
  hasWork(): boolean {
    if (this.destroyed) return false;
    return (
      this.pendingTicks > 0 ||
      this.inbox.length > 0 ||
      this.writes.ready(this.role === Role.Leader) ||
      this.reads.hasQueued ||
      this.actions.length > 0 ||
      this.rawNode.hasReady()
    );
  }

  // ---- one turn --------------------------------------------------------------------------------

  /**
   * Feeds everything queued since the last turn into the Raft node: ticks first, then the
   * inbox, then control actions, proposals and reads. Control actions run AFTER the inbox,
   * so a campaign sees every leader message that arrived before it (the promise).
   * `light`: a light turn's step, while this replica's Ready may still be out (see the rule below).
   */
  step(light = false): void {
    if (this.destroyed) return;
    if (this.removed) this.failQueued('UNAVAILABLE');
    const nowMs = this.runtime.monotonicMs();
    if (this.pendingTicks > 0) this.stepTicks(nowMs);
    const inbox = this.inbox;
    this.inbox = [];
    for (let i = 0; i < inbox.length; i++) {
      const message = inbox[i] as Message;
      if (light && message.type === MessageType.Snapshot) {
        // Rule: a light turn never steps a snapshot. Its Ready is still out, and may hold
        // committed membership changes to apply after the sync; restoring the core's
        // membership under them would let the stale change apply on top of the snapshot's
        // (the core and the group would then count different voters). The snapshot and
        // everything after it wait, in order, for the next full turn. Asserted in
        // installSnapshot: the core's membership is the snapshot's.
        this.inbox = inbox.slice(i);
        break;
      }
      this.stepMessage(message, nowMs);
      // In order: a quiesce heartbeat may put a follower to sleep, anything after it but a
      // heartbeat answer wakes it again (`quiescence.ts`).
      if (message === this.quiesceHeartbeat) {
        this.quiesceHeartbeat = undefined;
        // Not with requests waiting (writes a deposed leader took): their deadlines are checked on ticks.
        this.quiesced = this.waitingRequests === 0 && followerMayQuiesce(this.rawNode, message);
        this.idleTicks = 0;
      } else if (message.type !== MessageType.HeartbeatResponse) {
        this.wake();
      }
    }
    if (this.wakeRequested || this.actions.length > 0 || this.writes.hasQueued || this.reads.hasQueued) this.wake();
    this.wakeRequested = false;
    for (const action of this.actions.splice(0)) this.runAction(action, nowMs);
    this.writes.propose(this.role === Role.Leader);
    this.reads.startQueued(this.role === Role.Leader);
  }

  /** Ticks again from the next tick on (`quiescence.ts`). */
  wake(): void {
    this.quiesced = false;
    this.idleTicks = 0;
  }

  /**
   * Puts this leader's group to sleep when it may (`quiescence.ts`): returns the quiesce
   * heartbeats to send, flagged, or undefined when it stays awake. Called between turns, with
   * no Ready of this replica waiting for a sync; `live(replicaId)`: that member's node is live.
   */
  quiesce(live: (replicaId: number) => boolean): Message[] | undefined {
    if (this.quiesced || this.removed || this.destroyed || this.hasWork() || this.waitingRequests > 0) return undefined;
    // A group holding keys that expire stays awake: its leader proposes their expiry (expiryTick).
    if (this.machine.nextExpiryMs !== undefined) return undefined;
    // The heartbeats carry the term: it must be durable (it is once a leader's first Ready synced).
    if (this.term !== this.rawNode.term()) return undefined;
    const heartbeats = quiesceHeartbeats(this.rawNode, this.machine.appliedIndex, live);
    if (heartbeats !== undefined) this.quiesced = true;
    return heartbeats;
  }

  /**
   * Steps the ticks gathered since the last turn. An election timeout is at least
   * `electionTick` ticks of this process's clock after the leader's last message, longer
   * than the promise; the fast failover's skip-ahead happens only once the promise ran
   * out. So a campaign started here never breaks the promise: asserted.
   */
  private stepTicks(nowMs: number): void {
    const wasFollower = this.rawNode.role() === Role.Follower;
    for (; this.pendingTicks > 0; this.pendingTicks--) this.rawNode.tick();
    if (wasFollower && this.rawNode.role() !== Role.Follower) {
      assertInvariant(!this.promise.forbidsCampaign(nowMs), 'election timeout inside the promise to the last leader', {
        shard: this.shardId, replica: this.replicaId, remainingMs: this.promise.remainingMs(nowMs),
      });
    }
  }

  private stepMessage(message: Message, nowMs: number): void {
    const type = message.type;
    if ((type === MessageType.Vote || type === MessageType.PreVote) && this.promise.ignoresVoteRequests(nowMs)) {
      this.logger.debug('vote request ignored: replica just recovered', { from: message.from });
      return;
    }
    this.rawNode.step(message);
    // An accepted message of the current leader (re)starts the promise not to help elect
    // another before voteGuardMs: the leader's lease rests on it (replica-reads.ts).
    if (
      (type === MessageType.Append || type === MessageType.Heartbeat || type === MessageType.Snapshot) &&
      message.from === this.rawNode.leaderId() &&
      message.term === this.rawNode.term()
    ) {
      this.promise.heardFromLeader(nowMs);
    }
  }

  private runAction(action: ControlAction, nowMs: number): void {
    switch (action.kind) {
      case 'campaign':
        // Re-checked here, after this turn's inbox: a leader message stepped a moment ago
        // renewed the promise (and maybe that leader's lease), whatever the caller saw.
        if (this.promise.forbidsCampaign(nowMs)) {
          this.logger.debug('campaign skipped: promise to the leader still runs', { remainingMs: this.promise.remainingMs(nowMs) });
          return;
        }
        // A vote round under way (the core's role: the host's copy lags a Ready behind) would
        // only be restarted a term higher, its incoming votes ignored.
        if (this.rawNode.role() === Role.Candidate) return;
        this.rawNode.campaign();
        return;
      case 'forget-leader':
        // The same rule as a campaign: once forgotten, the leader's lease no longer keeps this
        // replica from granting votes, so it must no longer be owed anything.
        if (this.promise.forbidsCampaign(nowMs) || this.rawNode.leaderId() !== action.leader) {
          this.logger.debug('leader not forgotten: heard from it, or another leads', { leader: action.leader, remainingMs: this.promise.remainingMs(nowMs) });
          return;
        }
        this.rawNode.forgetLeader();
        this.logger.info('leader forgotten: its node seems down', { leader: action.leader, term: this.rawNode.term() });
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

  /** Takes this turn's Ready, if any, and writes its state to storage (buffered until the host's sync). */
  collectReady(): Ready | undefined {
    if (this.destroyed || !this.rawNode.hasReady()) return undefined;
    const ready = this.rawNode.ready();
    if (this.leaseMs > 0 && this.rawNode.isLeader()) {
      // The transferee campaigns past every follower's promise: from the moment TimeoutNow
      // leaves (it is sent from this Ready), another leader may be elected.
      for (const message of ready.messages) if (message.type === MessageType.TimeoutNow) this.reads.revokeLease(this.rawNode.term());
    }
    if (ready.snapshot !== undefined) this.storage.applySnapshot(ready.snapshot);
    if (ready.entries.length > 0) this.storage.append(ready.entries);
    if (ready.hardState !== undefined) this.storage.setHardState(ready.hardState);
    return ready;
  }

  /**
   * True when the host must sync before finishing this Ready: it writes something
   * (`mustSync`), or it applies a membership change. A replica applies a membership change
   * only once the commit index covering it is durable here: the manager acts on the applied
   * configuration (it destroys a removed replica), and a replica that restarted without
   * knowing the change committed would count the old configuration again — for a group
   * shrinking from two voters to one, a quorum that no longer exists. The sync makes the
   * latest commit index the core handed out durable, whichever Ready carried it.
   */
  needsSync(ready: Ready): boolean {
    return ready.mustSync || ready.committedEntries.some((entry) => entry.type === EntryType.ConfChange);
  }

  /**
   * True when this Ready's messages may leave before its fsync. Only a leader's may, and
   * only when the Ready changes neither term nor vote (nor installs a snapshot): its
   * appends carry entries that are not durable here yet, which is safe because the core
   * counts them toward commit only once they are (`Raft.onStable`), but a term or vote
   * not yet durable would let a restarted replica reuse the term with different entries.
   */
  maySendBeforeSync(ready: Ready): boolean {
    if (ready.snapshot !== undefined) return false;
    if ((ready.softState?.role ?? this.role) !== Role.Leader) return false;
    const hardState = ready.hardState;
    return hardState === undefined || (hardState.term === this.term && hardState.vote === this.vote);
  }

  /**
   * In a light turn (a sync is in flight, so no Ready is taken): sends what needs nothing
   * made durable — heartbeats, a leader's appends, heartbeat answers, forwarded reads — and
   * serves the reads a confirmed round unblocks (`RawNode.takeSendable`).
   */
  sendWithoutSync(router: MessageRouter): void {
    if (this.destroyed) return;
    const { messages, readStates } = this.rawNode.takeSendable();
    for (const message of messages) router.route(this, message);
    for (const readState of readStates) this.reads.onReadState(readState.index, readState.context);
    this.reads.serve();
  }

  /**
   * Before the host's fsync: applies the committed entries this replica made durable in
   * earlier turns — those below the first entry this Ready writes, up to the first
   * membership change — and answers the reads
   * they unblock. Committed means durable on a majority, and these are durable here too, so
   * acknowledging them need not wait for this turn's fsync, which covers only newer entries
   * (the host takes a replica's next Ready only after its previous one's sync completed).
   * {@link handleReady} applies the rest; applying is idempotent by index.
   */
  applyDurable(ready: Ready): void {
    if (this.destroyed || ready.softState !== undefined || ready.snapshot !== undefined) return;
    const firstNewIndex = ready.entries[0]?.index ?? Number.POSITIVE_INFINITY;
    for (const entry of ready.committedEntries) {
      // A membership change waits for the sync: see needsSync.
      if (entry.index >= firstNewIndex || entry.type === EntryType.ConfChange) break;
      this.applyEntry(entry);
    }
    for (const readState of ready.readStates) this.reads.onReadState(readState.index, readState.context);
    this.reads.serve();
  }

  /**
   * After the host's fsync: sends the messages (unless the host already did, `router`
   * undefined), applies the snapshot and committed entries, answers reads, advances.
   */
  handleReady(ready: Ready, router: MessageRouter | undefined): void {
    if (ready.softState !== undefined) this.changeRole(ready.softState.role, ready.softState.leaderId);
    if (ready.hardState !== undefined) {
      this.term = ready.hardState.term;
      this.vote = ready.hardState.vote;
    }
    if (router !== undefined) for (const message of ready.messages) router.route(this, message);
    if (ready.snapshot !== undefined) this.installSnapshot(ready.snapshot.metadata.index, ready.snapshot.data, ready.snapshot.metadata.confState);
    for (const entry of ready.committedEntries) this.applyEntry(entry);
    for (const readState of ready.readStates) this.reads.onReadState(readState.index, readState.context);
    this.reads.serve();
    this.rawNode.advance(ready);
    this.maybeSnapshot();
  }

  private changeRole(role: Role, leaderId: number): void {
    const wasLeader = this.role === Role.Leader;
    const leaderLearned = leaderId !== 0 && leaderId !== this.leaderId;
    this.role = role;
    this.leaderId = leaderId;
    if (leaderLearned) {
      this.events?.leaderChanged(this.shardId);
      this.leaderKnown?.();
    }
    const term = this.rawNode.term();
    if (role === Role.Leader && !wasLeader) {
      this.writes.becameLeader();
      this.leaderSinceMs = this.runtime.monotonicMs();
      this.logger.info('became leader', { term });
    }
    if (wasLeader && role !== Role.Leader) {
      this.logger.info('lost leadership', { term, leader: leaderId });
      this.reads.onLostLeadership();
    }
  }

  private installSnapshot(index: number, data: Uint8Array, confState: ConfState): void {
    this.machine = KvStateMachine.fromSnapshot(data);
    if (this.machine.appliedIndex !== index) {
      throw new Error(`snapshot at index ${index} holds state applied through ${this.machine.appliedIndex}`);
    }
    this.confState = { voters: [...confState.voters], learners: [...confState.learners] };
    const counted = this.rawNode.confState();
    assertInvariant(sameMembers(counted.voters, confState.voters) && sameMembers(counted.learners, confState.learners),
      'the core counts another membership than the installed snapshot', { shard: this.shardId, replica: this.replicaId, index, core: counted, snapshot: confState });
    this.snapshots.installed(index, data.length);
    this.writes.dropCoveredBy(index);
    this.events?.snapshotInstalled(this.shardId);
    this.logger.info('snapshot installed', { index, epoch: this.machine.epoch, keys: this.machine.keyCount });
  }

  private applyEntry(entry: Entry): void {
    if (entry.index <= this.machine.appliedIndex) return;
    this.snapshots.applied(entry.data.length);
    const pending = this.writes.take(entry.index);
    let outcome: WriteOutcome = { ok: false, reason: 'DROPPED' };
    if (entry.type === EntryType.ConfChange) {
      this.applyConfChange(entry);
    } else if (entry.data.length === 0) {
      this.machine.applyEmpty(entry.index);
    } else {
      const expiredBefore = this.machine.expiredTotal;
      const result = this.machine.applyCommand(entry.index, entry.data);
      if (this.machine.expiredTotal > expiredBefore) this.events?.keysExpired(this.shardId, this.machine.expiredTotal - expiredBefore);
      if (pending !== undefined && pending.term === entry.term) {
        // Committed: a quorum accepted an append sent after the proposal.
        this.reads.renewLease(pending.term, pending.proposedMs);
        outcome = { ok: true, result };
      }
    }
    this.events?.entryApplied?.(this, entry);
    pending?.callback(outcome);
  }

  private applyConfChange(entry: Entry): void {
    const change = decodeConfChange(entry.data);
    const wasMember = this.confState.voters.includes(change.replicaId) || this.confState.learners.includes(change.replicaId);
    this.confState = this.rawNode.applyConfChange(change);
    // The lease was earned from the old configuration's quorum.
    this.reads.revokeLease();
    if (change.type === ConfChangeType.RemoveReplica) {
      this.machine.applyMembershipChange(entry.index, { type: 'remove', replicaId: change.replicaId });
    } else {
      const nodeId = nodeIdFromContext(change.context) ?? this.nodeIdOf(change.replicaId) ?? '';
      this.machine.applyMembershipChange(entry.index, { type: 'add', replicaId: change.replicaId, nodeId });
      // A new member must start from a snapshot holding the whole configuration (the
      // bootstrap members' node ids are in no log entry), so the group's latest snapshot
      // must not be the empty bootstrap one. The log is compacted as usual: other followers
      // keep catching up from entries.
      if (!wasMember) this.snapshots.memberJoined();
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

  /**
   * Snapshots every `snapshotIntervalEntries`, or once the entries applied since the last hold
   * `snapshotLogBytes` (or the last snapshot's size, if more), both times `snapshotSpread`, or
   * now when one is wanted, within the turn's budget; then compacts the log, keeping at most
   * `retainedEntries` (and `retainedBytes`) behind the snapshot (`replica-snapshots.ts`).
   * Returns true if it wrote one. The log lives in memory until compacted: the byte bound keeps
   * a node with many busy groups of large values from holding gigabytes of it (and the garbage
   * collector from walking it).
   */
  private maybeSnapshot(): boolean {
    if (this.removed) return false;
    const taken = this.snapshots.maybeTake(this.machine.appliedIndex, this.confState, () => this.machine.encodeSnapshot());
    if (taken === undefined) return false;
    this.events?.snapshotCreated(this.shardId);
    this.logger.debug('snapshot taken', taken);
    return true;
  }

  /** Asks for a snapshot at the next turn: the WAL's oldest segments wait for this group's (`wal-purge.ts`). */
  requestSnapshot(): void {
    this.snapshots.request();
  }

  /**
   * In a turn where this replica has no Ready: takes the snapshot asked for, if any. It needs
   * no sync of the turn's: the storage makes it durable on its own (`wal.ts`).
   */
  snapshotIfWanted(): void {
    if (this.snapshots.wanted) this.maybeSnapshot();
  }

  /** True when a snapshot this replica was due waits for a turn with room in the budget (`snapshot-budget.ts`). */
  get snapshotDue(): boolean {
    return this.snapshots.putOff && !this.removed;
  }

  // ---- deadlines and shutdown --------------------------------------------------------------------

  /** Answers TIMEOUT to every write and read past its deadline (monotonic ms). */
  expire(nowMs: number): void {
    this.writes.expire(nowMs);
    this.reads.expire(nowMs);
  }

  private failQueued(reason: FailureReason): void {
    this.writes.failQueued(reason);
    this.reads.failQueued(reason);
  }

  /** Answers every waiting request with `reason` (shutdown, removal, destruction). */
  failAll(reason: FailureReason): void {
    this.writes.failAll(reason);
    this.reads.failAll(reason);
    this.inbox = [];
  }

  /** True while this leader may answer reads under its lease (the simulator checks no other leader exists meanwhile). */
  holdsLease(): boolean {
    return this.reads.inLease(this.runtime.monotonicMs());
  }

  /** Number of writes and reads waiting for an answer (tests, metrics). */
  get waitingRequests(): number {
    return this.writes.waiting + this.reads.waiting;
  }

  /** Requests and request bytes counted against this replica's bound (tests, metrics). */
  get admitted(): { requests: number; bytes: number } {
    return { requests: this.admission.requests, bytes: this.admission.bytes };
  }
}

/** The failure a request refused at the replica's bound is answered with. */
function refusalReason(refusal: ReplicaRefusal): FailureReason {
  return refusal === 'replica_requests' ? 'REPLICA_REQUESTS_FULL' : 'REPLICA_BYTES_FULL';
}

/** True when two replica id lists hold the same ids. */
function sameMembers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((id) => set.has(id));
}
