/**
 * Fast failover: when the stream to a peer node breaks (the node may have crashed), the
 * followers whose leader it hosts skip ahead one election timeout, and one designated
 * successor campaigns at once, so every shard is writable again within ~1.5 s of a
 * kill -9 instead of waiting out a full randomized timeout (and a split vote).
 *
 * A broken stream does not prove the leader dead: a network fault can cut it while the
 * leader still answers reads under a lease our last acknowledgement backs. So nothing here
 * may break this replica's promise to that leader (`replica-reads.ts`): the skip waits
 * until the promise ran out, and the successor's campaign is a `campaign` control action,
 * which the replica re-checks against the promise when it runs, after that turn's inbox —
 * a heartbeat that arrived in between (and that the replica acknowledges) renews it.
 * @internal
 */
import { Role } from '../raft/index.js';
import type { Replica } from './replica.js';
import type { NodeRuntime } from './runtime.js';

/** What the failover needs from the host. */
export interface FailoverHost {
  replicas(): Iterable<Replica>;
  mark(replica: Replica): void;
  /** True once the host stopped. */
  readonly isClosed: boolean;
}

/** Timing of the groups (the host's settings). */
export interface FailoverTiming {
  electionTick: number;
  tickIntervalMs: number;
}

/** Reacts to broken peer streams. */
export class FastFailover {
  constructor(
    private readonly host: FailoverHost,
    private readonly runtime: NodeRuntime,
    private readonly timing: FailoverTiming,
  ) {}

  /** The stream to `nodeId` failed: fail over every shard whose leader it hosts, once the promise allows. */
  peerFailed(nodeId: string): void {
    for (const replica of this.host.replicas()) {
      if (replica.removed || replica.role !== Role.Follower || replica.leaderId === 0) continue;
      if (replica.nodeIdOf(replica.leaderId) !== nodeId) continue;
      const failedLeader = replica.leaderId;
      const waitMs = replica.promise.remainingMs(this.runtime.monotonicMs());
      if (waitMs <= 0) this.failOver(replica, failedLeader);
      else this.runtime.runAfter(Math.ceil(waitMs), () => this.failOver(replica, failedLeader));
    }
  }

  private failOver(replica: Replica, failedLeader: number): void {
    if (this.host.isClosed || replica.removed || replica.role !== Role.Follower || replica.leaderId !== failedLeader) return;
    // Heard from the leader while waiting: it is alive, and its election timeout applies.
    if (replica.promise.forbidsCampaign(this.runtime.monotonicMs())) return;
    replica.pendingTicks += this.timing.electionTick;
    this.host.mark(replica);
    // The survivors' timeouts are whole ticks, so two of them often fire together and split
    // the vote, costing another 0.5–1 s. The designated successor — the lowest voter id
    // other than the failed leader — campaigns two ticks from now instead, once the other
    // survivors have noticed the failure too (before that they would refuse its pre-vote:
    // their leader lease still runs). Its randomized timeout stays the fallback.
    const others = replica.confState.voters.filter((id) => id !== failedLeader);
    if (others.length === 0 || Math.min(...others) !== replica.replicaId) return;
    this.runtime.runAfter(2 * this.timing.tickIntervalMs, () => {
      if (this.host.isClosed || replica.removed || replica.role === Role.Leader) return;
      if (replica.leaderId !== failedLeader && replica.leaderId !== 0) return; // a new leader is known
      replica.control({ kind: 'campaign' }); // the replica checks the promise again when it runs
      this.host.mark(replica);
    });
  }
}
