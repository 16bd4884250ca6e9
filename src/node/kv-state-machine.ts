/**
 * One shard's key-value state machine: `key → { value, version }`, where version is
 * the Raft index of the key's last write. It applies committed commands in log
 * order, remembers client sessions for exactly-once retries, and knows the group's
 * members (replica id → node id) and epoch, so a snapshot carries everything a new
 * replica needs.
 *
 * Everything here is a function of the applied log: no clock, no randomness.
 */
import { BinaryReader, BinaryWriter, CodecError } from './binary-codec.js';
import { CommandOp, decodeCommand, fingerprintOf, TxnCompareKind, TxnOpKind, type TxnSpec } from './kv-command.js';
import { ExpiryIndex } from './expiry-index.js';
import { type AdmittedWrite, type AppliedResult, SessionTable, type TxnOpResult, type WriteResult } from './session-table.js';

export type { AppliedResult, SessionRefusal, TxnOpResult, WriteResult } from './session-table.js';

/**
 * A stored value. `version` is the Raft index of the write that produced it; `expiresAtMs` the
 * log time at which it expires (0: never).
 */
export interface StoredValue {
  value: Buffer;
  version: number;
  expiresAtMs: number;
}


/** One member of a shard's group: which node hosts which replica id. */
export interface ShardMember {
  replicaId: number;
  nodeId: string;
}

/** A membership change as the state machine records it. */
export type MembershipChange = { type: 'add'; replicaId: number; nodeId: string } | { type: 'remove'; replicaId: number };

/**
 * The snapshot layout this version writes. Format 2 (issue 15) changed only the session
 * table (`SessionTable.encode`: bounded, in eviction order, with command fingerprints);
 * format 3 (transactions, expiring keys) lays out as format 2 with one section more at the end
 * (the keys that expire), and its session table may hold transaction results, which a format-2
 * reader does not know. Formats 1 and 2 are still
 * read, so a node upgraded in place restores its old snapshots.
 */
const SNAPSHOT_FORMAT = 3;
/** Format 2: as format 3 without transaction results and without the expiry section at the end. */
const SNAPSHOT_FORMAT_2 = 2;
/** The expiry section of a state machine without expiring keys: its u32 count, 0. */
const EMPTY_EXPIRY_SECTION_BYTES = 4;
/** Format 1: sessions by client with their results and a sweep time, no fingerprints. */
const SNAPSHOT_FORMAT_1 = 1;

/** Snapshot data as {@link KvStateMachine.decodeSnapshot} read it. */
export interface DecodedSnapshot {
  machine: KvStateMachine;
  /**
   * How many bytes of {@link KvStateMachine.encodeSnapshot}'s re-encoding, after the format
   * byte, the data must equal byte for byte: all of them for the current format; for format 2
   * all but the (empty) expiry section format 3 adds at the end; for format 1 only
   * {@link sharedBytes}.
   */
  comparableBytes: (encodedLength: number) => number;
  /** True when the data must be exactly that long too (formats 2 and 3: nothing else differs). */
  exact: boolean;
  /** Bytes before the session table: the format byte, then what every format lays out alike (indexes, members, keys). */
  sharedBytes: number;
}

/** Stale entries the expiry index may hold beyond its live ones before it is rebuilt. */
const STALE_EXPIRY_SLACK = 1024;

/** The KV state of one replica of one shard. */
export class KvStateMachine {
  /** Index of the last entry applied (or covered by the restored snapshot). */
  appliedIndex = 0;
  /** The shard's conf version: 1 at bootstrap, +1 per applied membership change; 0 while uninitialized. */
  epoch = 0;
  /** Replica id → node id of the group's members, as of {@link appliedIndex}. */
  readonly members = new Map<number, string>();
  private readonly data = new Map<string, StoredValue>();
  /** The keys that expire, by expiry time (`expiry-index.ts`). */
  private expiries = new ExpiryIndex();
  /** Keys held with an expiry: the live entries of {@link expiries} (the rest are stale). */
  private expiringKeys = 0;
  /** Keys removed by expiry since this machine was created or restored (a metric). */
  expiredTotal = 0;
  private sessions = new SessionTable();
  /** Largest `proposedAtMs` applied so far: the state machine's only clock. */
  private appliedLogTimeMs = 0;

  /** A fresh state machine for a group bootstrapped with `members` (epoch 1). */
  static bootstrap(members: readonly ShardMember[]): KvStateMachine {
    const machine = new KvStateMachine();
    machine.epoch = 1;
    for (const member of members) machine.members.set(member.replicaId, member.nodeId);
    return machine;
  }

  /** Number of keys held. */
  get keyCount(): number {
    return this.data.size;
  }

