/**
 * The inbound gate: every Raft message and snapshot a peer sends passes here BEFORE it
 * reaches a replica (`RaftHost.deliver`, `RaftHost.deliverSnapshot`). Nothing a peer sends
 * may stop the node or make it crash-loop, and TLS does not yet say who may send, so the
 * gate checks what the core and the node would otherwise trust:
 *
 * 1. the sender's node id: 1–{@link MAX_NODE_ID_CHARS} characters, not this node's;
 * 2. the message's own fields (`message-check.ts`);
 * 3. snapshots: only on the snapshot stream, whole, and their data checked
 *    (`snapshot-check.ts`: the sender's CRC32C, then a KV snapshot applied through the
 *    metadata's index) — no Snapshot message reaches a replica any other way;
 * 4. against this node: the shard below the cluster's shard count, the replica hosted
 *    (`to`), a member `from` living on the sending node, and a heartbeat's commit
 *    within the replica's log (the core would assert on it; `RawNode.step` checks it
 *    again when the message is stepped, since the log may change in between).
 *
 * A refused message is dropped and counted (`messageRejected`, the
 * `raft_messages_rejected_total{reason}` metric), with ONE warn line naming the peer and
 * why, rate-limited per peer and reason (`rate-limited-log.ts`). Messages for a replica
 * that is not here are routine (in flight to one just destroyed or not yet created):
 * counted, logged at debug.
 *
 * Cost: the accepting path allocates nothing and reads each field once, plus a walk of each
 * entry's command bytes; measured in `test/bench/inbound-gate-bench.ts`.
 * @internal
 */
import type { Logger } from '../common/index.js';
import { type RaftMessage, RaftMessageType } from '../gen/kvstore/v1/raft.js';
import { checkMessage, type Rejection, type RejectReason, typeName } from './message-check.js';
import type { RaftHostEvents } from './node-metrics.js';
import { RateLimitedLog, type RateLimitedLogOptions } from './rate-limited-log.js';
import type { Replica } from './replica.js';
import type { NodeRuntime } from './runtime.js';
import { checkSnapshotData } from './snapshot-check.js';

/** Longest node id (`kvstore node --id` takes 1–64 characters). */
export const MAX_NODE_ID_CHARS = 64;

/** What the gate looks at. */
export interface InboundGateOptions {
  /** This node's id: no peer sends as it. */
  nodeId: string;
  logger: Logger;
  runtime: NodeRuntime;
  /** The hosted replica of a shard. */
  replica(shardId: number): Replica | undefined;
  /** The cluster's shard count; 0 while unknown (no shard id is then out of range). */
  shardCount(): number;
  events?: Pick<RaftHostEvents, 'messageRejected'> | undefined;
  /** Rate limits of the warn lines. */
  log?: RateLimitedLogOptions;
}

/** Checks what peers send before the host hands it to a replica. */
export class InboundGate {
  /** Refusals by reason, and snapshots accepted without a checksum (from older nodes). */
  readonly stats: { rejected: Partial<Record<RejectReason, number>>; snapshotsWithoutChecksum: number } = {
    rejected: {},
    snapshotsWithoutChecksum: 0,
  };
  /** The rate-limited lines (tests read its counters). */
  readonly log: RateLimitedLog;
  /** Snapshot data that passed {@link admitSnapshot}, on its way to the replica through `deliver`. */
  private readonly verified = new WeakSet<Uint8Array>();
  /** The last sender id found valid: a batch's messages share one, so it is checked once. */
  private lastGoodSender: string | undefined;

  constructor(private readonly options: InboundGateOptions) {
    this.log = new RateLimitedLog(options.logger, () => options.runtime.monotonicMs(), options.log);
  }

  /**
   * True when a message from the message stream (or a snapshot {@link admitSnapshot} let in)
   * may reach its replica; otherwise it was counted and logged, and the caller drops it.
   */
  admit(fromNodeId: string, wire: RaftMessage, snapshotData?: Uint8Array): boolean {
    let rejection: Rejection | undefined;
    if (wire.type === RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT && (snapshotData === undefined || !this.verified.delete(snapshotData))) {
      rejection = { reason: 'bad_snapshot', detail: 'a snapshot outside the snapshot stream' };
    } else {
      rejection = this.check(fromNodeId, wire);
    }
    if (rejection === undefined) return true;
    this.refuse(fromNodeId, wire, rejection);
    return false;
  }

