/**
 * Safety checks of the whole-node simulator, run as things happen (Raft §5.4, Figure 3):
 *
 * - election safety: at most one leader per shard per term (after every event);
 * - log matching: an entry at (index, term) has the same data and the same previous term
 *   in every replica's log that holds it (at every append to storage, and at every restart
 *   for what the WAL recovered). One exception, at a restart: the restarted replica no longer
 *   holds the entries of terms above the term its WAL recovered. Those terms never became
 *   durable there, so nothing of them left the node (no message carries a term before it is
 *   durable: `turn-loop.ts`), and a one-voter leader may win such a term again and write
 *   other entries in it (seed 29,083,968). Raft allows that; an entry of the lost term that
 *   another replica holds keeps its record, and one still in flight conflicts if it is appended
 *   when it lands;
 * - durable terms: a restarted replica recovers at least the term of every hard state a
 *   completed sync covered (the exception above must not hide a WAL that loses synced state),
 *   and no message a node sends carries a term its replica has not made durable (at every hand-over
 *   to the transport; pre-votes and granted answers to them excepted, by design): the rule the
 *   exception rests on;
 * - state-machine safety: every replica applies the same entry at an index (at every apply),
 *   so every replica's applied sequence is a prefix of one sequence;
 * - exactly-once and determinism: a naive reference state machine (a map, and every
 *   `(client id, seq)` ever applied) runs the one applied sequence; after each apply, the
 *   key the entry touched must read the same in the replica's real state machine;
 * - a replica's commit index never goes down while its process lives (after every event);
 * - no node's inbound gate refuses a message a correct peer sent (after every event): in a
 *   run where every message comes from a real node, a refusal other than `unknown_replica`
 *   (routine) is a false alarm of the gate — except checksum refusals of snapshots the
 *   network corrupted on purpose.
 *
 * A violation throws {@link SimViolation}; the run reports its seed.
 */
import { RaftMessageType, type RaftMessage } from '../../src/gen/kvstore/v1/raft.js';
import { CommandOp, decodeCommand } from '../../src/node/kv-command.js';
import type { Replica } from '../../src/node/replica.js';
import { type Entry, EntryType, Role } from '../../src/raft/index.js';

/** A broken safety property. */
export class SimViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimViolation';
  }
}

interface LogRecord {
  hash: number;
  prevTerm: number;
  /** The nodes whose logs hold it (as far as the checker knows: from their appends and recoveries). */
  holders: Set<string>;
}

interface AppliedRecord {
  hash: number;
  term: number;
  /** The key the entry wrote (latin1) and its state after it, per the reference model; undefined when it wrote none. */
  key?: string;
  value?: { value: string; version: number } | undefined;
}

/** The reference model of one shard. */
interface ShardModel {
  data: Map<string, { value: string; version: number }>;
  sessions: Set<string>;
  /** Index of the last entry the model applied. */
  applied: number;
}

/** FNV-1a over an entry's term, type and data. */
export function entryHash(entry: Entry): number {
  let hash = 0x811c9dc5;
  const mix = (byte: number): void => {
    hash ^= byte & 0xff;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  };
  for (const value of [entry.term, entry.type]) for (let shift = 0; shift < 32; shift += 8) mix(value >>> shift);
  for (const byte of entry.data) mix(byte);
  return hash >>> 0;
}

/** Checks one simulated cluster. */
export class SimChecker {
  /** `shard/term` → `node/replica` that led it. */
  private readonly leaders = new Map<string, string>();
  /** shard → index → term → record. */
  private readonly logs = new Map<number, Map<number, Map<number, LogRecord>>>();
  /** `node/shard` → the highest term a completed sync made durable there, since the replica was created. */
  private readonly durableTerms = new Map<string, number>();
  /** shard → index → what applied there. */
  private readonly applied = new Map<number, Map<number, AppliedRecord>>();
  private readonly models = new Map<number, ShardModel>();
  private readonly commits = new WeakMap<Replica, number>();
  /** Counters for reports. */
  readonly stats = { applies: 0, appends: 0, leaders: 0 };
  /** Refusals of the nodes' inbound gates, by reason. */
  readonly rejections = new Map<string, number>();
  /** Set by tests that send bad messages themselves: refusals are then theirs to check. */
  badPeersExpected = false;
  /** How many checksum refusals the network's deliberate snapshot corruption explains. */
  corruptedSnapshots: () => number = () => 0;
  private falseAlarm: SimViolation | undefined;

