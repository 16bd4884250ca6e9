/**
 * The remembered write results of one shard's session table, oldest first, in flat typed
 * arrays instead of an object per result. A busy shard remembers up to 16,384 results for
 * two minutes on every replica; as objects (result, fingerprint, their boxed numbers) that
 * was about 200 bytes and five heap objects each, hundreds of thousands per node, which the
 * garbage collector walked on every major collection and copied on every promotion (measured:
 * node throughput fell by a quarter over 90 s of writes as they piled up). Here a result is
 * ~45 bytes in arrays the collector does not look into; only a transaction's result, which
 * has a list, stays an object.
 *
 * Positions are absolute (they only grow): position `p` lives in slot `p & mask`. The ring
 * grows by doubling and shrinks by halving when a quarter full, so a shard that goes quiet
 * gives its memory back.
 * @internal
 */
import { type CommandFingerprint, CommandOp } from './kv-command.js';
import type { AppliedResult } from './session-table.js';

/** How a plain result is stored: its kind and one number. Also the snapshot's result tags. */
export enum ResultTag {
  Put = 1,
  Delete = 2,
  CasOk = 3,
  CasConflict = 4,
  /** Written by snapshot format 3 on: u64 succeeded (0/1), u8 count, per operation u8 kind and u64. */
  Txn = 6,
}

const MIN_CAPACITY = 16;

/** A result other than a transaction's, from its tag and its one number (also how snapshots hold it). */
export function plainResult(tag: Exclude<ResultTag, ResultTag.Txn>, value: number): AppliedResult {
  switch (tag) {
    case ResultTag.Put:
      return { kind: 'put', version: value };
    case ResultTag.Delete:
      return { kind: 'delete', existed: value === 1 };
    case ResultTag.CasOk:
      return { kind: 'cas', ok: true, version: value };
    case ResultTag.CasConflict:
      return { kind: 'cas', ok: false, currentVersion: value };
  }
}

/** A result ring; `S` is the session type (kept by reference). */
export class ResultRing<S> {
  private capacity = MIN_CAPACITY;
  private mask = MIN_CAPACITY - 1;
  /** Position of the oldest result; `end` is one past the newest. */
  private head = 0;
  private end = 0;
  private sessions: (S | undefined)[] = new Array<S | undefined>(MIN_CAPACITY).fill(undefined);
  private seqs = new Float64Array(MIN_CAPACITY);
  private appliedAt = new Float64Array(MIN_CAPACITY);
  /** The fingerprint's op; 0 for none (a result read from a format-1 snapshot). */
  private ops = new Uint8Array(MIN_CAPACITY);
  private keyHashes = new Uint32Array(MIN_CAPACITY);
  private valueHashes = new Uint32Array(MIN_CAPACITY);
  private expectedVersions = new Float64Array(MIN_CAPACITY);
  private tags = new Uint8Array(MIN_CAPACITY);
  private values = new Float64Array(MIN_CAPACITY);
  /** Transaction results, by position. */
  private readonly txns = new Map<number, Extract<AppliedResult, { kind: 'txn' }>>();

  /** Results held. */
  get size(): number {
    return this.end - this.head;
  }

  /** Slots allocated (for tests): a power of two, at most four times {@link size} once past the minimum. */
  get slots(): number {
    return this.capacity;
  }

  /** Position of the oldest result (equal to {@link endPosition} when empty). */
  get headPosition(): number {
    return this.head;
  }

  /** One past the newest position. */
  get endPosition(): number {
    return this.end;
  }

  /** Appends a result; returns its position. */
  push(session: S, seq: number, appliedAtMs: number, fingerprint: CommandFingerprint | undefined, result: AppliedResult): number {
    if (this.size === this.capacity) this.resize(this.capacity * 2);
    const position = this.end;
    const slot = position & this.mask;
    this.sessions[slot] = session;
    this.seqs[slot] = seq;
    this.appliedAt[slot] = appliedAtMs;
    this.ops[slot] = fingerprint?.op ?? 0;
    this.keyHashes[slot] = fingerprint?.keyHash ?? 0;
    this.valueHashes[slot] = fingerprint?.valueHash ?? 0;
    this.expectedVersions[slot] = fingerprint?.expectedVersion ?? 0;
    switch (result.kind) {
      case 'put':
        this.setResult(slot, ResultTag.Put, result.version);
        break;
      case 'delete':
        this.setResult(slot, ResultTag.Delete, result.existed ? 1 : 0);
        break;
      case 'cas':
        if (result.ok) this.setResult(slot, ResultTag.CasOk, result.version);
        else this.setResult(slot, ResultTag.CasConflict, result.currentVersion);
        break;
      case 'txn':
        this.setResult(slot, ResultTag.Txn, result.succeeded ? 1 : 0);
        this.txns.set(position, result);
        break;
      case 'expire':
        throw new Error('session table: an expire entry has no session');
    }
    this.end += 1;
    return position;
  }

