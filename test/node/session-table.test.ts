import { expect } from 'chai';
import fc from 'fast-check';
import { CommandOp, encodeCommand, type WriteRequest } from '../../src/node/kv-command.js';
import { KvStateMachine, keyString, type WriteResult } from '../../src/node/kv-state-machine.js';
import {
  MAX_RESULTS_PER_SHARD,
  MAX_SESSIONS_PER_SHARD,
  RESULT_RETENTION_MS,
  SESSION_IDLE_MS,
  SESSION_RETRY_HORIZON_MS,
} from '../../src/node/session-table.js';
import { MAX_WRITE_CALL_MS } from '../../src/client/kv-client.js';
import { ErrorCode } from '../../src/gen/kvstore/v1/kvstore.js';
import { refusalError } from '../../src/node/kv-service.js';
import { LOG_CLOCK_SLEW } from '../../src/node/log-clock.js';
import { SeededRandom } from '../../src/raft/index.js';

const T0 = 1_700_000_000_000;
const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

/** One committed command: what it asks, stamped at `atMs`. */
interface LoggedCommand {
  request: WriteRequest;
  atMs: number;
}

function put(clientId: string, seq: number, key = 'k', value = `${clientId}.${seq}`): WriteRequest {
  return { op: CommandOp.Put, key: bytes(key), value: bytes(value), session: { clientId, seq } };
}

function machine(): KvStateMachine {
  return KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]);
}

function apply(target: KvStateMachine, command: LoggedCommand): WriteResult {
  return target.applyCommand(target.appliedIndex + 1, encodeCommand(command.request, command.atMs));
}

/** Opens `count` sessions, one put each, at T0 + i ms. */
function fill(target: KvStateMachine, count: number): void {
  for (let i = 0; i < count; i++) apply(target, { request: put(`c${i}`, 1), atMs: T0 + i });
}

