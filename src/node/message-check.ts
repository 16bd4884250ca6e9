/**
 * What a Raft message from a peer must look like before any replica sees it: the
 * stateless half of the inbound checks (`inbound-gate.ts` adds the ones that need the
 * local replica). Anyone who can reach the node's port can send Raft messages, and the
 * core trusts its input the way etcd's does — a field out of range there is a broken
 * invariant, thrown inside a turn, which stops the node; written to the WAL first, it
 * stops it again at every restart. So each rule below names what it keeps out:
 *
 * - **Message types a peer sends** (1–13): local-only types (propose, snapshot status,
 *   unreachable) and unknown numbers never come from a correct peer.
 * - **Numbers in range**: every index, term and replica id an integer in [0, 2^52]
 *   (ids ≥ 1, `from` ≠ `to`), so the core's `+ 1` and `+ entries.length` stay exact
 *   and the WAL encoder, which refuses anything past 2^53, never throws on one. No term
 *   the core adopts can run out: 2^52 elections of headroom remain.
 * - **Term 0 only on ReadIndex** (the one message a follower sends without a term): the
 *   core skips its term check for term 0, which would let a stale append through.
 * - **`logTerm` ≤ `term`**, fields only on the types that carry them (entries on an
 *   append, a snapshot on a snapshot), contexts of at most {@link MAX_CONTEXT_BYTES}.
 * - **Entries consecutive from `index + 1`**, their terms never decreasing from `logTerm`
 *   and never above the message's term: the WAL encoder throws on a gap, and the log
 *   rules (a conflict at a committed index) assert on what a gap lets through.
 * - **Entry types known, entry data decodable**: a conf change `decodeConfChange` reads,
 *   for a replica id in range with a context of at most {@link MAX_CONF_CHANGE_CONTEXT_BYTES};
 *   a normal entry empty (the leader's no-op) or a KV command (`kv-command-check.ts`).
 *   A committed entry that does not decode throws at every apply, so at every restart.
 * - **Snapshot metadata sane**: present, term ≤ the message's, a non-empty voter list,
 *   at most {@link MAX_MEMBERS} distinct member ids in range.
 *
 * The checks run on every message on every node, so the accepting path allocates nothing
 * and reads each field once; a rejection builds its {@link Rejection} only then.
 * @internal
 */
import { type RaftEntry, RaftEntryType, type RaftMessage, RaftMessageType, type RaftSnapshot } from '../gen/kvstore/v1/raft.js';
import { decodeConfChange, MessageType } from '../raft/index.js';
import { checkCommandBytes } from './kv-command-check.js';

/**
 * Largest index, term or replica id accepted from a peer: 2^52, half the safe integers.
 * A real cluster stays far below it; what is left above keeps the core's arithmetic exact.
 */
export const MAX_WIRE_NUMBER = 2 ** 52;
/** Largest message context: the core's are 8 (read and round keys) or 16 bytes (a transfer's campaign). */
export const MAX_CONTEXT_BYTES = 256;
/** Largest conf-change context: the node's `{"nodeId":…}` with a node id of at most 64 characters fits. */
export const MAX_CONF_CHANGE_CONTEXT_BYTES = 255;
/** Most members a snapshot's configuration may list (a group has K of them, K ≤ 5 in practice). */
export const MAX_MEMBERS = 256;

/**
 * Why a message was refused; each is a label of the `raft_messages_rejected_total`
 * metric, so the set is fixed. `unknown_replica` is routine (a message in flight to a
 * replica destroyed or not yet created) and logged at debug; every other reason is
 * something a correct peer never sends, logged at warn.
 */
export type RejectReason =
  /** The sending node's id is empty, too long, or this node's own. */
  | 'bad_sender'
  /** Not a type a peer sends. */
  | 'bad_type'
  /** A number out of range, term 0, logTerm above term, a field the type does not carry. */
  | 'bad_field'
  /** Entries not consecutive from `index + 1`, terms out of order, an unknown entry type. */
  | 'bad_entries'
  /** An entry's data is not a conf change or KV command that decodes. */
  | 'bad_entry_data'
  /** Snapshot metadata not sane, a snapshot outside the snapshot stream or another type on it, a stream without its header or last chunk, or too large. */
  | 'bad_snapshot'
  /** Snapshot data whose CRC32C is not the one the sender computed. */
  | 'snapshot_checksum'
  /** Snapshot data that is not a KV snapshot in canonical form applied through the metadata's index. */
  | 'snapshot_data'
  /** A shard id at or above the cluster's shard count. */
  | 'unknown_shard'
  /** No such replica here (routine: destroyed, or not yet created). */
  | 'unknown_replica'
  /** `from` names a member replica that lives on another node than the sender. */
  | 'wrong_node'
  /** A heartbeat's commit index lies beyond the replica's log. */
  | 'commit_beyond_log';