  /** Number of client sessions held (at most `MAX_SESSIONS_PER_SHARD`). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Number of write results held for retries (at most `MAX_RESULTS_PER_SHARD`). */
  get sessionResultCount(): number {
    return this.sessions.resultCount;
  }

  /**
   * Log time: the largest `proposedAtMs` applied so far (0 before the first command). It
   * never decreases; a leader stamps its proposals from it (`log-clock.ts`).
   */
  get logTimeMs(): number {
    return this.appliedLogTimeMs;
  }

  /**
   * The value of a key given as its bytes in latin1 (see {@link keyString}), as of the last
   * applied entry: a key whose expiry time has passed since is still here until an entry with
   * a later log time applies (the leader checks that with its log clock: `kv-service.ts`).
   */
  get(key: string): StoredValue | undefined {
    return this.data.get(key);
  }

  /**
   * Every key held, with its value, version and the ms its TTL has left at log time `logNowMs`
   * (0: none), leaving out keys due by then (a read would not return them). A copy taken in one
   * synchronous pass: the state of one applied index (a backup's cut, `kv-service.ts`).
   */
  exportEntries(logNowMs: number): { key: string; value: Buffer; version: number; expiresInMs: number }[] {
    const entries: { key: string; value: Buffer; version: number; expiresInMs: number }[] = [];
    for (const [key, stored] of this.data) {
      if (stored.expiresAtMs > 0 && stored.expiresAtMs <= logNowMs) continue;
      entries.push({ key, value: stored.value, version: stored.version, expiresInMs: stored.expiresAtMs === 0 ? 0 : stored.expiresAtMs - logNowMs });
    }
    return entries;
  }

  /** The earliest expiry time of a key held (log time), or undefined when no key expires. */
  get nextExpiryMs(): number | undefined {
    return this.expiries.earliest((key, version) => this.data.get(key)?.version === version);
  }

  /** Records that an entry without a command (the leader's no-op) applied. */
  applyEmpty(index: number): void {
    this.advanceTo(index);
  }

  /**
   * Applies the command in a committed entry's data at `index`. A retried
   * `(clientId, seq)` returns its first result and changes nothing; a retry the session
   * table cannot vouch for, or that is another write, is refused (see `session-table.ts`).
   */
  applyCommand(index: number, data: Uint8Array): WriteResult {
    this.advanceTo(index);
    const command = decodeCommand(data);
    if (command.proposedAtMs > this.appliedLogTimeMs) this.appliedLogTimeMs = command.proposedAtMs;
    const nowMs = this.appliedLogTimeMs;
    // Expiry is decided here, in log order: every key whose expiry this entry's log time
    // reached is gone before the command sees the data, on every replica alike.
    this.removeExpired(nowMs);
    if (command.op === CommandOp.Expire) {
      this.sessions.expire(nowMs);
      return { kind: 'expire' };
    }
    let admitted: AdmittedWrite | undefined;
    if (command.session === undefined) {
      this.sessions.expire(nowMs); // (admit does it for writes with a session)
    } else {
      const admission = this.sessions.admit(command.session.clientId, command.session.seq, fingerprintOf(command), nowMs);
      if (admission.kind === 'answer') {
        const answer = admission.result;
        return answer.kind === 'txn' && command.op === CommandOp.Txn ? this.rereadTxn(answer, command.txn, command.session.seq) : answer;
      }
      admitted = admission;
    }
    let result: AppliedResult;
    switch (command.op) {
      case CommandOp.Put:
        this.store(command.key, command.value, index, command.ttlMs === 0 ? 0 : nowMs + command.ttlMs);
        result = { kind: 'put', version: index };
        break;
      case CommandOp.Delete:
        result = { kind: 'delete', existed: this.remove(command.key) };
        break;
      case CommandOp.Cas: {
        const currentVersion = this.data.get(command.key)?.version ?? 0;
        if (currentVersion === command.expectedVersion) {
          this.store(command.key, command.value, index, 0);
          result = { kind: 'cas', ok: true, version: index };
        } else {
          result = { kind: 'cas', ok: false, currentVersion };
        }
        break;
      }
      case CommandOp.Txn:
        result = this.applyTxn(index, command.txn, nowMs);
        if (admitted !== undefined) {
          // The session remembers versions, not the values read (memory stays bounded): see rereadTxn.
          const results = result.results.map((op): TxnOpResult => (op.kind === 'get' ? { ...op, value: undefined } : op));
          this.sessions.record(admitted, { ...result, results }, nowMs);
        }
        return result;
    }
    if (admitted !== undefined) this.sessions.record(admitted, result, nowMs);
    return result;
  }