  /**
   * Entries a replica of `shardId` on node `nodeId` is about to append after `prevTerm` (its
   * term at index first−1), or that its WAL recovered at a restart.
   */
  onAppend(shardId: number, nodeId: string, entries: readonly Entry[], prevTerm: number | undefined): void {
    let byIndex = this.logs.get(shardId);
    if (byIndex === undefined) {
      byIndex = new Map();
      this.logs.set(shardId, byIndex);
    }
    let previous = prevTerm;
    for (const entry of entries) {
      this.stats.appends += 1;
      let byTerm = byIndex.get(entry.index);
      if (byTerm === undefined) {
        byTerm = new Map();
        byIndex.set(entry.index, byTerm);
      }
      const hash = entryHash(entry);
      const known = byTerm.get(entry.term);
      if (known === undefined) {
        if (previous !== undefined) byTerm.set(entry.term, { hash, prevTerm: previous, holders: new Set([nodeId]) });
      } else if (known.hash !== hash || (previous !== undefined && known.prevTerm !== previous)) {
        throw new SimViolation(
          `log matching: shard ${shardId} ${nodeId} holds a different entry at index ${entry.index} term ${entry.term}` +
            ` (previous term ${String(previous)}; ${[...known.holders].join(', ')} held one after term ${known.prevTerm})`,
        );
      } else {
        known.holders.add(nodeId);
      }
      previous = entry.term;
    }
  }

  /** The highest term a completed sync made durable for node `nodeId`'s replica of `shardId` (0: none). */
  private durableTerm(nodeId: string, shardId: number): number {
    return this.durableTerms.get(`${nodeId}/${shardId}`) ?? 0;
  }

  /** A sync on node `nodeId` completed that covered a hard state of `term` for shard `shardId`. */
  onDurableTerm(nodeId: string, shardId: number, term: number): void {
    if (term > this.durableTerm(nodeId, shardId)) this.durableTerms.set(`${nodeId}/${shardId}`, term);
  }

  /** Node `nodeId` created a new replica of `shardId`, or dropped its replica: nothing of it is durable. */
  onReplicaReset(nodeId: string, shardId: number): void {
    this.durableTerms.delete(`${nodeId}/${shardId}`);
  }

  /**
   * Node `nodeId` restarted and expected a replica of `shardId` (its node state names it) that its
   * WAL does not hold: legitimate only if no completed sync covered a hard state of it (a sync
   * covers the group's creation too) since the replica was last created or dropped.
   */
  onGroupMissing(shardId: number, nodeId: string): void {
    const durable = this.durableTerm(nodeId, shardId);
    if (durable > 0) throw new SimViolation(`durability: shard ${shardId} ${nodeId} recovered no group, though a completed sync covered its term ${durable}`);
  }

  /**
   * Node `nodeId` restarted with its replica of `shardId` recovered from its WAL: hard state
   * term `term`, and `entries` after `prevTerm`. It must have kept every synced term; it no
   * longer holds the entries of the terms above `term` (see the file comment); what it
   * recovered is checked and held again. What replicas applied stays: a lost process takes
   * nothing back from the state-machine checks.
   */
  onRecovered(shardId: number, nodeId: string, term: number, entries: readonly Entry[], prevTerm: number | undefined): void {
    const durable = this.durableTerm(nodeId, shardId);
    if (term < durable) {
      throw new SimViolation(`durability: shard ${shardId} ${nodeId} recovered term ${term}, below the term ${durable} a completed sync covered`);
    }
    const byIndex = this.logs.get(shardId);
    if (byIndex !== undefined) {
      for (const [index, byTerm] of byIndex) {
        for (const [recordTerm, record] of byTerm) {
          if (recordTerm > term && record.holders.delete(nodeId) && record.holders.size === 0) byTerm.delete(recordTerm);
        }
        if (byTerm.size === 0) byIndex.delete(index);
      }
    }
    this.onAppend(shardId, nodeId, entries, prevTerm);
    // What recovery read is durable once the WAL opened: `Wal.open` syncs the log it recovered,
    // and a term it raises to a snapshot's is recomputed from that durable snapshot at every recovery.
    this.onDurableTerm(nodeId, shardId, term);
  }

  /**
   * Node `nodeId`'s host handed its transport `message` (or a snapshot's header), from a replica
   * that exists: checked then, not when it leaves, for it may wait in the transport's backlog
   * (seed 37,005,157: a destroyed replica's appends left 450 ms later).
   */
  onSend(nodeId: string, message: RaftMessage): void {
    if (message.term === 0) return;
    const type = message.type;
    // A pre-vote asks for the next term, and a granted answer carries the asker's: neither is durable by design.
    if (type === RaftMessageType.RAFT_MESSAGE_TYPE_PRE_VOTE) return;
    if (type === RaftMessageType.RAFT_MESSAGE_TYPE_PRE_VOTE_RESPONSE && !message.reject) return;
    const durable = this.durableTerm(nodeId, message.shardId);
    if (message.term > durable) {
      throw new SimViolation(
        `durability: ${nodeId} sent a message of type ${type} for shard ${message.shardId} carrying term ${message.term}, ` +
          `above its durable term ${durable}`,
      );
    }
  }

