/**
 * Client sessions for exactly-once writes (Raft thesis §6.3): the first result of every
 * `(clientId, seq)` is kept for a while, so a retried write returns it instead of applying
 * again. Deterministic: a function of the applied commands only, so every replica keeps,
 * forgets and refuses the same sessions at the same index, and two replicas fed the same
 * log write the same snapshot bytes.
 *
 * Time here is *log time*: the largest `proposedAtMs` applied so far, stamped by leaders
 * (`log-clock.ts`: it never runs backwards and advances with real time, not with any one
 * node's wall clock). No replica reads its own clock on apply.
 *
 * Memory is bounded: at most {@link MAX_SESSIONS_PER_SHARD} sessions and
 * {@link MAX_RESULTS_PER_SHARD} remembered results per shard, both in snapshots.
 *
 * ## What the table can vouch for
 *
 * Within a session it knows exactly:
 * - a seq in `results` applied, with that result: a retry gets it, if the retry is the same
 *   write (its fingerprint matches; otherwise `session-mismatch`);
 * - a seq above `forgottenMaxSeq` and not in `results` never applied: a result leaves
 *   `results` only by being forgotten, which raises `forgottenMaxSeq` to at least its seq;
 * - a seq at or below `forgottenMaxSeq` and not in `results` may have applied (its result
 *   was forgotten) or not (a seq overtaken by later ones): it is refused as
 *   `session-expired`, which the service reports as *outcome unknown*, never as "not
 *   applied".
 *
 * A client without a session is the hard case. Client ids are chosen by clients, so once
 * the table forgets a whole session, that client looks exactly like a new one — and no
 * bounded structure can tell every forgotten id from every new one (keeping one watermark
 * per forgotten client is unbounded again). So the table rests on one assumption, and
 * forgets a session only where the assumption covers it:
 *
 * > A client retries a seq only within the call that issued it, and a call lasts less
 * > than {@link SESSION_RETRY_HORIZON_MS}. (`KVClient` ends every write call within
 * > `MAX_WRITE_CALL_MS`, 60 s, whatever its deadline.)
 *
 * A session is forgotten — expired after {@link SESSION_IDLE_MS}, or evicted for room —
 * only once its client's last command is at least the horizon old in log time. Log time
 * advances at most ~2% faster than real time (`log-clock.ts`), and an entry's place in the
 * log follows only entries proposed before it, so every retry proposed during the call is
 * applied before log time reaches `lastActiveMs + horizon`: it finds the session. A write
 * from a client without a session is therefore not a retry of anything that applied; it is
 * applied as new, or — when the table is full and even the session idle longest is younger
 * than the horizon — refused as `sessions-full`: truly not applied, retry later.
 *
 * Results are forgotten oldest first (apply order): after {@link RESULT_RETENTION_MS}, or
 * sooner when more than {@link MAX_RESULTS_PER_SHARD} are held. Sessions are forgotten
 * oldest idle first (last command in apply order, so by log time). Since
 * RESULT_RETENTION_MS ≤ SESSION_RETRY_HORIZON_MS, a session holds no results by the time it
 * may be forgotten.
 * @internal
 */
import { type BinaryReader, type BinaryWriter, CodecError } from './binary-codec.js';
import { type CommandFingerprint, CommandOp, describeMismatch, TxnOpKind } from './kv-command.js';
import { plainResult, ResultRing, ResultTag } from './result-ring.js';

/**
 * How long (log time) after it applied a write's result is kept for retries. Default
 * 2 min: 24 times the client's default deadline, and as long as the retry horizon, so any
 * retry of a `KVClient` call finds it unless {@link MAX_RESULTS_PER_SHARD} pushed it out
 * first. Longer costs memory and snapshot bytes only when writes are rare enough not to
 * hit that bound; it must not exceed {@link SESSION_RETRY_HORIZON_MS}.
 */
export const RESULT_RETENTION_MS = 120_000;

