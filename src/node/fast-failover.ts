/**
 * Fast failover: when the stream to a peer node breaks (the node may have crashed), the
 * followers whose leader it hosts forget that leader once their promise to it ran out (so
 * they grant votes at once, without campaigning themselves), and one designated successor
 * campaigns a tick later, so every shard is writable again ~0.4 s after a kill -9 instead of
 * waiting out a full randomized timeout (and a split vote). Client requests that reach a
 * survivor meanwhile wait for the new leader (`leader-wait.ts`).
 *
 * A broken stream does not prove the leader dead: a network fault can cut it while the
 * leader still answers reads under a lease our last acknowledgement backs. So nothing here
 * may break this replica's promise to that leader (`replica-reads.ts`): forgetting waits
 * until the promise ran out, and both it and the successor's campaign are control actions,
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
    // Every survivor forgets the leader: it then grants the successor's (pre-)vote at once
    // instead of ignoring it under the core's leader lease, but does not campaign itself, so
    // the survivors do not split the vote (their timeouts are whole ticks and, skipped ahead
    // together, often fired in the same tick, costing another 0.5–1 s). Their own randomized
    // election timeouts stay the fallback. The replica re-checks the promise when it runs.
    replica.control({ kind: 'forget-leader', leader: failedLeader });
    this.host.mark(replica);
    // The designated successor campaigns now, and again every tick or two for an election
    // timeout while no leader is known and it is not a candidate: the other survivors forget
    // the leader within a turn or two of us (the leader's last message reached us all
    // together), and until they have they ignore our pre-vote, which costs nothing but the
    // retry (a pre-vote changes no term). Every survivor names the same successor —
    // the surviving voters in id order, picked by shard id — so the dead node's leaderships
    // spread over the survivors rather than all landing on one node for the manager to move.
    const others = replica.confState.voters.filter((id) => id !== failedLeader).sort((a, b) => a - b);
    if (others.length === 0 || others[replica.shardId % others.length] !== replica.replicaId) return;
    this.campaignAfter(replica, failedLeader, CAMPAIGN_AFTER_TICKS);
  }

  private campaignAfter(replica: Replica, failedLeader: number, afterTicks: readonly number[]): void {
    const [ticks, ...rest] = afterTicks;
    if (ticks === undefined) return;
    this.runtime.runAfter(ticks * this.timing.tickIntervalMs, () => {
      // A candidate's vote round is under way: campaigning again would only raise the term.
      if (this.host.isClosed || replica.removed || replica.role === Role.Leader || replica.role === Role.Candidate) return;
      if (replica.leaderId !== failedLeader && replica.leaderId !== 0) return; // a new leader is known
      replica.control({ kind: 'campaign' }); // the replica checks the promise again when it runs
      this.host.mark(replica);
      this.campaignAfter(replica, failedLeader, rest);
    });
  }
}

/** When the designated successor campaigns, in ticks after the previous try (see `failOver`): ten ticks in all, one election timeout. */
const CAMPAIGN_AFTER_TICKS: readonly number[] = [0, 1, 2, 2, 2, 3];