  /** A replica applied `entry` (events.entryApplied). */
  onApply(where: string, replica: Replica, entry: Entry): void {
    this.stats.applies += 1;
    const shardId = replica.shardId;
    let byIndex = this.applied.get(shardId);
    if (byIndex === undefined) {
      byIndex = new Map();
      this.applied.set(shardId, byIndex);
    }
    const hash = entryHash(entry);
    let record = byIndex.get(entry.index);
    if (record === undefined) {
      record = { hash, term: entry.term, ...this.applyToModel(shardId, entry) };
      byIndex.set(entry.index, record);
    } else if (record.hash !== hash) {
      throw new SimViolation(
        `state-machine safety: shard ${shardId} ${where} applied a different entry at index ${entry.index}` +
          ` (term ${entry.term}; others applied term ${record.term})`,
      );
    }
    if (record.key !== undefined) {
      const stored = replica.machine.get(record.key);
      const actual = stored === undefined ? undefined : { value: stored.value.toString('latin1'), version: stored.version };
      const expected = record.value;
      if (actual?.value !== expected?.value || actual?.version !== expected?.version) {
        throw new SimViolation(
          `exactly-once/determinism: shard ${shardId} ${where} after index ${entry.index} holds key "${record.key}" = ` +
            `${JSON.stringify(actual)}, the reference model ${JSON.stringify(expected)}`,
        );
      }
    }
  }

  /** Applies the first application of an index to the shard's reference model. */
  private applyToModel(shardId: number, entry: Entry): Pick<AppliedRecord, 'key' | 'value'> {
    let model = this.models.get(shardId);
    if (model === undefined) {
      model = { data: new Map(), sessions: new Set(), applied: entry.index - 1 };
      this.models.set(shardId, model);
    }
    if (entry.index !== model.applied + 1) {
      // The first replica to reach this index got there through a snapshot: the model cannot follow.
      model.applied = Number.POSITIVE_INFINITY;
      return {};
    }
    model.applied = entry.index;
    if (entry.type !== EntryType.Normal || entry.data.length === 0) return {};
    const command = decodeCommand(entry.data);
    if (command.op === CommandOp.Txn || command.op === CommandOp.Expire || (command.op === CommandOp.Put && command.ttlMs > 0)) {
      throw new Error('the simulator model does not apply transactions or expiring keys: its clients propose none');
    }
    const key = command.key;
    const session = command.session === undefined ? undefined : `${command.session.clientId}/${command.session.seq}`;
    if (session === undefined || !model.sessions.has(session)) {
      if (session !== undefined) model.sessions.add(session);
      switch (command.op) {
        case CommandOp.Put:
          model.data.set(key, { value: command.value.toString('latin1'), version: entry.index });
          break;
        case CommandOp.Delete:
          model.data.delete(key);
          break;
        case CommandOp.Cas:
          if ((model.data.get(key)?.version ?? 0) === command.expectedVersion) {
            model.data.set(key, { value: command.value.toString('latin1'), version: entry.index });
          }
          break;
      }
    }
    const state = model.data.get(key);
    return { key, value: state === undefined ? undefined : { ...state } };
  }

  /** A node's inbound gate refused a message or snapshot (events.messageRejected). */
  onRejected(nodeId: string, reason: string, detail: string): void {
    const count = (this.rejections.get(reason) ?? 0) + 1;
    this.rejections.set(reason, count);
    if (this.badPeersExpected || reason === 'unknown_replica') return;
    if (reason === 'snapshot_checksum' && count <= this.corruptedSnapshots()) return;
    this.falseAlarm ??= new SimViolation(`inbound gate: ${nodeId} refused a message of a correct peer: ${reason}: ${detail}`);
  }

  /**
   * Election safety, lease safety and monotonic commit over the live replicas (after every
   * event), and no false alarm of an inbound gate. Lease safety is what lease reads rest on (`replica-reads.ts`): while a leader
   * holds its lease, no replica of the shard leads a later term.
   */
  afterEvent(replicas: Iterable<[string, Replica]>): void {
    if (this.falseAlarm !== undefined) throw this.falseAlarm;
    const leases: [string, Replica][] = [];
    const leaders: [string, Replica][] = [];
    for (const [nodeId, replica] of replicas) {
      const rawNode = replica.rawNode;
      const commit = rawNode.commitIndex();
      const before = this.commits.get(replica);
      if (before !== undefined && commit < before) {
        throw new SimViolation(`commit index went down: shard ${replica.shardId} replica ${replica.replicaId} on ${nodeId} from ${before} to ${commit}`);
      }
      this.commits.set(replica, commit);
      if (rawNode.role() !== Role.Leader) continue;
      const key = `${replica.shardId}/${rawNode.term()}`;
      const who = `${nodeId}/${replica.replicaId}`;
      const known = this.leaders.get(key);
      if (known === undefined) {
        this.leaders.set(key, who);
        this.stats.leaders += 1;
      } else if (known !== who) {
        throw new SimViolation(`election safety: shard ${replica.shardId} term ${rawNode.term()} has two leaders, ${known} and ${who}`);
      }
      leaders.push([nodeId, replica]);
      if (replica.holdsLease()) leases.push([nodeId, replica]);
    }
    for (const [nodeId, holder] of leases) {
      for (const [otherNodeId, other] of leaders) {
        if (other.shardId !== holder.shardId || other.rawNode.term() <= holder.rawNode.term()) continue;
        throw new SimViolation(
          `lease safety: shard ${holder.shardId}: ${nodeId}/${holder.replicaId} still holds the lease of term ${holder.rawNode.term()} ` +
            `while ${otherNodeId}/${other.replicaId} leads term ${other.rawNode.term()} (a lease read there can be stale)`,
        );
      }
    }
  }
}