/**
 * The retry horizon: no session is forgotten (expired or evicted) less than this long (log
 * time) after its client's last command. Default 2 min, twice the longest `KVClient` write
 * call (60 s). Exactly-once rests on it (see the file comment). Longer lets slower retries
 * find their session, but when {@link MAX_SESSIONS_PER_SHARD} clients were all active
 * within it, a new client is refused until one is older: at the defaults, a shard takes in
 * about 34 new clients a second for ever, and bursts up to the bound.
 */
export const SESSION_RETRY_HORIZON_MS = 120_000;

/**
 * How long (log time) a session may stay idle before it is dropped even when the table
 * has room. Default 10 min: keeps a quiet client's session (a few dozen bytes) well past the
 * horizon at no risk. Shorter makes snapshots of shards with many one-shot clients (every
 * CLI call is one) smaller sooner; the bound caps them either way.
 */
export const SESSION_IDLE_MS = 600_000;

/**
 * Most client sessions one shard keeps (each about 60 bytes in a snapshot, plus its
 * results). Default 4096: at most ~250 KB of sessions per shard snapshot. When a new client
 * writes to a full table, the session idle longest is evicted if it is past the retry
 * horizon; otherwise the write is refused (UNAVAILABLE: not applied, retry). Larger admits
 * more clients per horizon (bursts of one-shot clients) at the cost of memory and snapshot
 * size on every replica.
 */
export const MAX_SESSIONS_PER_SHARD = 4096;

/**
 * Most write results one shard keeps for retries (about 46 bytes each in a snapshot).
 * Default 16,384: at most ~750 KB per shard snapshot; at 1,000 session writes a second on
 * one shard, results last 16 s instead of {@link RESULT_RETENTION_MS}. A retry of a result
 * pushed out is refused as outcome unknown (never applied again). Larger keeps results
 * longer under load at the cost of memory and snapshot size.
 */
export const MAX_RESULTS_PER_SHARD = 16_384;

/** The outcome of one applied write, as remembered for retries. */
export type AppliedResult =
  | { kind: 'put'; version: number }
  | { kind: 'delete'; existed: boolean }
  | { kind: 'cas'; ok: true; version: number }
  | { kind: 'cas'; ok: false; currentVersion: number }
  | { kind: 'txn'; succeeded: boolean; results: TxnOpResult[] }
  /** A leader's expire entry (never from a client, never remembered). */
  | { kind: 'expire' };

/**
 * One operation's outcome in a transaction. A get's value is not remembered for retries
 * (only its version: 0 when absent): a retry answered from the table reads it again, and
 * is answered only if the key still has that version (`KvStateMachine`).
 */
export type TxnOpResult =
  | { kind: 'put'; version: number }
  | { kind: 'delete'; existed: boolean }
  | { kind: 'get'; version: number; value: Buffer | undefined };

/** Why a write with a session was refused; none of them applied it now. */
export type SessionRefusal =
  /** The table no longer remembers this seq: an earlier attempt may have applied. Outcome unknown. */
  | { kind: 'session-expired'; seq: number }
  /** This seq applied as another write (`mismatch` says what differs); the retry is a client bug. */
  | { kind: 'session-mismatch'; seq: number; mismatch: string }
  /** A new client, and every session is younger than the retry horizon: not applied, retry later. */
  | { kind: 'sessions-full'; limit: number }
  /** A retried transaction that applied, but a key it read was written since: its reads cannot be given again. */
  | { kind: 'txn-reads-gone'; seq: number };

/** What a write with a session came to: applied (or answered from the table), or refused. */
export type WriteResult = AppliedResult | SessionRefusal;

/** One client's session on this shard. */
export interface ClientSession {
  readonly clientId: string;
  /** Log time of the client's last command (applied, answered or refused). */
  lastActiveMs: number;
  /** Every seq at or below may have applied and been forgotten; 0 when none. */
  forgottenMaxSeq: number;
  /** Its remembered results: seq → position in the table's {@link ResultRing}. */
  readonly results: Map<number, number>;
}

/** A write {@link SessionTable.admit} let apply: hand it back to {@link SessionTable.record} with its result. */
export interface AdmittedWrite {
  kind: 'apply';
  session: ClientSession;
  seq: number;
  fingerprint: CommandFingerprint;
}