  /** Drops the oldest result (nothing when empty). */
  dropOldest(): void {
    if (this.size === 0) return;
    const slot = this.head & this.mask;
    this.sessions[slot] = undefined;
    if (this.tags[slot] === ResultTag.Txn) this.txns.delete(this.head);
    this.head += 1;
    if (this.capacity > MIN_CAPACITY && this.size * 4 <= this.capacity) this.resize(this.capacity / 2);
  }

  sessionAt(position: number): S {
    return this.sessions[this.slotOf(position)] as S;
  }

  seqAt(position: number): number {
    return this.seqs[this.slotOf(position)] ?? 0;
  }

  appliedAtMs(position: number): number {
    return this.appliedAt[this.slotOf(position)] ?? 0;
  }

  /** What the write asked for; undefined for a result from a format-1 snapshot. */
  fingerprintAt(position: number): CommandFingerprint | undefined {
    const slot = this.slotOf(position);
    const op = this.ops[slot] ?? 0;
    if (op === 0) return undefined;
    return { op: op as CommandOp, keyHash: this.keyHashes[slot] ?? 0, valueHash: this.valueHashes[slot] ?? 0, expectedVersion: this.expectedVersions[slot] ?? 0 };
  }

  /** The fingerprint's fields as the snapshot writes them (op 0 and zeros for none). */
  fingerprintFields(position: number): [op: number, keyHash: number, valueHash: number, expectedVersion: number] {
    const slot = this.slotOf(position);
    return [this.ops[slot] ?? 0, this.keyHashes[slot] ?? 0, this.valueHashes[slot] ?? 0, this.expectedVersions[slot] ?? 0];
  }

  /** The remembered result, as {@link push} was given it. */
  resultAt(position: number): AppliedResult {
    const slot = this.slotOf(position);
    const value = this.values[slot] ?? 0;
    const tag = this.tags[slot] as ResultTag;
    if (tag !== ResultTag.Txn) return plainResult(tag, value);
    const txn = this.txns.get(position);
    if (txn === undefined) throw new Error(`session table: no transaction result at position ${position}`);
    return txn;
  }

  private slotOf(position: number): number {
    if (position < this.head || position >= this.end) throw new Error(`session table: result position ${position} outside [${this.head}, ${this.end})`);
    return position & this.mask;
  }

  private setResult(slot: number, tag: ResultTag, value: number): void {
    this.tags[slot] = tag;
    this.values[slot] = value;
  }

  /** Moves every held result into arrays of `capacity` slots (a power of two ≥ size). */
  private resize(capacity: number): void {
    const oldMask = this.mask;
    const newMask = capacity - 1;
    const sessions = new Array<S | undefined>(capacity).fill(undefined);
    const seqs = new Float64Array(capacity);
    const appliedAt = new Float64Array(capacity);
    const ops = new Uint8Array(capacity);
    const keyHashes = new Uint32Array(capacity);
    const valueHashes = new Uint32Array(capacity);
    const expectedVersions = new Float64Array(capacity);
    const tags = new Uint8Array(capacity);
    const values = new Float64Array(capacity);
    for (let position = this.head; position < this.end; position++) {
      const from = position & oldMask;
      const to = position & newMask;
      sessions[to] = this.sessions[from];
      seqs[to] = this.seqs[from] ?? 0;
      appliedAt[to] = this.appliedAt[from] ?? 0;
      ops[to] = this.ops[from] ?? 0;
      keyHashes[to] = this.keyHashes[from] ?? 0;
      valueHashes[to] = this.valueHashes[from] ?? 0;
      expectedVersions[to] = this.expectedVersions[from] ?? 0;
      tags[to] = this.tags[from] ?? 0;
      values[to] = this.values[from] ?? 0;
    }
    this.capacity = capacity;
    this.mask = newMask;
    this.sessions = sessions;
    this.seqs = seqs;
    this.appliedAt = appliedAt;
    this.ops = ops;
    this.keyHashes = keyHashes;
    this.valueHashes = valueHashes;
    this.expectedVersions = expectedVersions;
    this.tags = tags;
    this.values = values;
  }
}