/** Every {@link RejectReason}, for metrics and tests. */
export const REJECT_REASONS: readonly RejectReason[] = [
  'bad_sender', 'bad_type', 'bad_field', 'bad_entries', 'bad_entry_data', 'bad_snapshot',
  'snapshot_checksum', 'snapshot_data', 'unknown_shard', 'unknown_replica', 'wrong_node', 'commit_beyond_log',
];

/** A refused message: the metric's reason and what exactly was wrong (numbers and field names, never user data). */
export interface Rejection {
  reason: RejectReason;
  detail: string;
}

/** The name of a message type for logs: `Append`, or the number when it is none. */
export function typeName(type: number): string {
  const name: string | undefined = MessageType[type];
  return name ?? String(type);
}

/** True for an integer in [0, {@link MAX_WIRE_NUMBER}]. */
function inRange(value: number): boolean {
  return value >= 0 && value <= MAX_WIRE_NUMBER && Number.isInteger(value);
}

/** True for a replica id: an integer in [1, {@link MAX_WIRE_NUMBER}]. */
function isReplicaId(value: number): boolean {
  return value >= 1 && value <= MAX_WIRE_NUMBER && Number.isInteger(value);
}

function reject(reason: RejectReason, detail: string): Rejection {
  return { reason, detail };
}

/**
 * Why `wire` must not reach a replica, or undefined when its fields are sane. Says nothing
 * about the local replica (that is `inbound-gate.ts`) nor about snapshot data (`snapshot-check.ts`).
 */
export function checkMessage(wire: RaftMessage): Rejection | undefined {
  const type = wire.type;
  if (!(type >= RaftMessageType.RAFT_MESSAGE_TYPE_APPEND && type <= RaftMessageType.RAFT_MESSAGE_TYPE_TRANSFER_LEADER && Number.isInteger(type))) {
    return reject('bad_type', `type ${type} is not one a peer sends`);
  }
  if (!(wire.shardId >= 0 && wire.shardId <= 0xffff_ffff && Number.isInteger(wire.shardId))) {
    return reject('bad_field', `shard id ${wire.shardId} out of range`);
  }
  if (!isReplicaId(wire.to) || !isReplicaId(wire.from) || wire.from === wire.to) {
    return reject('bad_field', `from ${wire.from} to ${wire.to}: replica ids are distinct integers from 1 to 2^52`);
  }
  const term = wire.term;
  if (!(inRange(term) && inRange(wire.logTerm) && inRange(wire.index) && inRange(wire.commit) && inRange(wire.rejectHint))) {
    return reject('bad_field', outOfRange(wire));
  }
  if (term === 0 && type !== RaftMessageType.RAFT_MESSAGE_TYPE_READ_INDEX) return reject('bad_field', `term 0 on a ${typeName(type)}`);
  if (wire.logTerm > term) return reject('bad_field', `log term ${wire.logTerm} above the message's term ${term}`);
  if (wire.context.length > MAX_CONTEXT_BYTES) {
    return reject('bad_field', `context of ${wire.context.length} bytes (the limit is ${MAX_CONTEXT_BYTES})`);
  }
  if (wire.entries.length > 0) {
    if (type !== RaftMessageType.RAFT_MESSAGE_TYPE_APPEND) return reject('bad_field', `entries on a ${typeName(type)}`);
    const problem = checkEntries(wire);
    if (problem !== undefined) return problem;
  }
  if (wire.snapshot === undefined) {
    if (type === RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT) return reject('bad_snapshot', 'a snapshot message without a snapshot');
    return undefined;
  }
  if (type !== RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT) return reject('bad_field', `a snapshot on a ${typeName(type)}`);
  return checkSnapshotMetadata(wire.snapshot, term);
}