/** What {@link SessionTable.admit} decided. */
export type Admission = AdmittedWrite | { kind: 'answer'; result: WriteResult };

/** All sessions of one shard. */
export class SessionTable {
  /** By last activity, least recent first (every touch moves a session to the end). */
  private readonly sessions = new Map<string, ClientSession>();
  /** Remembered results in apply order, oldest first. */
  private readonly results = new ResultRing<ClientSession>();
  /** The session last in {@link sessions}, if known: touching it again moves nothing. */
  private mostRecent: ClientSession | undefined;

  /** Number of client sessions. */
  get size(): number {
    return this.sessions.size;
  }

  /** Number of remembered results. */
  get resultCount(): number {
    return this.results.size;
  }

  /**
   * Decides what a write of `(clientId, seq)` does at log time `nowMs`: apply it (the
   * caller then {@link record}s its result), or answer at once with the remembered result
   * or a refusal. Counts as the client's activity.
   */
  admit(clientId: string, seq: number, fingerprint: CommandFingerprint, nowMs: number): Admission {
    this.expire(nowMs);
    let session = this.sessions.get(clientId);
    if (session === undefined) {
      session = this.open(clientId, nowMs);
      if (session === undefined) return { kind: 'answer', result: { kind: 'sessions-full', limit: MAX_SESSIONS_PER_SHARD } };
      return { kind: 'apply', session, seq, fingerprint };
    }
    this.touch(session, nowMs);
    const position = session.results.get(seq);
    if (position !== undefined) {
      const recorded = this.results.fingerprintAt(position);
      const mismatch = recorded === undefined ? undefined : describeMismatch(recorded, fingerprint);
      return { kind: 'answer', result: mismatch === undefined ? this.results.resultAt(position) : { kind: 'session-mismatch', seq, mismatch } };
    }
    if (seq <= session.forgottenMaxSeq) return { kind: 'answer', result: { kind: 'session-expired', seq } };
    return { kind: 'apply', session, seq, fingerprint };
  }

  /** Remembers the result of a write {@link admit} let apply, at log time `nowMs`. */
  record(write: AdmittedWrite, result: AppliedResult, nowMs: number): void {
    const { session, seq, fingerprint } = write;
    session.results.set(seq, this.results.push(session, seq, nowMs, fingerprint, result));
    while (this.resultCount > MAX_RESULTS_PER_SHARD) this.forgetOldestResult();
  }

  /** Forgets results past retention and sessions idle past {@link SESSION_IDLE_MS} at log time `nowMs`. */
  expire(nowMs: number): void {
    const results = this.results;
    while (results.size > 0 && nowMs - results.appliedAtMs(results.headPosition) >= RESULT_RETENTION_MS) this.forgetOldestResult();
    for (let idlest = this.idlestSession(); idlest !== undefined && nowMs - idlest.lastActiveMs >= SESSION_IDLE_MS; idlest = this.idlestSession()) {
      this.forgetSession(idlest);
    }
  }

  /**
   * A session for a client the table does not know, evicting the session idle longest when
   * the table is full and that one is past the retry horizon; undefined when it is not.
   */
  private open(clientId: string, nowMs: number): ClientSession | undefined {
    while (this.sessions.size >= MAX_SESSIONS_PER_SHARD) {
      const idlest = this.idlestSession();
      if (idlest === undefined || nowMs - idlest.lastActiveMs < SESSION_RETRY_HORIZON_MS) return undefined;
      this.forgetSession(idlest);
    }
    const session: ClientSession = { clientId, lastActiveMs: nowMs, forgottenMaxSeq: 0, results: new Map() };
    this.sessions.set(clientId, session);
    this.mostRecent = session;
    return session;
  }

  private touch(session: ClientSession, nowMs: number): void {
    session.lastActiveMs = nowMs;
    if (session === this.mostRecent) return; // already last in the map
    this.sessions.delete(session.clientId);
    this.sessions.set(session.clientId, session);
    this.mostRecent = session;
  }

  private idlestSession(): ClientSession | undefined {
    return this.sessions.values().next().value;
  }

