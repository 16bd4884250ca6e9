/**
 * The receive limit of the node's one gRPC server (both services), and how the Raft transport
 * keeps every message it sends under it. The client service's tighter limits are
 * `client-limits.ts`.
 * @internal
 */
import type { RaftMessage } from '../gen/kvstore/v1/raft.js';

/**
 * The node's gRPC server's receive limit, for every service: 4 MiB (gRPC's own default; it was
 * 64 MiB). grpc-js refuses a message past it from its length prefix, before buffering it.
 * Why this size: the largest message a peer legitimately sends is a Raft append of up to
 * `maxSizePerMsg` (1 MiB, `raft-host.ts`) plus one entry, or a 1 MiB snapshot chunk
 * (`grpc-peer-links.ts`), and the transport splits a turn's messages to a peer into
 * SendRequests of about {@link RAFT_SEND_REQUEST_SPLIT_BYTES}, so no legal message nears
 * 2.1 MiB. Trade-off: it is also what one client call can make the node hold for a partly
 * received message before the client service's own limits see it (`client-limits.ts`; the
 * calls open at once are bounded by `MAX_NODE_CLIENT_CALLS`); going lower needs smaller Raft
 * appends and snapshot chunks.
 */
export const SERVER_MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * The transport starts a new SendRequest to a peer once the messages already in it are
 * estimated ({@link raftMessageBytes}) at this many bytes: 1 MiB. A SendRequest is then at most
 * this plus one message (≤ 1 MiB + an entry), inside {@link SERVER_MAX_RECEIVE_MESSAGE_BYTES}.
 */
export const RAFT_SEND_REQUEST_SPLIT_BYTES = 1024 * 1024;

/** Bytes of a message's header and scalar fields at their largest (every uint64 as 10 bytes), with its own tag and length. */
const MESSAGE_FIXED_BYTES = 128;
/** Bytes of an entry beyond its data, at their largest. */
const ENTRY_FIXED_BYTES = 32;

/** An upper bound on the bytes `message` takes in a SendRequest. */
export function raftMessageBytes(message: RaftMessage): number {
  let bytes = MESSAGE_FIXED_BYTES + message.context.length;
  for (const entry of message.entries) bytes += ENTRY_FIXED_BYTES + entry.data.length;
  const snapshot = message.snapshot;
  if (snapshot !== undefined) {
    const confState = snapshot.metadata?.confState;
    bytes += MESSAGE_FIXED_BYTES + snapshot.data.length + 11 * ((confState?.voters.length ?? 0) + (confState?.learners.length ?? 0));
  }
  return bytes;
}

/**
 * Splits one turn's messages to a peer into runs whose estimated bytes stay within
 * `maxBytes`, in order; a message larger than `maxBytes` travels alone.
 */
export function splitBySize(messages: RaftMessage[], maxBytes = RAFT_SEND_REQUEST_SPLIT_BYTES): RaftMessage[][] {
  const runs: RaftMessage[][] = [];
  let run: RaftMessage[] = [];
  let runBytes = 0;
  for (const message of messages) {
    const bytes = raftMessageBytes(message);
    if (run.length > 0 && runBytes + bytes > maxBytes) {
      runs.push(run);
      run = [];
      runBytes = 0;
    }
    run.push(message);
    runBytes += bytes;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
