/**
 * A bad peer for the simulator's tests: what it needs to aim messages and snapshots at one
 * node of a running {@link SimCluster} — the shard's leader and a follower, messages shaped
 * as the leader would send them, and delivery through the receiving node's real entry points
 * (`RaftHost.deliver` and `deliverSnapshot`, after the `SendRequest` codec when the message
 * can be encoded at all).
 */
import type { RaftMessage } from '../../src/gen/kvstore/v1/raft.js';
import type { RaftHost } from '../../src/node/raft-host.js';
import type { Replica } from '../../src/node/replica.js';
import { decodeSendRequest, encodeSendRequest } from '../../src/node/send-request-codec.js';
import type { SimCluster } from './sim-cluster.js';
import type { SimNode } from './sim-node.js';

/** A wire message with every field zero or empty except those given. */
export function wireMessage(fields: Partial<RaftMessage>): RaftMessage {
  return {
    shardId: 0, type: 0, to: 0, from: 0, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0,
    context: Buffer.alloc(0), ...fields,
  };
}

/** A shard's leader and one follower, each with its node. */
export interface Group {
  leaderNode: SimNode;
  leader: Replica;
  followerNode: SimNode;
  follower: Replica;
}

/** The running host of `node`, which must be up. */
export function hostOf(node: SimNode): RaftHost {
  if (node.host === undefined) throw new Error(`${node.nodeId} is not up`);
  return node.host;
}

/** The leader of `shardId` and a follower of it (the first other node hosting it), as they are now. */
export function groupOf(cluster: SimCluster, shardId: number): Group {
  const led = cluster.manager.leaderOf(shardId);
  if (led === undefined) throw new Error(`shard ${shardId} has no leader`);
  for (const node of cluster.nodes.values()) {
    const replica = node.host?.replica(shardId);
    if (node === led.node || replica === undefined || replica.removed || replica.uninitialized) continue;
    return { leaderNode: led.node, leader: led.replica, followerNode: node, follower: replica };
  }
  throw new Error(`shard ${shardId} has no follower`);
}

/** The term of `replica`'s entry at `index` (0 when it has none). */
export function termAt(replica: Replica, index: number): number {
  const term = replica.storage.term(index);
  return term.ok ? term.value : 0;
}

/** An append from the leader to the follower after the follower's last entry, as the leader would send it. */
export function appendAfterLast(group: Group): RaftMessage {
  const { leader, follower } = group;
  const index = follower.rawNode.lastIndex();
  return wireMessage({
    shardId: follower.shardId, type: 1, to: follower.replicaId, from: leader.replicaId, term: follower.rawNode.term(),
    logTerm: termAt(follower, index), index, commit: follower.rawNode.commitIndex(),
  });
}

/**
 * `wire` as the receiving node would get it from the wire: through the `SendRequest` codec,
 * or as it is when the codec refuses to encode it (a number past 2^53; another transport
 * might still hand such an object to the host).
 */
export function asReceived(fromNodeId: string, wire: RaftMessage): RaftMessage {
  // The codec checks the uint64 fields; a negative or fractional enum or shard id it would mangle.
  const plain = (value: number): boolean => Number.isSafeInteger(value) && value >= 0;
  if (!plain(wire.type) || !plain(wire.shardId) || wire.shardId > 0xffff_ffff || !wire.entries.every((entry) => plain(entry.type))) return wire;
  let bytes: Buffer;
  try {
    bytes = encodeSendRequest({ fromNodeId, messages: [wire] });
  } catch {
    return wire;
  }
  const decoded = decodeSendRequest(bytes).messages[0];
  if (decoded === undefined) throw new Error('a SendRequest of one message decoded to none');
  return decoded;
}

/** Sends `wire` to `node` as `fromNodeId` would, through its host's real receiving path. */
export function sendTo(node: SimNode, fromNodeId: string, wire: RaftMessage): void {
  hostOf(node).deliver(fromNodeId, asReceived(fromNodeId, wire));
}