describe('node/session-table', () => {
  it('keeps its retention and horizon consistent with the client\'s longest write call', () => {
    // A session holds no results by the time it may be forgotten.
    expect(RESULT_RETENTION_MS).to.be.at.most(SESSION_RETRY_HORIZON_MS);
    expect(SESSION_IDLE_MS).to.be.at.least(SESSION_RETRY_HORIZON_MS);
    // A KVClient write call, measured in log time (which runs at most LOG_CLOCK_SLEW plus a
    // few percent of clock drift faster than real time), ends well inside the horizon.
    expect(MAX_WRITE_CALL_MS * (1 + LOG_CLOCK_SLEW) * 1.05).to.be.below(SESSION_RETRY_HORIZON_MS / 1.5);
  });

  it('refuses a new client while every session is within the retry horizon, without applying it', () => {
    const kv = machine();
    fill(kv, MAX_SESSIONS_PER_SHARD);
    expect(kv.sessionCount).to.equal(MAX_SESSIONS_PER_SHARD);
    const atMs = T0 + SESSION_RETRY_HORIZON_MS - 1; // c0, idle longest, is 1 ms short of the horizon
    expect(apply(kv, { request: put('new', 1, 'fresh'), atMs })).to.deep.equal({ kind: 'sessions-full', limit: MAX_SESSIONS_PER_SHARD });
    expect(kv.get(keyString(bytes('fresh')))).to.equal(undefined);
    expect(kv.sessionCount).to.equal(MAX_SESSIONS_PER_SHARD);
    // Known clients are unaffected.
    expect(apply(kv, { request: put('c5', 2), atMs })).to.include({ kind: 'put' });
  });

  it('tells the client which refusals did not apply: only sessions-full says so; an expired seq is outcome unknown', () => {
    const full = refusalError(3, { kind: 'sessions-full', limit: MAX_SESSIONS_PER_SHARD });
    expect(full.code).to.equal(ErrorCode.ERROR_CODE_UNAVAILABLE);
    expect(full.message).to.match(/shard 3 holds 4096 client sessions.*not applied, retry later/);
    const expired = refusalError(3, { kind: 'session-expired', seq: 9 });
    expect(expired.code).to.equal(ErrorCode.ERROR_CODE_TIMEOUT);
    expect(expired.message).to.match(/seq 9.*outcome is unknown/);
    const mismatch = refusalError(3, { kind: 'session-mismatch', seq: 9, mismatch: 'it wrote another key' });
    expect(mismatch.code).to.equal(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(mismatch.message).to.match(/seq 9 .*another key/);
  });

  it('evicts the session idle longest once it is past the horizon, never a younger one', () => {
    const kv = machine();
    fill(kv, MAX_SESSIONS_PER_SHARD);
    // c0 writes again: now c1 is the one idle longest.
    apply(kv, { request: put('c0', 2), atMs: T0 + MAX_SESSIONS_PER_SHARD });
    const atMs = T0 + 1 + SESSION_RETRY_HORIZON_MS; // c1 exactly at the horizon, c2 1 ms short
    expect(apply(kv, { request: put('new1', 1), atMs })).to.include({ kind: 'put' });
    expect(kv.sessionCount).to.equal(MAX_SESSIONS_PER_SHARD);
    expect(apply(kv, { request: put('new2', 1), atMs })).to.deep.equal({ kind: 'sessions-full', limit: MAX_SESSIONS_PER_SHARD });
    // c0 (active later) and c2 kept their sessions and results: their retries are answered, not applied again.
    expect(apply(kv, { request: put('c0', 2), atMs })).to.deep.equal({ kind: 'put', version: MAX_SESSIONS_PER_SHARD + 1 });
    expect(apply(kv, { request: put('c2', 1), atMs })).to.deep.equal({ kind: 'put', version: 3 });
    expect(kv.get(keyString(bytes('k')))?.version).to.equal(MAX_SESSIONS_PER_SHARD + 2); // new1's put
  });

  it('forgets results oldest first past MAX_RESULTS_PER_SHARD; their retries are refused as outcome unknown, never applied again', () => {
    const kv = machine();
    for (let seq = 1; seq <= MAX_RESULTS_PER_SHARD + 10; seq++) apply(kv, { request: put('busy', seq, `k${seq % 7}`), atMs: T0 + seq });
    expect(kv.sessionResultCount).to.equal(MAX_RESULTS_PER_SHARD);
    const atMs = T0 + MAX_RESULTS_PER_SHARD + 20;
    expect(apply(kv, { request: put('busy', 10, `k${10 % 7}`), atMs })).to.deep.equal({ kind: 'session-expired', seq: 10 });
    expect(apply(kv, { request: put('busy', 11, `k${11 % 7}`), atMs })).to.deep.equal({ kind: 'put', version: 11 });
    expect(kv.get(keyString(bytes('k3')))?.version).to.equal(MAX_RESULTS_PER_SHARD + 10 - ((MAX_RESULTS_PER_SHARD + 10 - 3) % 7));
  });

  it('is a function of the log: replicas fed the same log, restored from snapshots anywhere, agree byte for byte; bounds hold; no retry applies twice within the horizon (property)', function () {
    this.timeout(120_000);
    const seed = Number(process.env['SEED'] ?? Date.now());
    console.log(`      session log property seed ${seed} (SEED=${seed} replays)`);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0x7fffffff }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }),
        (logSeed, cutA, cutB) => {
          const log = sessionLog(new SeededRandom(logSeed), 10_000);
          const whole = machine();
          const reference = new SessionReference();
          const results: WriteResult[] = [];
          for (const command of log) {
            const sessionsBefore = whole.sessionCount;
            const result = apply(whole, command);
            results.push(result);
            expect(whole.sessionCount).to.be.at.most(MAX_SESSIONS_PER_SHARD);
            expect(whole.sessionResultCount).to.be.at.most(MAX_RESULTS_PER_SHARD);
            reference.check(command, result, sessionsBefore, whole);
          }
          expect(reference.seen.has('sessions-full') && reference.seen.has('evicted'), `log ${logSeed} reaches the bound and evicts`).to.equal(true);
          // Two more replicas, each restored from its own snapshot at a random point.
          const cuts = [Math.floor(cutA * log.length), Math.floor(cutB * log.length)].sort((a, b) => a - b);
          let replica = machine();
          log.forEach((command, i) => {
            if (cuts.includes(i)) replica = KvStateMachine.fromSnapshot(replica.encodeSnapshot());
            expect(apply(replica, command)).to.deep.equal(results[i]);
          });
          expect(Buffer.compare(replica.encodeSnapshot(), whole.encodeSnapshot())).to.equal(0);
        }),
      { seed, numRuns: 6, verbose: true },
    );
  });
});

/**
 * A committed log under pressure: thousands of one-shot clients (every CLI call is one) and
 * a few busy ones, retries (some of writes the table refused), retries that are another
 * write, and writes without a session. In the first part the one-shot clients fill the
 * table within the horizon (new ones are refused); then log time passes the horizon, and
 * from there new clients evict the sessions idle longest, with pauses that expire results.
 */
