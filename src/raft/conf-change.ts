/**
 * Membership changes, one replica at a time (Raft thesis §4.1): their entry
 * encoding, and how an applied change updates the {@link ProgressTracker}.
 */
import { RaftInvariantError } from './errors.js';
import type { ProgressTracker } from './tracker.js';
import { ConfChangeType, type ConfChange, type ConfState, type ReplicaId } from './types.js';

const FORMAT_VERSION = 1;
const HEADER_BYTES = 10;
const CONF_CHANGE_TYPES: readonly ConfChangeType[] = [
  ConfChangeType.AddVoter,
  ConfChangeType.AddLearner,
  ConfChangeType.RemoveReplica,
];

/**
 * Encodes a change as the `data` of a {@link EntryType.ConfChange} entry:
 * version (1 byte), type (1), replica id (8, big-endian), then `context`.
 */
export function encodeConfChange(change: ConfChange): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + change.context.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, FORMAT_VERSION);
  view.setUint8(1, change.type);
  view.setUint32(2, Math.floor(change.replicaId / 0x1_0000_0000));
  view.setUint32(6, change.replicaId >>> 0);
  bytes.set(change.context, HEADER_BYTES);
  return bytes;
}

/** Decodes {@link encodeConfChange}'s output; throws on bytes that are not a change (a bug). */
export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length < HEADER_BYTES) throw new RaftInvariantError('conf change entry too short', { length: data.length });
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  if (view.getUint8(0) !== FORMAT_VERSION) {
    throw new RaftInvariantError('unknown conf change format', { version: view.getUint8(0) });
  }
  const rawType = view.getUint8(1);
  const type = CONF_CHANGE_TYPES.find((known) => known === (rawType as ConfChangeType));
  if (type === undefined) throw new RaftInvariantError('unknown conf change type', { type: rawType });
  const replicaId = view.getUint32(2) * 0x1_0000_0000 + view.getUint32(6);
  return { type, replicaId, context: data.slice(HEADER_BYTES) };
}

/**
 * Applies one change to the tracker. New members start probing from `nextIndex`.
 * AddVoter on a learner promotes it; AddLearner on a voter demotes it; a change
 * that already holds is a no-op. Removing the last voter is refused (the group
 * could never commit again): it returns false and changes nothing.
 */
export function applyConfChangeToTracker(tracker: ProgressTracker, change: ConfChange, nextIndex: number): boolean {
  const id: ReplicaId = change.replicaId;
  switch (change.type) {
    case ConfChangeType.AddVoter:
      tracker.setMember(id, false, 0, nextIndex);
      return true;
    case ConfChangeType.AddLearner:
      if (tracker.voters.length === 1 && tracker.voters[0] === id) return false;
      tracker.setMember(id, true, 0, nextIndex);
      return true;
    case ConfChangeType.RemoveReplica:
      if (tracker.voters.length === 1 && tracker.voters[0] === id) return false;
      tracker.removeMember(id);
      return true;
  }
}

/** Resets the tracker to exactly `confState` (snapshot restore, start-up). */
export function restoreTracker(tracker: ProgressTracker, confState: ConfState, nextIndex: number): void {
  for (const id of [...tracker.progress.keys()]) tracker.removeMember(id);
  for (const id of confState.voters) tracker.setMember(id, false, 0, nextIndex);
  for (const id of confState.learners) tracker.setMember(id, true, 0, nextIndex);
}
