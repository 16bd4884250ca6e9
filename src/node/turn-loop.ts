/**
 * The host's turn loop: how the node turns every replica's Ready into WAL writes, one
 * fsync, sends and applies (C `store_raft.go` + `scheduler.go`; T: groups share one log
 * with group commit).
 *
 * Inputs (ticks, messages, proposals, reads, placement actions) only queue work on a
 * replica and mark it. A turn then runs every marked replica at most once:
 *
 * 1. step its queued inputs into its RawNode;
 * 2. take its Ready and write hard state, entries and snapshot into the shared WAL;
 * 3. send a leader's messages at once when {@link Replica.maySendBeforeSync} allows it,
 *    and apply committed entries this replica made durable in earlier turns;
 * 4. ONE `sync()` for all replicas;
 * 5. after it: send the remaining messages (follower acks, votes), apply the rest, advance;
 * 6. flush the transport: one `SendRequest` per peer node for the whole turn.
 *
 * While a sync is in flight no such turn runs: inputs gather, so the busier the node the
 * more work each fsync covers. But every tick runs a **light turn** meanwhile: each marked
 * replica steps its inputs and sends only what needs nothing made durable
 * ({@link Replica.sendWithoutSync}: heartbeats, a leader's appends, heartbeat answers). So
 * a node whose fsync stalls for seconds keeps its leaderships — heartbeats go on, and
 * CheckQuorum sees its followers' answers — and its followers keep answering their leaders.
 *
 * **An inline fsync.** While its disk proves fast, the WAL fsyncs on this thread
 * (`fsync-policy.ts`): `sync()` then returns a promise already settled, and the waiting
 * Readies finish in the microtasks right after the turn, before any input is read. That is
 * one of the orders the thread-pool fsync allows already (a sync that ends before anything
 * else arrives), so every rule below holds unchanged; only the light turns cannot run
 * during it. The policy's bound: an inline fsync that meets a stall holds the node for as
 * long as it lasts, one per backoff at most; the fsyncs after it run on the thread pool, and
 * the light turns with them.
 *
 * ## The durability order (what keeps early sends and early applies safe)
 * - **A replica takes its next Ready only once the sync of its previous Ready finished.**
 *   So when it takes a Ready, everything it wrote before is durable: {@link Replica.applyDurable}
 *   may apply committed entries below the Ready's first new entry before this turn's fsync.
 * - **A turn never starts while a sync is in flight** (only light turns, which take no Ready
 *   and write nothing). Inputs arriving meanwhile wait for the next turn, so the busier the
 *   node the more work each fsync covers (measured on the 2-core bench machine: overlapping
 *   turns, each with its own sync, cost ~20% more CPU per operation), and the WAL's batches
 *   are strictly ordered, one behind the other. What a light turn sends carries only the
 *   durable term and acknowledges nothing unsynced (checked by the core).
 * - **A leader counts its own entries toward commit only once they are synced** (the Raft
 *   core: `Raft.onStable`, called from `advance()` after this loop's fsync), and sends before
 *   its fsync only Readies that change neither term nor vote. So no message that leaves
 *   early carries a commit index beyond what a synced majority holds, nor a term that a
 *   power cut could make the leader forget.
 * - **A membership change applies only once the commit index covering it is durable**
 *   ({@link Replica.needsSync}): the manager acts on applied configurations.
 * Messages that depend on anything else — a follower's acknowledgement of entries, a vote,
 * a snapshot — leave only after the sync (the Ready contract: persist, then send).
 * The first three are asserted below and in the core.
 * @internal
 */
import { assertInvariant, type Message, MessageType, type Ready } from '../raft/index.js';
import type { RaftHostEvents } from './node-metrics.js';
import type { MessageRouter, Replica } from './replica.js';
import type { NodeRuntime } from './runtime.js';
import type { SnapshotBudget } from './snapshot-budget.js';

/** What the loop drives. */
export interface TurnLoopOptions {
  runtime: NodeRuntime;
  /** Makes every buffered WAL write durable (one fsync for all groups). */
  sync(): Promise<void>;
  /** Sends what the turn queued: one batch per peer. */
  flush(): void;
  /** Routes a replica's messages; `isHosted` says whether a replica is still the shard's own (not destroyed). */
  router: MessageRouter & { isHosted(replica: Replica): boolean };
  events: RaftHostEvents | undefined;
  /** Called once when a turn or a sync fails: the node cannot go on. */
  onFatal(error: unknown): void;
  /** Refilled at each turn and each sync's completion, where replicas snapshot (`snapshot-budget.ts`). */
  snapshotBudget?: SnapshotBudget;
}

/** Runs turns over the marked replicas. */
export class TurnLoop {
  private readonly marked = new Set<Replica>();
  /** Replicas whose Ready waits for the sync in flight: they take no new Ready until it ends. */
  private readonly syncing = new Set<Replica>();
  /** The sync on disk, with the Readies waiting for it; undefined between syncs. */
  private syncInFlight: Promise<void> | undefined;
  private turnScheduled = false;
  /** A tick came while a sync is in flight: the next scheduled run is a light turn. */
  private lightTurnDue = false;
  private closed = false;
  /** Counters for tests and metrics. */
  readonly stats = { turns: 0, lightTurns: 0, syncs: 0 };

  constructor(private readonly options: TurnLoopOptions) {}

  /** Marks a replica for the next turn and makes sure a turn will run. */
  mark(replica: Replica): void {
    if (this.closed) return;
    this.marked.add(replica);
    this.schedule();
  }

