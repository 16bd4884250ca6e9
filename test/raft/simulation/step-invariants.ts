/**
 * Invariants of each replica over time, checked after every step it takes (a tick, a
 * delivered message, a call from the application, a Ready). Where the SafetyChecker
 * (checker.ts) checks what replicas agree on, this checks how each one moves:
 *
 * - its commit index never decreases, within a run of the node, and a restart never
 *   starts it below the commit index it had persisted (Raft §5.3; etcd `log.go` `commitTo`);
 * - CheckQuorum (thesis §6.2): a leader that has heard from no quorum of voters for longer
 *   than its election timeout, plus a margin, has stepped down;
 * - PreVote (thesis §9.6): a term rises only for a reason that involves a majority, so a
 *   replica cut off from a majority never raises its term and comes back without
 *   disrupting the group; and terms never fall, across restarts too;
 * - the in-flight bound, through {@link InflightChecker}.
 */
import { MessageType, type ConfState, type Message, type Ready, type ReplicaId } from '../../../src/raft/index.js';
import { SafetyViolation } from './checker.js';
import { InflightChecker } from './inflight-checker.js';
import type { ReadyObserver, TestReplica } from './replica.js';

/**
 * What a replica just did: a tick, a delivered message, a call from the application
 * (propose, read, conf change), a transferLeader call, a snapshot-send report, a Ready
 * (from `ready()` to `advance()`).
 */
export type Step = 'tick' | 'message' | 'call' | 'transfer' | 'snapshot-report' | 'ready';

/** The Raft options the invariants depend on. */
export interface StepInvariantOptions {
  electionTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxInflightMsgs: number;
}

/** A leader's term, as CheckQuorum sees it. */
interface Leadership {
  term: number;
  /**
   * The tick CheckQuorum's clock counts from: the latest of the election, a change of
   * voters (a new member counts as heard from), a transfer request (the core restarts
   * its clock for the transfer's election timeout), and the last tick by which a quorum
   * had been heard from.
   */
  since: number;
  confState: ConfState;
  /** Member → the last tick a message of this term arrived from it. */
  heardAt: Map<ReplicaId, number>;
}

/** What one run of one replica has shown so far. */
interface Timeline {
  term: number;
  commit: number;
  /** Term asked for → voters that granted a PreVote for it. */
  preVoteGrants: Map<number, Set<ReplicaId>>;
  leadership: Leadership | undefined;
}

function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

export class StepInvariants implements ReadyObserver {
  /**
   * How long a leader may go without hearing from a quorum: its election timeout, plus
   * one more as the stated margin. CheckQuorum looks once per election timeout and
   * counts what arrived since its previous look, so silence that begins just after a
   * look is noticed at the look after next.
   */
  readonly quorumSilenceTicks: number;
  /** The simulation's clock, in ticks; the simulation sets it. */
  now = 0;
  private readonly timelines = new Map<ReplicaId, Timeline>();
  readonly inflight: InflightChecker;

  constructor(
    private readonly label: string,
    private readonly options: StepInvariantOptions,
  ) {
    this.quorumSilenceTicks = 2 * options.electionTick;
    this.inflight = new InflightChecker(options.maxInflightMsgs, (message) => this.fail(message));
  }

  private fail(message: string): never {
    throw new SafetyViolation(`${this.label}: ${message}`);
  }

  private timeline(replica: TestReplica): Timeline {
    let timeline = this.timelines.get(replica.id);
    if (timeline === undefined) {
      timeline = { term: replica.node.term(), commit: replica.node.commitIndex(), preVoteGrants: new Map(), leadership: undefined };
      this.timelines.set(replica.id, timeline);
    }
    return timeline;
  }

  /** A replica came back from a crash: a new run, which starts from what it persisted. */
  onRestart(replica: TestReplica, persistedTerm: number, persistedCommit: number): void {
    const term = replica.node.term();
    const commit = replica.node.commitIndex();
    if (commit < persistedCommit) {
      this.fail(`commit index: replica ${replica.id} restarted at commit ${commit}, below the ${persistedCommit} it had persisted`);
    }
    if (term < persistedTerm) {
      this.fail(`term stability: replica ${replica.id} restarted at term ${term}, below the ${persistedTerm} it had persisted`);
    }
    this.timelines.set(replica.id, { term, commit, preVoteGrants: new Map(), leadership: undefined });
  }

  /** After every step a live replica takes; `message` is the one it stepped, for 'message'. */
  afterStep(replica: TestReplica, step: Step, message?: Message): void {
    const timeline = this.timeline(replica);
    if (message !== undefined && message.type === MessageType.PreVoteResponse && !message.reject) {
      let granted = timeline.preVoteGrants.get(message.term);
      if (granted === undefined) {
        granted = new Set();
        timeline.preVoteGrants.set(message.term, granted);
      }
      granted.add(message.from);
    }
    const term = replica.node.term();
    if (term !== timeline.term) {
      this.checkTermChange(replica, timeline, term, step, message);
      timeline.term = term;
      for (const asked of timeline.preVoteGrants.keys()) if (asked <= term) timeline.preVoteGrants.delete(asked);
    }
    const commit = replica.node.commitIndex();
    if (commit < timeline.commit) {
      this.fail(`commit index: replica ${replica.id}'s commit index fell from ${timeline.commit} to ${commit} (${describe(step, message)})`);
    }
    timeline.commit = commit;
    this.checkLeader(replica, timeline, step, term, message);
    if (message !== undefined) this.inflight.afterMessage(replica, message);
  }

