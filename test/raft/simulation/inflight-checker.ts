/**
 * The in-flight bound (thesis §10.2.2 pipelining; etcd `tracker/inflights.go`), checked
 * from outside the core: at no time does a leader have more than `maxInflightMsgs`
 * unacknowledged appends outstanding to one follower in replicate state. It counts
 * what the leader sends against what the follower acknowledges, never the core's own
 * bookkeeping, so a core that frees its window early or sizes it wrong is caught.
 */
import { MessageType, ProgressState, type Message, type ProgressStatus, type Ready, type ReplicaId } from '../../../src/raft/index.js';
import type { TestReplica } from './replica.js';

/** One follower as a leader's term sees it. */
interface FollowerWindow {
  /** Last indexes of the appends sent in replicate state and not yet acknowledged, oldest first. */
  outstanding: number[];
  /** The progress state at the last look. */
  state: ProgressState;
  /**
   * Since the last look, something may have reset the core's window for this follower:
   * a rejection, a snapshot sent or reported. Which appends of the next Ready came after
   * the reset cannot be told from outside, so none of them is counted.
   */
  disturbed: boolean;
}

/** One leader's term. */
interface LeaderWindows {
  term: number;
  followers: Map<ReplicaId, FollowerWindow>;
}

/**
 * Counts, at each Ready of a leader, the appends it sends to followers in replicate
 * state, and forgets them as acknowledgements arrive.
 *
 * The core resets a follower's window whenever its progress changes state, and a
 * progress leaves replicate state only on a rejection, a snapshot send or a snapshot
 * report; it returns only on an acknowledgement. So reading the progress at the Readies
 * that carry appends, and noting those events in between, tells exactly when appends
 * belong to one unbroken replicate window. Sound by construction: it counts a subset
 * of what the core counts, and forgets an append as soon as any acknowledgement covers
 * it (no later than the core frees it), so a core that keeps its bound never trips it.
 */
export class InflightChecker {
  private readonly leaders = new Map<ReplicaId, LeaderWindows>();
  /** Largest window seen, for reporting that the check had something to check. */
  maxOutstanding = 0;

  constructor(
    private readonly maxInflightMsgs: number,
    private readonly fail: (message: string) => never,
  ) {}

  /** After `replica` stepped `message`. */
  afterMessage(replica: TestReplica, message: Message): void {
    if (message.type !== MessageType.AppendResponse) return;
    const follower = this.window(replica, message.term, message.from);
    if (follower === undefined) return;
    if (message.reject) {
      follower.disturbed = true;
      return;
    }
    // An acknowledgement of index i covers every append whose last entry is at or below i.
    let acknowledged = 0;
    while (acknowledged < follower.outstanding.length && (follower.outstanding[acknowledged] as number) <= message.index) {
      acknowledged++;
    }
    if (acknowledged > 0) follower.outstanding.splice(0, acknowledged);
  }

  /** The host reported the outcome of a snapshot send to `to`. */
  afterSnapshotReport(replica: TestReplica, to: ReplicaId): void {
    const follower = this.window(replica, replica.node.term(), to);
    if (follower !== undefined) follower.disturbed = true;
  }

  onReadyTaken(replica: TestReplica, ready: Ready): void {
    if (!replica.node.isLeader()) {
      this.leaders.delete(replica.id);
      return;
    }
    let appends = false;
    for (const message of ready.messages) {
      if (message.type === MessageType.Append && message.entries.length > 0) appends = true;
      if (message.type === MessageType.Snapshot) {
        const follower = this.window(replica, message.term, message.to);
        if (follower !== undefined) follower.disturbed = true;
      }
    }
    if (!appends) return;
    const windows = this.look(replica);
    for (const message of ready.messages) {
      if (message.type !== MessageType.Append || message.entries.length === 0) continue;
      const follower = windows.followers.get(message.to);
      if (follower === undefined || follower.disturbed || follower.state !== ProgressState.Replicate) continue;
      follower.outstanding.push(message.index + message.entries.length);
      if (follower.outstanding.length > this.maxOutstanding) this.maxOutstanding = follower.outstanding.length;
      if (follower.outstanding.length > this.maxInflightMsgs) {
        this.fail(
          `in-flight bound: leader ${replica.id} (term ${windows.term}) has ${follower.outstanding.length} unacknowledged ` +
            `appends outstanding to replica ${message.to} in replicate state, above maxInflightMsgs ${this.maxInflightMsgs} ` +
            `(their last indexes: ${follower.outstanding.join(', ')})`,
        );
      }
    }
    // A window starts afresh at every look.
    for (const follower of windows.followers.values()) follower.disturbed = false;
  }

  private window(replica: TestReplica, term: number, follower: ReplicaId): FollowerWindow | undefined {
    const windows = this.leaders.get(replica.id);
    return windows === undefined || windows.term !== term ? undefined : windows.followers.get(follower);
  }

  /** Reads the leader's progress of every follower. */
  private look(replica: TestReplica): LeaderWindows {
    const status = replica.node.status();
    let windows = this.leaders.get(replica.id);
    if (windows === undefined || windows.term !== status.term) {
      windows = { term: status.term, followers: new Map() };
      this.leaders.set(replica.id, windows);
    }
    for (const [id, progress] of status.progress ?? new Map<ReplicaId, ProgressStatus>()) {
      if (id === replica.id) continue;
      const follower = windows.followers.get(id);
      if (follower === undefined) {
        // First sight of this follower in this term: its history is unknown.
        windows.followers.set(id, { outstanding: [], state: progress.state, disturbed: true });
      } else if (follower.disturbed || progress.state !== follower.state || progress.state !== ProgressState.Replicate) {
        // The core reset this follower's window (it resets on every change of state).
        follower.disturbed = true;
        follower.outstanding = [];
        follower.state = progress.state;
      }
    }
    return windows;
  }
}