  /**
   * Drops a session past the retry horizon. Its results are gone already: each is younger
   * than the session's last command, and RESULT_RETENTION_MS ≤ SESSION_RETRY_HORIZON_MS.
   */
  private forgetSession(session: ClientSession): void {
    if (session.results.size > 0) {
      throw new Error(`session table: forgetting a session that still holds ${session.results.size} results`);
    }
    this.sessions.delete(session.clientId);
    if (session === this.mostRecent) this.mostRecent = undefined;
  }

  private forgetOldestResult(): void {
    const results = this.results;
    if (results.size === 0) return;
    const session = results.sessionAt(results.headPosition);
    const seq = results.seqAt(results.headPosition);
    results.dropOldest();
    session.results.delete(seq);
    if (seq > session.forgottenMaxSeq) session.forgottenMaxSeq = seq;
  }

  /**
   * Appends the table to a snapshot (KV snapshot format 2):
   * ```
   * u32 sessionCount, then per session, least recently active first:
   *     bytes8 clientId · u64 lastActiveMs · u64 forgottenMaxSeq
   * u32 resultCount, then per result, oldest first:
   *     u32 session (its place in the list above) · u64 seq · u64 appliedAtMs
   *     · u8 op (0: none, from a format-1 snapshot) · u32 keyHash · u32 valueHash · u64 expectedVersion
   *     · u8 result tag · u64 result value
   * ```
   */
  encode(writer: BinaryWriter): void {
    const places = new Map<ClientSession, number>();
    writer.u32(this.sessions.size);
    for (const session of this.sessions.values()) {
      places.set(session, places.size);
      writer.bytes8(Buffer.from(session.clientId, 'utf8')).u64(session.lastActiveMs).u64(session.forgottenMaxSeq);
    }
    const results = this.results;
    writer.u32(results.size);
    for (let position = results.headPosition; position < results.endPosition; position++) {
      writer.u32(places.get(results.sessionAt(position)) ?? 0).u64(results.seqAt(position)).u64(results.appliedAtMs(position));
      const [op, keyHash, valueHash, expectedVersion] = results.fingerprintFields(position);
      writer.u8(op).u32(keyHash).u32(valueHash).u64(expectedVersion);
      encodeResult(writer, results.resultAt(position));
    }
  }

  /** Reads a table written by {@link encode}. */
  static decode(reader: BinaryReader): SessionTable {
    const table = new SessionTable();
    const sessionCount = reader.u32();
    const places: ClientSession[] = [];
    for (let i = 0; i < sessionCount; i++) {
      const clientId = reader.bytes8().toString('utf8');
      const session: ClientSession = { clientId, lastActiveMs: reader.u64(), forgottenMaxSeq: reader.u64(), results: new Map() };
      table.sessions.set(clientId, session);
      places.push(session);
    }
    const resultCount = reader.u32();
    for (let i = 0; i < resultCount; i++) {
      const place = reader.u32();
      const session = places[place];
      if (session === undefined) throw new CodecError(`session result refers to session ${place} of ${sessionCount}`);
      const seq = reader.u64();
      const appliedAtMs = reader.u64();
      const op = reader.u8() as CommandOp | 0;
      const keyHash = reader.u32();
      const valueHash = reader.u32();
      const expectedVersion = reader.u64();
      let fingerprint: CommandFingerprint | undefined;
      switch (op) {
        case 0:
          break;
        case CommandOp.Put:
        case CommandOp.Delete:
        case CommandOp.Cas:
        case CommandOp.Txn:
          fingerprint = { op, keyHash, valueHash, expectedVersion };
          break;
        default:
          throw new CodecError(`unknown command op ${String(op)} in a session fingerprint`);
      }
      session.results.set(seq, table.results.push(session, seq, appliedAtMs, fingerprint, decodeResult(reader)));
    }
    return table;
  }

