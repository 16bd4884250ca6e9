/**
 * ReadIndex on the leader and follower (Raft thesis §6.4): reads of one turn
 * are batched into one heartbeat round; followers forward to the leader.
 */
import { newMessage } from './message.js';
import type { Raft } from './raft.js';
import { encodeRoundKey, type ReadRequest } from './read-only.js';
import { broadcastHeartbeat } from './replication.js';
import { MessageType, NONE, Role } from './types.js';

/** A linearizable read request: batched on the leader, forwarded by a follower. */
export function readIndex(raft: Raft, request: ReadRequest): void {
  if (raft.role === Role.Leader) {
    raft.readBatch.push(request);
    return;
  }
  if (raft.lead === NONE) {
    raft.logger.debug('read dropped: no leader', { replica: raft.id, term: raft.term });
    return;
  }
  const message = newMessage(MessageType.ReadIndex, raft.lead, raft.id, 0);
  message.context = request.context;
  raft.send(message);
}

/** Starts one heartbeat round for every batched read (answers at once in a single-voter group). */
export function startReadRound(raft: Raft): void {
  const requests = raft.readBatch;
  raft.readBatch = [];
  const index = raft.log.committed;
  if (raft.tracker.voters.length === 1 && raft.tracker.voters[0] === raft.id) {
    for (const request of requests) answerRead(raft, request, index);
    return;
  }
  const key = raft.nextReadKey++;
  raft.readOnly.start(key, index, requests, raft.id);
  broadcastHeartbeat(raft, encodeRoundKey(key));
}

/** Hands a confirmed read index to its requester. */
export function answerRead(raft: Raft, request: ReadRequest, index: number): void {
  if (request.from === raft.id) {
    raft.readStates.push({ index, context: request.context });
    return;
  }
  const message = newMessage(MessageType.ReadIndexResponse, request.from, raft.id, raft.term);
  message.index = index;
  message.context = request.context;
  raft.send(message);
}
