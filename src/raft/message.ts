/**
 * Message construction helpers shared by the state machine's files.
 */
import { MessageType, type Message, type ReplicaId } from './types.js';

/** Shared empty byte array for fields that carry nothing. */
export const EMPTY_BYTES = new Uint8Array(0);

/** Vote-request context marking a campaign forced by TimeoutNow: it overrides the leader lease. */
export const CAMPAIGN_TRANSFER = new TextEncoder().encode('CampaignTransfer');

/** A message with every field zero except the ones given. */
export function newMessage(type: MessageType, to: ReplicaId, from: ReplicaId, term: number): Message {
  return {
    type,
    to,
    from,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
  };
}

/** Byte-wise equality (contexts are small). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The response type paired with a vote request type. */
export function voteResponseType(type: MessageType): MessageType {
  return type === MessageType.PreVote ? MessageType.PreVoteResponse : MessageType.VoteResponse;
}