function sessionLog(random: SeededRandom, length: number): LoggedCommand[] {
  const log: LoggedCommand[] = [];
  const issued: WriteRequest[] = [];
  const seqs = new Map<string, number>();
  const pastHorizonAt = Math.floor(length * 0.55);
  let nowMs = T0;
  let nextClient = 0;
  const earlier = (): WriteRequest => issued[issued.length - 1 - random.nextInt(Math.min(issued.length, 400))] as WriteRequest;
  for (let i = 0; i < length; i++) {
    nowMs += random.nextInt(4);
    if (i === pastHorizonAt) nowMs += SESSION_RETRY_HORIZON_MS + random.nextInt(SESSION_RETRY_HORIZON_MS / 2);
    else if (i > pastHorizonAt && random.nextInt(1000) < 2) nowMs += SESSION_RETRY_HORIZON_MS / 4 + random.nextInt((SESSION_RETRY_HORIZON_MS * 3) / 4);
    const kind = random.nextInt(100);
    const oneShot = i < pastHorizonAt ? 20 : 50;
    let request: WriteRequest;
    if (kind < 8 && issued.length > 0) {
      request = earlier(); // a retry
    } else if (kind < 10 && issued.length > 0) {
      request = { ...earlier(), op: CommandOp.Put, value: bytes('changed') }; // a retry that is another write
    } else if (kind < 12) {
      request = { op: CommandOp.Put, key: bytes(`k${random.nextInt(5)}`), value: bytes('anonymous') };
    } else {
      const clientId = kind < oneShot ? `busy${random.nextInt(8)}` : `c${nextClient++}`;
      const seq = (seqs.get(clientId) ?? 0) + 1 + random.nextInt(2);
      seqs.set(clientId, seq);
      const key = bytes(`k${random.nextInt(5)}`);
      const op = random.nextInt(10);
      const session = { clientId, seq };
      request = op < 7 ? { op: CommandOp.Put, key, value: bytes(`${clientId}.${seq}`), session }
        : op < 8 ? { op: CommandOp.Delete, key, session }
        : { op: CommandOp.Cas, key, expectedVersion: random.nextInt(3), value: bytes(`${clientId}.${seq}`), session };
      issued.push(request);
    }
    log.push({ request, atMs: nowMs });
  }
  return log;
}

/**
 * What the table must guarantee, checked from outside: within the retry horizon of a
 * client's last command, a (client, seq) that applied is never applied again and a retry
 * of it gets its first result, a refusal as outcome unknown, or (another write) a mismatch;
 * "not applied" (`sessions-full`) only goes to clients that have no session it may need.
 */
class SessionReference {
  private readonly applied = new Map<string, { request: Buffer; result: WriteResult }>();
  private readonly lastActiveMs = new Map<string, number>();
  private readonly byClient = new Map<string, string[]>();
  private logTimeMs = 0;
  /** Result kinds seen, plus `evicted`: a new client got a session in a full table. */
  readonly seen = new Set<string>();

  check(command: LoggedCommand, result: WriteResult, sessionsBefore: number, machine: KvStateMachine): void {
    this.logTimeMs = Math.max(this.logTimeMs, command.atMs);
    const session = 'session' in command.request ? command.request.session : undefined;
    if (session === undefined) return;
    const { clientId, seq } = session;
    const last = this.lastActiveMs.get(clientId);
    if (last === undefined || this.logTimeMs - last >= SESSION_RETRY_HORIZON_MS) {
      // Past the horizon the table may have forgotten this client: its old seqs are no longer covered.
      for (const key of this.byClient.get(clientId) ?? []) this.applied.delete(key);
      this.byClient.delete(clientId);
    }
    const key = `${clientId}/${seq}`;
    const recorded = this.applied.get(key);
    const encoded = encodeCommand(command.request, 0);
    this.seen.add(result.kind);
    switch (result.kind) {
      case 'sessions-full':
        expect(last === undefined || this.logTimeMs - last >= SESSION_RETRY_HORIZON_MS, `${key}: "not applied" to a client whose session may still be needed`).to.equal(true);
        expect(machine.sessionCount).to.equal(MAX_SESSIONS_PER_SHARD);
        return;
      case 'session-mismatch':
        // (A seq past the horizon may still be remembered: only a retry that is the same write is wrong here.)
        if (recorded !== undefined) expect(Buffer.compare(encoded, recorded.request), `${key}: mismatch for the same write`).to.not.equal(0);
        break;
      case 'session-expired':
        break;
      default:
        if (recorded === undefined) {
          this.applied.set(key, { request: encoded, result });
          this.byClient.set(clientId, [...(this.byClient.get(clientId) ?? []), key]);
        } else {
          expect(Buffer.compare(encoded, recorded.request), `${key}: another write answered as the retry`).to.equal(0);
          expect(result, `${key}: a retry within the horizon applied again`).to.deep.equal(recorded.result);
        }
    }
    if (last === undefined && sessionsBefore === MAX_SESSIONS_PER_SHARD) this.seen.add('evicted');
    this.lastActiveMs.set(clientId, this.logTimeMs);
  }
}
