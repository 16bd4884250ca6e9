/**
 * The leader's message handling (etcd `stepLeader`): acks drive replication
 * and commit, heartbeat acks confirm ReadIndex rounds, and transfers start here.
 */
import type { Raft } from './raft.js';
import { answerRead, readIndex } from './read-index.js';
import { maybeSendAppend, maybeSendSnapshot, sendAppend } from './replication.js';
import { voteResult, VoteResult } from './quorum.js';
import { decodeRoundKey } from './read-only.js';
import { MessageType, NONE, ProgressState, type Message } from './types.js';

/** Handles `message` (already term-checked) while leader. */
export function stepLeader(raft: Raft, message: Message): void {
  if (message.type === MessageType.ReadIndex) {
    // Batched with this turn's reads; answered once a heartbeat round confirms leadership.
    readIndex(raft, { from: message.from === NONE ? raft.id : message.from, context: message.context });
    return;
  }
  const progress = raft.tracker.progress.get(message.from);
  if (progress === undefined) return;
  switch (message.type) {
    case MessageType.AppendResponse:
      handleAppendResponse(raft, message);
      return;
    case MessageType.HeartbeatResponse: {
      progress.recentActive = true;
      progress.msgAppFlowPaused = false;
      if (progress.match < raft.log.lastIndex() || progress.state === ProgressState.Probe) sendAppend(raft, message.from);
      const key = decodeRoundKey(message.context);
      if (key === undefined) return;
      const round = raft.readOnly.recordAck(message.from, key);
      if (round === undefined || voteResult(raft.tracker.voters, round.acks) !== VoteResult.Won) return;
      for (const done of raft.readOnly.advance(key)) {
        for (const request of done.requests) answerRead(raft, request, done.index);
      }
      return;
    }
    case MessageType.SnapshotStatus:
      if (progress.state !== ProgressState.Snapshot) return;
      if (message.reject) progress.pendingSnapshot = 0;
      progress.becomeProbe();
      // Wait for a heartbeat response before probing again, so a failed send is not retried in a tight loop.
      progress.msgAppFlowPaused = true;
      return;
    case MessageType.Unreachable:
      // Optimistic streaming probably lost messages: fall back to probing.
      if (progress.state === ProgressState.Replicate) progress.becomeProbe();
      return;
    case MessageType.TransferLeader:
      handleTransferLeader(raft, message);
      return;
    default:
      return;
  }
}

function handleAppendResponse(raft: Raft, message: Message): void {
  const progress = raft.tracker.progress.get(message.from);
  if (progress === undefined) return;
  progress.recentActive = true;
  if (message.reject) {
    if (message.index === 0 && progress.state !== ProgressState.Snapshot) {
      // Only an uninitialized replica rejects index 0 (term 0 matches everywhere): send it a snapshot.
      maybeSendSnapshot(raft, message.from);
      return;
    }
    // Fast backtracking (Raft §5.3): skip the follower's whole conflicting term.
    let nextProbe = message.rejectHint;
    if (message.logTerm > 0) nextProbe = raft.log.findConflictByTerm(message.rejectHint, message.logTerm).index;
    if (progress.maybeDecreaseTo(message.index, nextProbe)) {
      if (progress.state === ProgressState.Replicate) progress.becomeProbe();
      sendAppend(raft, message.from);
    }
    return;
  }
  const wasPaused = progress.isPaused();
  const sameMatch = progress.match === message.index && progress.state !== ProgressState.Replicate;
  if (!progress.maybeUpdate(message.index) && !sameMatch) return;
  switch (progress.state) {
    case ProgressState.Probe:
      progress.becomeReplicate();
      break;
    case ProgressState.Snapshot:
      if (progress.match + 1 >= raft.log.firstIndex()) {
        progress.becomeProbe();
        progress.becomeReplicate();
      }
      break;
    case ProgressState.Replicate:
      progress.inflights.freeLE(message.index);
      break;
  }
  if (!raft.maybeCommit() && wasPaused) sendAppend(raft, message.from);
  // Pipelining: stream as many appends as the in-flight window allows.
  while (maybeSendAppend(raft, message.from, false)) {
    // each call queues one more append
  }
  if (message.from === raft.leadTransferee && progress.match === raft.log.lastIndex()) {
    raft.logger.info('transferee caught up: sending TimeoutNow', { replica: raft.id, to: message.from });
    raft.sendTimeoutNow(message.from);
  }
}

/** Thesis §3.10: catch the transferee up, then tell it to campaign at once. */
function handleTransferLeader(raft: Raft, message: Message): void {
  const transferee = message.from;
  const progress = raft.tracker.progress.get(transferee);
  if (progress === undefined || progress.isLearner) {
    raft.logger.debug('transfer ignored: not a voter', { replica: raft.id, to: transferee });
    return;
  }
  if (raft.leadTransferee !== NONE) {
    if (raft.leadTransferee === transferee) return;
    raft.abortLeaderTransfer();
  }
  if (transferee === raft.id) return;
  raft.logger.info('leadership transfer started', { replica: raft.id, to: transferee, term: raft.term });
  // The transfer must finish within an election timeout (checked on tick).
  raft.electionElapsed = 0;
  raft.leadTransferee = transferee;
  if (progress.match === raft.log.lastIndex()) raft.sendTimeoutNow(transferee);
  else sendAppend(raft, transferee);
}
