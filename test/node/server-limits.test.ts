/**
 * Issue 15: the node's one gRPC server takes at most 4 MiB per message (src/node/server-limits.ts),
 * so the Raft transport splits a turn's messages to a peer into SendRequests under it.
 */
import { expect } from 'chai';
import type { RaftMessage } from '../../src/gen/kvstore/v1/raft.js';
import { encodeSendRequest } from '../../src/node/send-request-codec.js';
import { RAFT_SEND_REQUEST_SPLIT_BYTES, raftMessageBytes, SERVER_MAX_RECEIVE_MESSAGE_BYTES, splitBySize } from '../../src/node/server-limits.js';

describe('node/server-limits: Raft SendRequests under the server\'s receive limit', () => {
  it('splits a turn\'s Raft messages into SendRequests under the server\'s receive limit', () => {
    const entry = (index: number): RaftMessage['entries'][number] => ({ term: 3, index, type: 0, data: Buffer.alloc(1100) });
    const append = (shardId: number, count: number): RaftMessage => ({
      shardId, type: 3, to: 2, from: 1, term: 3, logTerm: 3, index: 1, commit: 1, reject: false, rejectHint: 0,
      entries: Array.from({ length: count }, (_unused, i) => entry(i + 2)), context: Buffer.alloc(0),
    });
    // 64 groups each sending a full 1 MiB append in one turn: 64 MiB for one peer.
    const messages = Array.from({ length: 64 }, (_unused, shardId) => append(shardId, 950));
    const runs = splitBySize(messages);
    expect(runs.flat()).to.deep.equal(messages);
    for (const run of runs) {
      const bytes = encodeSendRequest({ fromNodeId: 'n1', messages: run }).length;
      expect(bytes).to.be.at.most(SERVER_MAX_RECEIVE_MESSAGE_BYTES / 2);
      expect(run.reduce((sum, message) => sum + raftMessageBytes(message), 0), 'the estimate is an upper bound').to.be.at.least(bytes - 64);
    }
    const small = Array.from({ length: 500 }, (_unused, shardId) => append(shardId, 1));
    expect(splitBySize(small), 'a light turn stays one SendRequest').to.have.length(1);
    expect(RAFT_SEND_REQUEST_SPLIT_BYTES * 2).to.be.at.most(SERVER_MAX_RECEIVE_MESSAGE_BYTES);
  });
});