  /**
   * Reads the table of a format-1 snapshot (before bounds and fingerprints): sessions by
   * client with their results, plus a sweep time this version no longer needs. Sessions
   * are put in order of last activity and results in order of application (stable, so
   * every replica reading the same bytes builds the same table); results carry no
   * fingerprint, so their retries are answered without one, as format 1 did. Results past
   * {@link MAX_RESULTS_PER_SHARD} are forgotten at once; sessions past
   * {@link MAX_SESSIONS_PER_SHARD} are evicted as new clients need room.
   */
  static decodeFormat1(reader: BinaryReader): SessionTable {
    reader.u64(); // the format-1 sweep time
    const count = reader.u32();
    const sessions: ClientSession[] = [];
    const results: { session: ClientSession; seq: number; appliedAtMs: number; result: AppliedResult }[] = [];
    for (let i = 0; i < count; i++) {
      const clientId = reader.bytes8().toString('utf8');
      const session: ClientSession = { clientId, lastActiveMs: reader.u64(), forgottenMaxSeq: reader.u64(), results: new Map() };
      sessions.push(session);
      const resultCount = reader.u32();
      for (let j = 0; j < resultCount; j++) {
        const seq = reader.u64();
        const appliedAtMs = reader.u64();
        const tag = reader.u8();
        if (tag === FORMAT_1_SESSION_EXPIRED) {
          // Never written in practice; it meant "this seq may have applied".
          reader.u64();
          session.forgottenMaxSeq = Math.max(session.forgottenMaxSeq, seq);
          continue;
        }
        results.push({ session, seq, appliedAtMs, result: decodeTaggedResult(tag, reader) });
      }
    }
    const table = new SessionTable();
    sessions.sort((a, b) => a.lastActiveMs - b.lastActiveMs); // Array.prototype.sort is stable
    for (const session of sessions) table.sessions.set(session.clientId, session);
    results.sort((a, b) => a.appliedAtMs - b.appliedAtMs);
    for (const { session, seq, appliedAtMs, result } of results) {
      session.results.set(seq, table.results.push(session, seq, appliedAtMs, undefined, result));
    }
    while (table.resultCount > MAX_RESULTS_PER_SHARD) table.forgetOldestResult();
    return table;
  }
}

/** Format 1's tag for a remembered "session expired" (never recorded by it, but decodable). */
const FORMAT_1_SESSION_EXPIRED = 5;

function encodeResult(writer: BinaryWriter, result: AppliedResult): void {
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
    case 'expire':
      throw new Error('session table: an expire entry has no session');
    case 'txn':
      writer.u8(ResultTag.Txn).u64(result.succeeded ? 1 : 0).u8(result.results.length);
      for (const op of result.results) {
        if (op.kind === 'put') writer.u8(TxnOpKind.Put).u64(op.version);
        else if (op.kind === 'delete') writer.u8(TxnOpKind.Delete).u64(op.existed ? 1 : 0);
        else writer.u8(TxnOpKind.Get).u64(op.version);
      }
      return;
  }
}

function decodeTxnResults(reader: BinaryReader): TxnOpResult[] {
  const results: TxnOpResult[] = [];
  const count = reader.u8();
  for (let i = 0; i < count; i++) {
    const kind = reader.u8() as TxnOpKind;
    const value = reader.u64();
    switch (kind) {
      case TxnOpKind.Put:
        results.push({ kind: 'put', version: value });
        break;
      case TxnOpKind.Delete:
        results.push({ kind: 'delete', existed: value === 1 });
        break;
      case TxnOpKind.Get:
        results.push({ kind: 'get', version: value, value: undefined });
        break;
      default:
        throw new CodecError(`unknown transaction result kind ${String(kind)}`);
    }
  }
  return results;
}

function decodeResult(reader: BinaryReader): AppliedResult {
  return decodeTaggedResult(reader.u8(), reader);
}

function decodeTaggedResult(tag: number, reader: BinaryReader): AppliedResult {
  const value = reader.u64();
  switch (tag as ResultTag) {
    case ResultTag.Put:
    case ResultTag.Delete:
    case ResultTag.CasOk:
    case ResultTag.CasConflict:
      return plainResult(tag, value);
    case ResultTag.Txn:
      return { kind: 'txn', succeeded: value === 1, results: decodeTxnResults(reader) };
    default:
      throw new CodecError(`unknown session result tag ${String(tag)}`);
  }
}
