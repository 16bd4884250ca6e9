/**
 * Follower and candidate message handling (etcd `stepFollower`,
 * `stepCandidate`): the receiving side of AppendEntries, heartbeats and
 * InstallSnapshot, vote counting, and forwarding to the leader.
 */
import { assertInvariant } from './errors.js';
import { restore } from './membership.js';
import { newMessage } from './message.js';
import type { Raft } from './raft.js';
import { readIndex } from './read-index.js';
import { VoteResult } from './quorum.js';
import { MessageType, NONE, Role, type Message } from './types.js';

/** Handles `message` (already term-checked) while follower. */
export function stepFollower(raft: Raft, message: Message): void {
  switch (message.type) {
    case MessageType.Append:
      raft.electionElapsed = 0;
      raft.lead = message.from;
      handleAppend(raft, message);
      return;
    case MessageType.Heartbeat:
      raft.electionElapsed = 0;
      raft.lead = message.from;
      handleHeartbeat(raft, message);
      return;
    case MessageType.Snapshot:
      raft.electionElapsed = 0;
      raft.lead = message.from;
      handleSnapshot(raft, message);
      return;
    case MessageType.TransferLeader:
      if (raft.lead === NONE) {
        raft.logger.debug('transfer dropped: no leader', { replica: raft.id, term: raft.term });
        return;
      }
      raft.send({ ...message, to: raft.lead, term: raft.term });
      return;
    case MessageType.TimeoutNow:
      raft.logger.info('TimeoutNow received: campaigning', { replica: raft.id, term: raft.term, from: message.from });
      // Skips PreVote and overrides the leader lease: the leader asked for this (thesis §3.10).
      raft.hup('transfer');
      return;
    case MessageType.ReadIndex:
      readIndex(raft, { from: message.from, context: message.context });
      return;
    case MessageType.ReadIndexResponse:
      raft.readStates.push({ index: message.index, context: message.context });
      return;
    default:
      return;
  }
}

/** Handles `message` (already term-checked) while candidate or pre-candidate. */
export function stepCandidate(raft: Raft, message: Message): void {
  const responseType = raft.role === Role.PreCandidate ? MessageType.PreVoteResponse : MessageType.VoteResponse;
  switch (message.type) {
    case MessageType.Append:
      raft.becomeFollower(message.term, message.from);
      handleAppend(raft, message);
      return;
    case MessageType.Heartbeat:
      raft.becomeFollower(message.term, message.from);
      handleHeartbeat(raft, message);
      return;
    case MessageType.Snapshot:
      raft.becomeFollower(message.term, message.from);
      handleSnapshot(raft, message);
      return;
    case responseType: {
      const result = raft.poll(message.from, !message.reject);
      if (result === VoteResult.Won) {
        // Rule: only a voter of its own configuration leads (`promotable`); it was one when
        // the campaign began, and `applyConfChange` ends a campaign whose replica left.
        assertInvariant(raft.promotable(), 'a replica that may not campaign won an election', { replica: raft.id, term: raft.term });
        if (raft.role === Role.PreCandidate) {
          // As `hup` refuses to start one: a commit learned mid-campaign (from a refused vote)
          // may hold a membership change, maybe this replica's own removal, that is not applied
          // yet. A real election now would make voters spend their vote of the new term on a
          // replica about to leave. It campaigns again on its next election timeout.
          if (raft.hasUnappliedConfChanges()) raft.becomeFollower(raft.term, NONE);
          else raft.campaign('election');
        } else {
          raft.becomeLeader();
        }
      } else if (result === VoteResult.Lost) {
        raft.becomeFollower(raft.term, NONE);
      }
      return;
    }
    default:
      return;
  }
}

/** Raft §5.3 receiver rules for AppendEntries. */
function handleAppend(raft: Raft, message: Message): void {
  const log = raft.log;
  const response = newMessage(MessageType.AppendResponse, message.from, raft.id, raft.term);
  if (message.index < log.committed) {
    response.index = log.committed;
    raft.send(response);
    return;
  }
  if (raft.isUninitialized()) {
    // Without a membership we cannot interpret the log: ask for a snapshot.
    // A rejection at index 0 tells the leader exactly that.
    response.index = message.index;
    response.reject = true;
    raft.send(response);
    return;
  }
  const lastNewIndex = log.maybeAppend(message.index, message.logTerm, message.commit, message.entries);
  if (lastNewIndex !== undefined) {
    response.index = lastNewIndex;
    raft.send(response);
    return;
  }
  // Reject with a hint: the last index ≤ the probe whose term is ≤ the leader's
  // term there, so the leader can skip our conflicting entries in one step.
  const hint = log.findConflictByTerm(Math.min(message.index, log.lastIndex()), message.logTerm);
  response.index = message.index;
  response.reject = true;
  response.rejectHint = hint.index;
  response.logTerm = hint.term;
  raft.send(response);
}

function handleHeartbeat(raft: Raft, message: Message): void {
  raft.log.commitTo(message.commit);
  const response = newMessage(MessageType.HeartbeatResponse, message.from, raft.id, raft.term);
  response.context = message.context;
  raft.send(response);
}

function handleSnapshot(raft: Raft, message: Message): void {
  const response = newMessage(MessageType.AppendResponse, message.from, raft.id, raft.term);
  if (message.snapshot !== undefined && restore(raft, message.snapshot)) {
    response.index = raft.log.lastIndex();
  } else {
    response.index = raft.log.committed;
  }
  raft.send(response);
}