  /** A tick marked the replicas: while a sync is in flight, they get a light turn. */
  ticked(): void {
    if (this.syncInFlight === undefined) return;
    this.lightTurnDue = true;
    this.schedule();
  }

  /** True while `replica`'s Ready waits for the sync in flight. */
  isSyncing(replica: Replica): boolean {
    return this.syncing.has(replica);
  }

  /** Forgets a destroyed replica. */
  forget(replica: Replica): void {
    this.marked.delete(replica);
  }

  private schedule(): void {
    if (this.turnScheduled || this.closed) return;
    this.turnScheduled = true;
    this.options.runtime.runSoon(() => this.runTurns());
  }

  private runTurns(): void {
    this.turnScheduled = false;
    if (this.closed || this.marked.size === 0) return;
    try {
      if (this.syncInFlight !== undefined) {
        // The sync's end schedules the next turn; a tick meanwhile gets a light one.
        if (this.lightTurnDue) this.lightTurn();
        return;
      }
      this.turn();
    } catch (error) {
      this.fail(error);
      return;
    }
    if (this.marked.size > 0 && this.syncInFlight === undefined) this.schedule();
  }

  private fail(error: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.options.onFatal(error);
  }

  /**
   * A light turn, while a sync is in flight: every marked replica steps its inputs and
   * sends what needs nothing made durable. The replicas stay marked: their Readies wait for
   * the turn after the sync. Snapshots wait too (`Replica.step`): restoring one could change
   * the membership under a Ready whose membership changes are still to apply.
   */
  private lightTurn(): void {
    this.lightTurnDue = false;
    this.stats.lightTurns += 1;
    const router = this.options.router;
    for (const replica of this.marked) {
      if (!router.isHosted(replica)) continue;
      replica.step(true);
      replica.sendWithoutSync(router);
    }
    this.options.flush();
  }

  /** One turn: every marked replica steps, takes its Ready and writes it; one sync for all. */
  private turn(): void {
    assertInvariant(this.syncInFlight === undefined && this.syncing.size === 0, 'a turn started while a sync is in flight', {
      syncing: this.syncing.size,
    });
    this.stats.turns += 1;
    this.options.snapshotBudget?.refill();
    const batch = [...this.marked];
    this.marked.clear();
    const waiting: [Replica, Ready, boolean][] = [];
    const router = this.options.router;
    for (const replica of batch) {
      replica.step();
      const ready = replica.collectReady();
      if (ready === undefined) {
        // A snapshot needs no sync: its marker follows its file (wal.ts), and nothing waits for it.
        replica.snapshotIfWanted();
        // Put off by this turn's snapshot budget: the next turn (an idle replica has no Ready to bring it back).
        if (replica.snapshotDue) this.marked.add(replica);
        continue;
      }
      if (!replica.needsSync(ready)) {
        // Nothing to make durable (a commit-index-only hard state rides along with the
        // next sync): heartbeat and read-index answers, applying entries synced earlier.
        replica.handleReady(ready, router);
        if (replica.hasWork() || replica.snapshotDue) this.marked.add(replica);
        continue;
      }
      const sendEarly = replica.maySendBeforeSync(ready);
      if (sendEarly) {
        for (const message of ready.messages) {
          assertInvariant(carriesDurableTerm(message, replica.term), 'a message sent before the sync carries a term not yet durable', {
            shard: replica.shardId, type: message.type, term: message.term, durableTerm: replica.term,
          });
          router.route(replica, message);
        }
      }
      replica.applyDurable(ready);
      this.syncing.add(replica);
      waiting.push([replica, ready, sendEarly]);
    }
    this.options.flush();
    if (waiting.length > 0) this.startSync(waiting);
  }

  /** One fsync for every group's writes of this turn; the waiting Readies finish after it. */
  private startSync(waiting: [Replica, Ready, boolean][]): void {
    this.stats.syncs += 1;
    const runtime = this.options.runtime;
    const router = this.options.router;
    const syncStartMs = runtime.monotonicMs();
    const synced = this.options.sync().then(() => {
      this.options.events?.walSynced((runtime.monotonicMs() - syncStartMs) / 1000);
      this.options.snapshotBudget?.refill();
      for (const [replica, ready, messagesSent] of waiting) {
        this.syncing.delete(replica);
        if (!router.isHosted(replica)) continue; // destroyed meanwhile
        replica.handleReady(ready, messagesSent ? undefined : router);
        if (replica.hasWork() || replica.snapshotDue) this.marked.add(replica);
      }
      // With a turn to come (it starts as soon as this callback returns), its flush carries
      // these acks together with its own messages: one SendRequest per peer instead of two.
      if (this.marked.size === 0) this.options.flush();
    });
    this.syncInFlight = synced;
    synced.then(
      () => {
        this.syncInFlight = undefined;
        this.syncing.clear();
        if (this.marked.size > 0) this.schedule();
      },
      (error: unknown) => {
        this.syncInFlight = undefined;
        this.fail(error);
      },
    );
  }

  /** Stops taking turns and waits for the sync in flight to end. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.syncInFlight !== undefined) await this.syncInFlight.catch(() => undefined);
  }
}

/**
 * What a message sent before the sync may carry: the durable term, or no term (a
 * follower's ReadIndex). A pre-vote answer is the exception by design: a granted one
 * carries the asker's next term, and neither it nor the pre-vote it answers changes or
 * relies on anything durable (a leader that won this very turn may have granted one in
 * the same Ready: simulator seed 33764).
 */
function carriesDurableTerm(message: Message, durableTerm: number): boolean {
  return message.term === 0 || message.term === durableTerm || message.type === MessageType.PreVoteResponse;
}
