/**
 * Snapshot restore and applied membership changes on a replica (Raft §7,
 * thesis §4.1–§4.2).
 */
import { applyConfChangeToTracker, restoreTracker } from './conf-change.js';
import type { Raft } from './raft.js';
import { maybeSendAppend } from './replication.js';
import { NONE, Role, type ConfChange, type ConfState, type ReplicaId, type Snapshot } from './types.js';

/**
 * Installs a snapshot from the leader (Raft §7). Returns false when it is not
 * newer than our commit (or our log already has its last entry, in which case
 * we just commit up to it). The replica need not be in the snapshot's
 * configuration: a replica being added may receive an older snapshot and
 * learns its own membership from later entries.
 */
export function restore(raft: Raft, snapshot: Snapshot): boolean {
  const { index, term, confState } = snapshot.metadata;
  // An uninitialized replica takes even the bootstrap (index 0) snapshot: it brings the membership.
  const initializes = raft.isUninitialized() && confState.voters.length > 0 && index >= raft.log.committed;
  if (index <= raft.log.committed && !initializes) return false;
  if (raft.role !== Role.Follower) raft.becomeFollower(raft.term + 1, NONE);
  if (!initializes && raft.log.matchTerm(index, term)) {
    raft.log.commitTo(index);
    return false;
  }
  raft.log.restore(snapshot);
  restoreTracker(raft.tracker, confState, raft.log.lastIndex() + 1);
  raft.isLearner = raft.tracker.progress.get(raft.id)?.isLearner ?? false;
  raft.logger.info('restored snapshot', { replica: raft.id, index, term, voters: confState.voters, learners: confState.learners });
  return true;
}

/**
 * Applies a committed membership change (the caller calls this when it
 * applies the entry). A leader that removed or demoted itself hands off to
 * its most up-to-date voter with TimeoutNow and steps down; a (pre-)candidate
 * that did ends its campaign.
 */
export function applyConfChange(raft: Raft, change: ConfChange): ConfState {
  if (!applyConfChangeToTracker(raft.tracker, change, raft.log.lastIndex() + 1)) {
    raft.logger.warn('conf change refused: would remove the last voter', { replica: raft.id, target: change.replicaId });
  }
  const self = raft.tracker.progress.get(raft.id);
  raft.isLearner = self?.isLearner ?? false;
  raft.logger.info('applied conf change', {
    replica: raft.id,
    type: change.type,
    target: change.replicaId,
    voters: raft.tracker.voters,
    learners: raft.tracker.learners,
  });
  if (self === undefined || self.isLearner) {
    if (raft.role === Role.Leader) {
      handOffLeadership(raft);
      raft.becomeFollower(raft.term, NONE);
    } else if (raft.role === Role.PreCandidate || raft.role === Role.Candidate) {
      // Its campaign ends here. A (pre-)candidate learns commits too (from a refused vote,
      // `learnCommitHint`), so it may apply its own removal mid-campaign; the grants still to
      // come are counted against the new configuration, whose majority it could win without
      // being in it — a leader no one may replace, as its node answers no request for a
      // group it left (found by the whole-node simulator, seed 18005310).
      raft.becomeFollower(raft.term, NONE);
    }
    return raft.tracker.confState();
  }
  if (raft.role !== Role.Leader) return raft.tracker.confState();
  if (!raft.maybeCommit()) {
    // Probe new members at once rather than after the next heartbeat.
    for (const id of raft.tracker.members) if (id !== raft.id) maybeSendAppend(raft, id, false);
  }
  if (raft.leadTransferee !== NONE && !raft.tracker.isVoter(raft.leadTransferee)) raft.abortLeaderTransfer();
  return raft.tracker.confState();
}

/** A leader leaving the voters tells the most caught-up voter to campaign now (thesis §3.10). */
export function handOffLeadership(raft: Raft): void {
  let best: ReplicaId = NONE;
  let bestMatch = -1;
  for (const id of raft.tracker.voters) {
    const progress = raft.tracker.progress.get(id);
    if (id === raft.id || progress === undefined) continue;
    if (progress.match > bestMatch) {
      best = id;
      bestMatch = progress.match;
    }
  }
  if (best !== NONE && bestMatch === raft.log.lastIndex()) raft.sendTimeoutNow(best);
}
