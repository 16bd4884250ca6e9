/**
 * The leader's sending side of replication (Raft §5.3, §7): appends with
 * batching and pipelining under each follower's flow control, snapshots for
 * followers whose next entry is compacted, and heartbeats.
 */
import { assertInvariant } from './errors.js';
import { newMessage } from './message.js';
import type { Raft } from './raft.js';
import { MessageType, ProgressState, type Entry, type ReplicaId } from './types.js';

/** Sends an append (or, when the follower's next entry is compacted, a snapshot). */
export function sendAppend(raft: Raft, to: ReplicaId): void {
  maybeSendAppend(raft, to, true);
}

/**
 * Sends the follower the entries from its `next`, unless its progress is
 * paused. Returns true if a message was queued. With `sendIfEmpty` an append
 * without entries still goes out (a probe, or a commit update).
 */
export function maybeSendAppend(raft: Raft, to: ReplicaId, sendIfEmpty: boolean): boolean {
  const progress = raft.tracker.progress.get(to);
  if (progress === undefined || progress.isPaused()) return false;
  const prevIndex = progress.next - 1;
  const prevTerm = raft.log.term(prevIndex);
  if (prevTerm === undefined) return maybeSendSnapshot(raft, to);
  let entries: Entry[] = [];
  if (progress.state !== ProgressState.Replicate || !progress.inflights.full()) {
    const result = raft.log.entriesFrom(progress.next, raft.maxSizePerMsg);
    if (!result.ok) return maybeSendSnapshot(raft, to);
    entries = result.value;
  }
  if (entries.length === 0 && !sendIfEmpty) return false;
  const message = newMessage(MessageType.Append, to, raft.id, raft.term);
  message.index = prevIndex;
  message.logTerm = prevTerm;
  message.entries = entries;
  message.commit = raft.log.committed;
  raft.send(message);
  progress.sentEntries(entries.length, prevIndex + entries.length);
  progress.sentCommit = Math.max(progress.sentCommit, raft.log.committed);
  progress.appendSinceHeartbeat = true;
  return true;
}

/**
 * Raft §7: the follower's next entry is compacted (or the follower is
 * uninitialized), so it gets the latest snapshot. At bootstrap that may be
 * the index-0 snapshot: it carries the initial membership, which an
 * uninitialized replica cannot learn from the log.
 */
export function maybeSendSnapshot(raft: Raft, to: ReplicaId): boolean {
  const progress = raft.tracker.progress.get(to);
  if (progress === undefined || !progress.recentActive) return false;
  const snapshot = raft.log.snapshot();
  if (!snapshot.ok) return false;
  const index = snapshot.value.metadata.index;
  const { voters } = snapshot.value.metadata.confState;
  assertInvariant(voters.length > 0, 'snapshot to send has no voters', { to, index });
  progress.becomeSnapshot(index);
  const message = newMessage(MessageType.Snapshot, to, raft.id, raft.term);
  message.snapshot = snapshot.value;
  raft.send(message);
  raft.logger.info('sending snapshot', { replica: raft.id, to, index, term: snapshot.value.metadata.term });
  return true;
}

/**
 * Sends every other member what it needs: new entries, pipelined up to its
 * in-flight bound, or an empty append when only the commit index is news —
 * unless `piggyback` lets that ride on the next append or heartbeat. A commit
 * that covers a membership change still goes out at once: a member the change
 * removes hears nothing from the leader once it applied the change, so this is
 * its only chance to learn of (and apply) its own removal.
 */
export function broadcastAppend(raft: Raft): void {
  const committed = raft.log.committed;
  for (const id of raft.tracker.members) {
    if (id === raft.id) continue;
    const progress = raft.tracker.progress.get(id);
    if (progress === undefined) continue;
    const commitNews = progress.sentCommit < committed && (!raft.piggyback || progress.sentCommit < raft.pendingConfIndex);
    const sent = maybeSendAppend(raft, id, progress.state !== ProgressState.Replicate || commitNews);
    if (!sent || progress.state !== ProgressState.Replicate) continue;
    while (maybeSendAppend(raft, id, false)) {
      // pipelining: one more append per iteration until the window is full or the log is sent
    }
  }
}

/**
 * Heartbeats to every other member; `context` tags a ReadIndex round. With `skipFresh`
 * (a heartbeat tick with no read waiting, under `piggyback`) a member that got an append
 * since the last tick is skipped: that append did a heartbeat's work. Its commit index may
 * trail by what committed since; the next append carries it, or, once appends stop, the
 * heartbeat of the tick after — two heartbeat periods at most.
 */
export function broadcastHeartbeat(raft: Raft, context: Uint8Array, skipFresh = false): void {
  for (const id of raft.tracker.members) {
    if (id === raft.id) continue;
    const progress = raft.tracker.progress.get(id);
    if (progress === undefined) continue;
    const skip = skipFresh && progress.appendSinceHeartbeat;
    progress.appendSinceHeartbeat = false;
    if (skip) continue;
    const message = newMessage(MessageType.Heartbeat, id, raft.id, raft.term);
    // Never commit beyond what the follower is known to hold (etcd: min(match, committed)).
    message.commit = Math.min(progress.match, raft.log.committed);
    message.context = context;
    raft.send(message);
  }
}
