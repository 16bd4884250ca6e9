/**
 * Client sessions for exactly-once writes (Raft thesis §6.3): the first result of
 * every `(clientId, seq)` is kept, so a retried write returns it instead of applying
 * again.
 *
 * Time here is *log time*: the largest `proposedAtMs` stamped into an applied
 * command by its leader. It is part of the replicated log, so every replica expires
 * the same sessions at the same index — no replica ever reads its own clock on apply.
 *
 * Retention (documented in README "Exactly-once"):
 * - a result is kept {@link RESULT_RETENTION_MS} (60 s of log time) after it applied —
 *   far past any client deadline, so any retry of a live call finds it;
 * - a client's whole session is dropped after {@link SESSION_IDLE_MS} (10 min of log
 *   time) without a write;
 * - a seq at or below the highest seq already forgotten in a live session is refused
 *   (`session-expired`) rather than risk applying it twice.
 * @internal
 */
import { type BinaryReader, type BinaryWriter, CodecError } from './binary-codec.js';

/** How long (log time) a write's result stays available to retries. */
export const RESULT_RETENTION_MS = 60_000;
/** How long (log time) a client may stay silent before its session is dropped. */
export const SESSION_IDLE_MS = 600_000;
/** How often (log time) idle sessions are swept. */
const SWEEP_INTERVAL_MS = 5_000;

/** The outcome of one applied write, as remembered for retries. */
export type WriteResult =
  | { kind: 'put'; version: number }
  | { kind: 'delete'; existed: boolean }
  | { kind: 'cas'; ok: true; version: number }
  | { kind: 'cas'; ok: false; currentVersion: number }
  /** The seq is older than what the session still remembers; the write was not applied. */
  | { kind: 'session-expired' };

interface RememberedResult {
  result: WriteResult;
  appliedAtMs: number;
}

interface ClientSession {
  lastActiveMs: number;
  /** In apply order, so appliedAtMs is non-decreasing and pruning pops from the front. */
  results: Map<number, RememberedResult>;
  /** The highest seq whose result was pruned; 0 when none. */
  forgottenMaxSeq: number;
}

/** All sessions of one shard. Deterministic: a function of the applied commands only. */
export class SessionTable {
  private readonly sessions = new Map<string, ClientSession>();
  private nextSweepMs = 0;

  /** Number of live client sessions. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * The remembered result of `(clientId, seq)`, `session-expired` when it may have
   * been forgotten, or undefined when the write is new and must be applied.
   */
  lookup(clientId: string, seq: number): WriteResult | undefined {
    const session = this.sessions.get(clientId);
    if (session === undefined) return undefined;
    const remembered = session.results.get(seq);
    if (remembered !== undefined) return remembered.result;
    if (seq <= session.forgottenMaxSeq) return { kind: 'session-expired' };
    return undefined;
  }

  /** Remembers the first result of `(clientId, seq)`, applied at log time `nowMs`. */
  record(clientId: string, seq: number, result: WriteResult, nowMs: number): void {
    let session = this.sessions.get(clientId);
    if (session === undefined) {
      session = { lastActiveMs: nowMs, results: new Map(), forgottenMaxSeq: 0 };
      this.sessions.set(clientId, session);
    }
    session.lastActiveMs = nowMs;
    session.results.set(seq, { result, appliedAtMs: nowMs });
    pruneResults(session, nowMs);
  }

  /** Drops idle sessions and stale results once per sweep interval of log time. */
  expire(nowMs: number): void {
    if (nowMs < this.nextSweepMs) return;
    this.nextSweepMs = nowMs + SWEEP_INTERVAL_MS;
    for (const [clientId, session] of this.sessions) {
      if (session.lastActiveMs < nowMs - SESSION_IDLE_MS) {
        this.sessions.delete(clientId);
      } else {
        pruneResults(session, nowMs);
      }
    }
  }

  /** Appends the table to a snapshot. */
  encode(writer: BinaryWriter): void {
    writer.u64(this.nextSweepMs).u32(this.sessions.size);
    for (const [clientId, session] of this.sessions) {
      writer.bytes8(Buffer.from(clientId, 'utf8')).u64(session.lastActiveMs).u64(session.forgottenMaxSeq);
      writer.u32(session.results.size);
      for (const [seq, remembered] of session.results) {
        writer.u64(seq).u64(remembered.appliedAtMs);
        encodeResult(writer, remembered.result);
      }
    }
  }

  /** Reads a table written by {@link encode}. */
  static decode(reader: BinaryReader): SessionTable {
    const table = new SessionTable();
    table.nextSweepMs = reader.u64();
    const count = reader.u32();
    for (let i = 0; i < count; i++) {
      const clientId = reader.bytes8().toString('utf8');
      const lastActiveMs = reader.u64();
      const forgottenMaxSeq = reader.u64();
      const resultCount = reader.u32();
      const results = new Map<number, RememberedResult>();
      for (let j = 0; j < resultCount; j++) {
        const seq = reader.u64();
        const appliedAtMs = reader.u64();
        results.set(seq, { appliedAtMs, result: decodeResult(reader) });
      }
      table.sessions.set(clientId, { lastActiveMs, results, forgottenMaxSeq });
    }
    return table;
  }
}

function pruneResults(session: ClientSession, nowMs: number): void {
  const cutoffMs = nowMs - RESULT_RETENTION_MS;
  for (const [seq, remembered] of session.results) {
    if (remembered.appliedAtMs >= cutoffMs) break;
    session.results.delete(seq);
    if (seq > session.forgottenMaxSeq) session.forgottenMaxSeq = seq;
  }
}

const enum ResultTag {
  Put = 1,
  Delete = 2,
  CasOk = 3,
  CasConflict = 4,
  SessionExpired = 5,
}

function encodeResult(writer: BinaryWriter, result: WriteResult): void {
  switch (result.kind) {
    case 'put':
      writer.u8(ResultTag.Put).u64(result.version);
      return;
    case 'delete':
      writer.u8(ResultTag.Delete).u64(result.existed ? 1 : 0);
      return;
    case 'cas':
      if (result.ok) writer.u8(ResultTag.CasOk).u64(result.version);
      else writer.u8(ResultTag.CasConflict).u64(result.currentVersion);
      return;
    case 'session-expired':
      writer.u8(ResultTag.SessionExpired).u64(0);
      return;
  }
}

function decodeResult(reader: BinaryReader): WriteResult {
  const tag = reader.u8() as ResultTag;
  const value = reader.u64();
  switch (tag) {
    case ResultTag.Put:
      return { kind: 'put', version: value };
    case ResultTag.Delete:
      return { kind: 'delete', existed: value === 1 };
    case ResultTag.CasOk:
      return { kind: 'cas', ok: true, version: value };
    case ResultTag.CasConflict:
      return { kind: 'cas', ok: false, currentVersion: value };
    case ResultTag.SessionExpired:
      return { kind: 'session-expired' };
    default:
      throw new CodecError(`unknown session result tag ${String(tag)}`);
  }
}