  /**
   * True when a whole snapshot from the snapshot stream may reach its replica: header,
   * replica and data checked BEFORE the replica or its storage sees any of it. `dataCrc32c` is the sender's
   * checksum, undefined from a node older than it (accepted if the data decodes).
   * The caller then passes the same `data` to `deliver`.
   */
  admitSnapshot(fromNodeId: string, wire: RaftMessage, data: Uint8Array, dataCrc32c: number | undefined): boolean {
    let rejection: Rejection | undefined =
      wire.type === RaftMessageType.RAFT_MESSAGE_TYPE_SNAPSHOT ? this.check(fromNodeId, wire)
      : { reason: 'bad_snapshot', detail: `a ${typeName(wire.type)} on the snapshot stream` };
    if (rejection === undefined) rejection = checkSnapshotData(data, wire.snapshot?.metadata?.index ?? 0, dataCrc32c);
    if (rejection !== undefined) {
      this.refuse(fromNodeId, wire, rejection);
      return false;
    }
    if (dataCrc32c === undefined) {
      this.stats.snapshotsWithoutChecksum += 1;
      this.log.write('info', 'snapshot without checksum accepted: the peer runs an older version', `${printable(fromNodeId)}\0checksum`, () => ({
        peer: printable(fromNodeId), shard: wire.shardId, to: wire.to, bytes: data.length,
      }));
    }
    this.verified.add(data);
    return true;
  }

  /**
   * A snapshot stream that made no whole snapshot (no header, no last chunk, too large):
   * counted as `bad_snapshot` and logged like a refused message.
   */
  refuseStream(fromNodeId: string, detail: string): void {
    this.refuse(fromNodeId, undefined, { reason: 'bad_snapshot', detail });
  }

  /** The checks of a message's sender, fields and destination. */
  private check(fromNodeId: string, wire: RaftMessage): Rejection | undefined {
    if (fromNodeId !== this.lastGoodSender) {
      if (fromNodeId.length === 0 || fromNodeId.length > MAX_NODE_ID_CHARS || fromNodeId === this.options.nodeId) {
        return { reason: 'bad_sender', detail: `sender id of ${fromNodeId.length} characters${fromNodeId === this.options.nodeId ? ', this node\'s own' : ''}` };
      }
      this.lastGoodSender = fromNodeId;
    }
    const problem = checkMessage(wire);
    if (problem !== undefined) return problem;
    const shardCount = this.options.shardCount();
    if (shardCount > 0 && wire.shardId >= shardCount) {
      return { reason: 'unknown_shard', detail: `shard ${wire.shardId} of a cluster of ${shardCount} shards` };
    }
    const replica = this.options.replica(wire.shardId);
    // A removed replica still steps messages until the host destroys it (it may have to vote: `Replica.removed`).
    if (replica === undefined || replica.replicaId !== wire.to) {
      return { reason: 'unknown_replica', detail: replica === undefined ? 'shard not hosted here' : `this node hosts replica ${replica.replicaId}` };
    }
    // A TransferLeader's `from` is the transferee, which a follower forwards for.
    if (wire.type !== RaftMessageType.RAFT_MESSAGE_TYPE_TRANSFER_LEADER) {
      const home = replica.machine.members.get(wire.from);
      if (home !== undefined && home !== '' && home !== fromNodeId) {
        return { reason: 'wrong_node', detail: `replica ${wire.from} lives on ${printable(home)}` };
      }
    }
    if (wire.type === RaftMessageType.RAFT_MESSAGE_TYPE_HEARTBEAT && wire.commit > 0) {
      const rawNode = replica.rawNode;
      if (wire.term >= rawNode.term() && wire.commit > rawNode.lastIndex()) {
        return { reason: 'commit_beyond_log', detail: `commit ${wire.commit} beyond the last index ${rawNode.lastIndex()}` };
      }
    }
    return undefined;
  }

  /** Counts and logs a refusal; `wire` is undefined for a snapshot stream that carried no message. */
  private refuse(fromNodeId: string, wire: RaftMessage | undefined, rejection: Rejection): void {
    const { reason, detail } = rejection;
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
    this.options.events?.messageRejected?.(reason, detail);
    const peer = printable(fromNodeId);
    const fields = (): Record<string, unknown> => (wire === undefined ? { peer, reason, detail }
      : { peer, reason, detail, shard: wire.shardId, type: typeName(wire.type), from: wire.from, to: wire.to, term: wire.term });
    if (reason === 'unknown_replica') {
      this.options.logger.debug('raft message for a replica not hosted here dropped', fields());
      return;
    }
    this.log.write('warn', 'raft message from peer refused', `${peer}\0${reason}`, fields);
  }
}

/** A peer's self-declared id as logged: at most {@link MAX_NODE_ID_CHARS} characters. */
function printable(nodeId: string): string {
  return nodeId.length <= MAX_NODE_ID_CHARS ? nodeId : `${nodeId.slice(0, MAX_NODE_ID_CHARS)}…`;
}