  /** Whether every compare holds, then the chosen branch, in order: all within this one entry. */
  private applyTxn(index: number, txn: TxnSpec<string, Buffer>, nowMs: number): Extract<AppliedResult, { kind: 'txn' }> {
    const succeeded = txn.compares.every((compare) => {
      const stored = this.data.get(compare.key);
      switch (compare.kind) {
        case TxnCompareKind.Value:
          return stored !== undefined && stored.value.equals(compare.value);
        case TxnCompareKind.Version:
          return (stored?.version ?? 0) === compare.version;
        case TxnCompareKind.Exists:
          return stored !== undefined;
        case TxnCompareKind.Absent:
          return stored === undefined;
      }
    });
    const results: TxnOpResult[] = [];
    for (const op of succeeded ? txn.success : txn.failure) {
      switch (op.kind) {
        case TxnOpKind.Put:
          this.store(op.key, op.value, index, op.ttlMs === undefined ? 0 : nowMs + op.ttlMs);
          results.push({ kind: 'put', version: index });
          break;
        case TxnOpKind.Delete:
          results.push({ kind: 'delete', existed: this.remove(op.key) });
          break;
        case TxnOpKind.Get: {
          const stored = this.data.get(op.key);
          results.push({ kind: 'get', version: stored?.version ?? 0, value: stored?.value });
          break;
        }
      }
    }
    return { kind: 'txn', succeeded, results };
  }

  /**
   * The answer to a retried transaction the session table remembers: its outcome, with the
   * values it read read again. The retry is the same transaction (its fingerprint matched),
   * so the n-th result belongs to the n-th operation of the branch that ran. A version names
   * one write, so a key still at the version the transaction read holds the same bytes. When
   * a key it found was written since, those bytes are gone: the retry is refused
   * (`txn-reads-gone`), never answered with other data. A key it found absent needs no bytes.
   */
  private rereadTxn(answer: Extract<AppliedResult, { kind: 'txn' }>, txn: TxnSpec<string, Buffer>, seq: number): WriteResult {
    const branch = answer.succeeded ? txn.success : txn.failure;
    const results: TxnOpResult[] = [];
    for (const [i, op] of answer.results.entries()) {
      if (op.kind !== 'get' || op.version === 0) {
        results.push(op);
        continue;
      }
      const key = branch[i]?.key;
      const stored = key === undefined ? undefined : this.data.get(key);
      if (stored === undefined || stored.version !== op.version) return { kind: 'txn-reads-gone', seq };
      results.push({ kind: 'get', version: op.version, value: stored.value });
    }
    return { ...answer, results };
  }

  /** Writes a key; a write without a TTL clears any expiry the key had (as Redis's SET does). */
  private store(key: string, value: Buffer, version: number, expiresAtMs: number): void {
    if ((this.data.get(key)?.expiresAtMs ?? 0) > 0) this.expiringKeys -= 1;
    // Past 2^53 the snapshot could not be read back; no client TTL comes near (MAX_TTL_MS).
    const expiry = Math.min(expiresAtMs, Number.MAX_SAFE_INTEGER);
    this.data.set(key, { value, version, expiresAtMs: expiry });
    if (expiry > 0) {
      this.expiringKeys += 1;
      this.expiries.add(key, version, expiry);
    }
    this.compactExpiries();
  }

  /** Deletes a key; true when it existed. */
  private remove(key: string): boolean {
    const stored = this.data.get(key);
    if (stored === undefined) return false;
    if (stored.expiresAtMs > 0) this.expiringKeys -= 1;
    this.data.delete(key);
    this.compactExpiries();
    return true;
  }

  /**
   * Keeps the expiry index within twice the keys that expire (plus a constant): a key written or
   * deleted again leaves a stale entry that only leaves the heap at its own expiry, so a key
   * rewritten often with a long TTL would otherwise grow the heap without bound. The rebuild
   * takes the live entries from the data, so it is the same on every replica.
   */
  private compactExpiries(): void {
    if (this.expiries.size <= 2 * this.expiringKeys + STALE_EXPIRY_SLACK) return;
    const fresh = new ExpiryIndex();
    for (const [key, stored] of this.data) if (stored.expiresAtMs > 0) fresh.add(key, stored.version, stored.expiresAtMs);
    this.expiries = fresh;
  }

  /** Removes every key whose expiry time is at or before log time `nowMs`. */
  private removeExpired(nowMs: number): void {
    for (const due of this.expiries.takeDue(nowMs)) {
      const stored = this.data.get(due.key);
      if (stored === undefined || stored.version !== due.version) continue; // written or deleted since
      this.remove(due.key);
      this.expiredTotal += 1;
    }
  }

  /** Applies a committed membership change at `index`: updates members, bumps the epoch. */
  applyMembershipChange(index: number, change: MembershipChange): void {
    this.advanceTo(index);
    if (change.type === 'add') this.members.set(change.replicaId, change.nodeId);
    else this.members.delete(change.replicaId);
    this.epoch += 1;
  }