/** Names the first number of `wire` that is out of range (the rejection path only). */
function outOfRange(wire: RaftMessage): string {
  for (const field of ['term', 'logTerm', 'index', 'commit', 'rejectHint'] as const) {
    if (!inRange(wire[field])) return `${field} ${wire[field]} is not an integer from 0 to 2^52`;
  }
  return 'a number out of range';
}

/** Entries of an append: consecutive from `index + 1`, terms in order, types known, data decodable. */
function checkEntries(wire: RaftMessage): Rejection | undefined {
  const entries = wire.entries;
  let expectedIndex = wire.index + 1;
  let previousTerm = wire.logTerm;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as RaftEntry;
    if (entry.index !== expectedIndex) {
      return reject('bad_entries', `entry ${i} of ${entries.length} has index ${entry.index}, expected ${expectedIndex} (consecutive after index ${wire.index})`);
    }
    const entryTerm = entry.term;
    if (!(entryTerm >= previousTerm && entryTerm <= wire.term && entryTerm >= 1 && Number.isInteger(entryTerm))) {
      return reject('bad_entries', `entry ${i} has term ${entryTerm}: terms run from log term ${wire.logTerm}, never down, up to the message's term ${wire.term}`);
    }
    previousTerm = entryTerm;
    expectedIndex += 1;
    const entryType = entry.type;
    const known = entryType === RaftEntryType.RAFT_ENTRY_TYPE_NORMAL_UNSPECIFIED || entryType === RaftEntryType.RAFT_ENTRY_TYPE_CONF_CHANGE;
    const problem =
      !known ? `unknown entry type ${entryType}`
      : entryType === RaftEntryType.RAFT_ENTRY_TYPE_CONF_CHANGE ? checkConfChangeBytes(entry.data)
      : entry.data.length === 0 ? undefined
      : checkCommandBytes(entry.data);
    if (problem !== undefined) return reject(known ? 'bad_entry_data' : 'bad_entries', `entry ${i} (index ${entry.index}): ${problem}`);
  }
  return undefined;
}

/** Why `data` is not a conf change the node can apply, or undefined. Conf changes are rare: this one may allocate. */
function checkConfChangeBytes(data: Uint8Array): string | undefined {
  let replicaId: number;
  let contextBytes: number;
  try {
    const change = decodeConfChange(data);
    replicaId = change.replicaId;
    contextBytes = change.context.length;
  } catch (error) {
    return `conf change does not decode: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (!isReplicaId(replicaId)) return `conf change names replica ${replicaId}, out of range`;
  if (contextBytes > MAX_CONF_CHANGE_CONTEXT_BYTES) return `conf change context of ${contextBytes} bytes (the limit is ${MAX_CONF_CHANGE_CONTEXT_BYTES})`;
  return undefined;
}

/** A snapshot's metadata: index and term in range, term ≤ the message's, a sane configuration. */
function checkSnapshotMetadata(snapshot: RaftSnapshot, messageTerm: number): Rejection | undefined {
  const metadata = snapshot.metadata;
  if (metadata === undefined) return reject('bad_snapshot', 'snapshot without metadata');
  const { index, term, confState } = metadata;
  if (!inRange(index) || !inRange(term)) return reject('bad_snapshot', `snapshot index ${index} term ${term} out of range`);
  if (term > messageTerm) return reject('bad_snapshot', `snapshot term ${term} above the message's term ${messageTerm}`);
  if (index > 0 && term === 0) return reject('bad_snapshot', `snapshot at index ${index} of term 0`);
  if (confState === undefined || confState.voters.length === 0) return reject('bad_snapshot', 'snapshot configuration without voters');
  const count = confState.voters.length + confState.learners.length;
  if (count > MAX_MEMBERS) return reject('bad_snapshot', `snapshot configuration of ${count} members (the limit is ${MAX_MEMBERS})`);
  const seen = new Set<number>();
  for (const id of [...confState.voters, ...confState.learners]) {
    if (!isReplicaId(id)) return reject('bad_snapshot', `snapshot configuration names replica ${id}, out of range`);
    if (seen.has(id)) return reject('bad_snapshot', `snapshot configuration names replica ${id} twice`);
    seen.add(id);
  }
  return undefined;
}