  /** After the host reported a snapshot send's outcome to `replica` (a leader, or one that was). */
  afterSnapshotReport(replica: TestReplica, to: ReplicaId): void {
    this.inflight.afterSnapshotReport(replica, to);
    this.afterStep(replica, 'snapshot-report');
  }

  onReadyTaken(replica: TestReplica, ready: Ready): void {
    this.inflight.onReadyTaken(replica, ready);
  }

  onAdvanced(replica: TestReplica): void {
    this.afterStep(replica, 'ready');
  }

  /**
   * Thesis §9.6: with PreVote, a replica raises its term only when it learns the term from
   * a message of a replica that holds it, wins a pre-election (a quorum of voters granted
   * it), is told by the leader to campaign (TimeoutNow), or is the only voter. Each needs
   * a majority or a leader, so a replica cut off from a majority keeps its term.
   */
  private checkTermChange(replica: TestReplica, timeline: Timeline, term: number, step: Step, message: Message | undefined): void {
    const id = replica.id;
    if (term < timeline.term) {
      this.fail(`term stability: replica ${id}'s term fell from ${timeline.term} to ${term} (${describe(step, message)})`);
    }
    if (!this.options.preVote) return;
    const raised = `term stability: replica ${id} raised its term from ${timeline.term} to ${term}`;
    const voters = (): ReplicaId[] => replica.node.status().confState.voters;
    if (step === 'tick') {
      const only = voters();
      if (only.length === 1 && only[0] === id && term === timeline.term + 1) return;
      this.fail(`${raised} on a tick, with voters [${only.join(',')}]: PreVote must win a majority first`);
    }
    if (message === undefined) this.fail(`${raised} in a ${describe(step, message)}: nothing from the network asked for it`);
    if (message.type === MessageType.TimeoutNow && term === timeline.term + 1) return;
    if (message.type === MessageType.PreVote) {
      this.fail(`${raised} on a PreVote from ${message.from}: a PreVote never changes the term`);
    }
    if (message.type === MessageType.PreVoteResponse && !message.reject) {
      const granted = timeline.preVoteGrants.get(term);
      const all = voters();
      const count = all.filter((voter) => voter === id || granted?.has(voter) === true).length;
      if (term === message.term && count >= quorumSize(all.length)) return;
      this.fail(
        `${raised} after a pre-election granted by [${[...(granted ?? [])].join(',')}] of voters [${all.join(',')}]: ` +
          `not a quorum for term ${term}`,
      );
    }
    if (term <= message.term) return;
    this.fail(`${raised} on a ${MessageType[message.type]} of term ${message.term} from ${message.from}`);
  }

  /** Tracks leadership, and checks CheckQuorum after each of a leader's ticks. */
  private checkLeader(replica: TestReplica, timeline: Timeline, step: Step, term: number, message: Message | undefined): void {
    if (!replica.node.isLeader()) {
      timeline.leadership = undefined;
      return;
    }
    const now = this.now;
    let leadership = timeline.leadership;
    if (leadership === undefined || leadership.term !== term) {
      leadership = { term, since: now, confState: replica.confState, heardAt: new Map() };
      timeline.leadership = leadership;
    }
    if (leadership.confState !== replica.confState) {
      leadership.confState = replica.confState;
      leadership.since = now;
    }
    if (step === 'transfer') leadership.since = now;
    if (message !== undefined) {
      if (message.type === MessageType.TransferLeader) leadership.since = now;
      if (message.term === term) leadership.heardAt.set(message.from, now);
    }
    if (step !== 'tick' || !this.options.checkQuorum || now - leadership.since <= this.quorumSilenceTicks) return;
    // The last tick by which a quorum (this leader counts) had been heard from. It only
    // grows, so it becomes the new `since`: the next look is due a whole window later.
    const voters = leadership.confState.voters;
    const heard = voters.map((voter) => (voter === replica.id ? now : (leadership.heardAt.get(voter) ?? Number.NEGATIVE_INFINITY)));
    heard.sort((a, b) => b - a);
    const quorumHeardAt = heard[quorumSize(voters.length) - 1] ?? Number.NEGATIVE_INFINITY;
    if (quorumHeardAt > leadership.since) leadership.since = quorumHeardAt;
    const silentFor = now - leadership.since;
    if (silentFor > this.quorumSilenceTicks) {
      this.fail(
        `CheckQuorum: leader ${replica.id} of term ${term} has heard from no quorum of voters [${voters.join(',')}] ` +
          `for ${silentFor} ticks (election timeout ${this.options.electionTick}, allowed ${this.quorumSilenceTicks}) ` +
          `and has not stepped down`,
      );
    }
  }
}

function describe(step: Step, message: Message | undefined): string {
  if (message !== undefined) return `${MessageType[message.type]} from ${message.from} (term ${message.term})`;
  switch (step) {
    case 'call':
      return 'call from the application';
    case 'transfer':
      return 'transferLeader call';
    case 'snapshot-report':
      return 'snapshot report';
    default:
      return step;
  }
}