  private advanceTo(index: number): void {
    if (index !== this.appliedIndex + 1) {
      throw new Error(`KV state machine applied index ${this.appliedIndex}, asked to apply ${index}: entries out of order`);
    }
    this.appliedIndex = index;
  }

  /** The whole state (data, sessions, members, epoch) as snapshot data. */
  encodeSnapshot(): Buffer {
    const writer = new BinaryWriter(64 + this.data.size * 64);
    writer.u8(SNAPSHOT_FORMAT).u64(this.appliedIndex).u64(this.epoch).u64(this.appliedLogTimeMs);
    writer.u32(this.members.size);
    for (const [replicaId, nodeId] of this.members) writer.u64(replicaId).bytes8(Buffer.from(nodeId, 'utf8'));
    writer.u32(this.data.size);
    for (const [key, stored] of this.data) {
      writer.bytes8(Buffer.from(key, 'latin1')).u64(stored.version).bytes32(stored.value);
    }
    this.sessions.encode(writer);
    // Format 3 on: the keys that expire, in the order of the keys above, with their expiry.
    let expiring = 0;
    for (const stored of this.data.values()) if (stored.expiresAtMs > 0) expiring += 1;
    writer.u32(expiring);
    for (const [key, stored] of this.data) {
      if (stored.expiresAtMs > 0) writer.bytes8(Buffer.from(key, 'latin1')).u64(stored.expiresAtMs);
    }
    return writer.finish();
  }

  /**
   * Restores a state machine from {@link encodeSnapshot} data of this format or format 1;
   * throws CodecError if corrupt.
   */
  static fromSnapshot(data: Uint8Array): KvStateMachine {
    return KvStateMachine.decodeSnapshot(data).machine;
  }

  /**
   * {@link fromSnapshot}, telling also what the data was: whether it is in the format this
   * version writes (format 1 is re-encoded as the current one), and how many of its bytes
   * come before the session table — the part both formats lay out alike. The receiver's
   * check of a snapshot (`snapshot-check.ts`) compares them with a re-encoding.
   */
  static decodeSnapshot(data: Uint8Array): DecodedSnapshot {
    const reader = new BinaryReader(data);
    const format = reader.u8();
    if (format !== SNAPSHOT_FORMAT && format !== SNAPSHOT_FORMAT_2 && format !== SNAPSHOT_FORMAT_1) throw new CodecError(`unknown KV snapshot format ${format}`);
    const machine = new KvStateMachine();
    machine.appliedIndex = reader.u64();
    machine.epoch = reader.u64();
    machine.appliedLogTimeMs = reader.u64();
    const memberCount = reader.u32();
    for (let i = 0; i < memberCount; i++) {
      const replicaId = reader.u64();
      machine.members.set(replicaId, reader.bytes8().toString('utf8'));
    }
    const keyCount = reader.u32();
    for (let i = 0; i < keyCount; i++) {
      const key = reader.latin1String8();
      const version = reader.u64();
      machine.data.set(key, { version, value: Buffer.from(reader.bytes32()), expiresAtMs: 0 });
    }
    const sharedBytes = data.length - reader.remaining;
    machine.sessions = format === SNAPSHOT_FORMAT_1 ? SessionTable.decodeFormat1(reader) : SessionTable.decode(reader);
    if (format === SNAPSHOT_FORMAT) {
      const expiring = reader.u32();
      for (let i = 0; i < expiring; i++) {
        const key = reader.latin1String8();
        const expiresAtMs = reader.u64();
        const stored = machine.data.get(key);
        if (stored === undefined || stored.expiresAtMs !== 0 || expiresAtMs === 0) throw new CodecError('KV snapshot expiry names no key, a key twice, or time 0');
        stored.expiresAtMs = expiresAtMs;
        machine.expiries.add(key, stored.version, expiresAtMs);
        machine.expiringKeys += 1;
      }
    }
    if (reader.remaining !== 0) throw new CodecError(`KV snapshot has ${reader.remaining} trailing bytes`);
    const comparableBytes = (encodedLength: number): number =>
      format === SNAPSHOT_FORMAT ? encodedLength : format === SNAPSHOT_FORMAT_2 ? encodedLength - EMPTY_EXPIRY_SECTION_BYTES : sharedBytes;
    return { machine, comparableBytes, exact: format !== SNAPSHOT_FORMAT_1, sharedBytes };
  }
}

/** A key's bytes as the state machine's map key: latin1 maps bytes 1:1 to chars. */
export function keyString(key: Uint8Array): string {
  return (Buffer.isBuffer(key) ? key : Buffer.from(key.buffer, key.byteOffset, key.byteLength)).toString('latin1');
}
