/**
 * KVClient: the public client of kvstore (DESIGN.md §6). It validates limits before sending, routes
 * each key to its shard leader, multiplexes concurrent calls on one Batch stream per node, retries
 * within a deadline, and makes retried writes exactly-once with a (clientId, seq) session.
 */
import { createPrivateKey, randomUUID, X509Certificate } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { loadHasher } from '../common/index.js';
import { ErrorCode, type Session } from '../gen/kvstore/v1/kvstore.js';
import { backoffDelayMs, CallDeadline, sleep, type BackoffPolicy } from './deadline.js';
import { KVError } from './errors.js';
import { SILENT_LOGGER, type ClientLogger } from './logger.js';
import { ChannelSecurity, type ClientTls } from '../security/channel-security.js';
import { tokenProblem } from '../security/token-file.js';
import { ManagerConnection, ManagerUnreachableError } from './manager-connection.js';
import { DEFAULT_ROUTER_OPTIONS, Router, type AttemptOutcome } from './router.js';
import { ShardMapCache } from './shard-map.js';
import { keyToBytes, ttlOf, valueToBytes } from './input.js';
import { txnRequestOf, txnResultOf, type KVTxn, type KVTxnResult } from './txn.js';

/** Construction options of {@link KVClient}. */
export interface KVClientOptions {
  /** The manager's `host:port`; the client asks it for the shard map at init and when routing fails. */
  manager: string;
  /**
   * Default deadline of each call in ms (default 5000). A call retries inside it, then fails with TIMEOUT.
   * A write call ends within {@link MAX_WRITE_CALL_MS} whatever its deadline.
   */
  timeoutMs?: number;
  /**
   * Most retries of one call after its first attempt (default: unbounded, only the deadline limits).
   * When exhausted the call fails with UNAVAILABLE.
   */
  maxRetries?: number;
  /** Where routing events go (debug level); silent by default. Never receives keys or values. */
  logger?: ClientLogger;
  /**
   * TLS to the manager and the nodes: the cluster CA (PEM) to trust, and a client certificate and
   * key signed by it to authenticate with (or authenticate with `token`). Without it the client
   * speaks plaintext.
   */
  tls?: ClientTls;
  /** A bearer token from the cluster's `--auth-token-file`, sent with every call. */
  token?: string;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborting it fails the call with TIMEOUT (retryable: false; for a write the outcome is unknown). */
  signal?: AbortSignal;
  /** This call's deadline in ms, instead of the client's `timeoutMs` (for a write, at most {@link MAX_WRITE_CALL_MS}). */
  timeoutMs?: number;
}

/** Options of {@link KVClient.put}. */
export interface PutOptions extends CallOptions {
  /**
   * The key expires this many ms after the put applies (1 ms to 365 days); without it the key
   * never expires, and a put without it clears an earlier TTL. Measured in the shard's log
   * time (docs/ttl.md): a read at or after the expiry finds nothing, on any leader.
   */
  ttlMs?: number;
}

/** Options of {@link KVClient.update}. */
export interface UpdateOptions extends CallOptions {
  /** Most read–cas rounds before giving up with CONFLICT (default 100). The deadline covers all rounds. */
  maxAttempts?: number;
}

/** A value as the client accepts it: a string is stored as its UTF-8 bytes. */
export type KVValue = string | Uint8Array;

/** A stored value with its version (the Raft index of the key's last write). */
export interface KVEntry {
  /** The value decoded as UTF-8. */
  value: string;
  /** The value's exact bytes. */
  bytes: Uint8Array;
  /** Changes on every write of the key; pass it to {@link KVClient.cas}. */
  version: number;
  /** For a key with a TTL: when it expires, in the shard's log time (≈ ms since the epoch). */
  expiresAtMs?: number;
  /** For a key with a TTL: ms until it expires, by the leader's log clock when it answered. */
  expiresInMs?: number;
}

/** One key's outcome in {@link KVClient.getMany}: its entry (null when absent), or why it failed. */
export type KVGetManyResult = { key: string; ok: true; entry: KVEntry | null } | { key: string; ok: false; error: KVError };
/** One key's outcome in {@link KVClient.putMany}. */
export type KVPutManyResult = { key: string; ok: true } | { key: string; ok: false; error: KVError };
/** One key's outcome in {@link KVClient.deleteMany}: whether it existed, or why it failed. */
export type KVDeleteManyResult = { key: string; ok: true; existed: boolean } | { key: string; ok: false; error: KVError };

/** Most keys one getMany, putMany or deleteMany takes. */
export const MAX_MANY_KEYS = 1024;

/** The function {@link KVClient.update} applies: from the current value (null when absent) to the new one. */
export type UpdateFunction = (current: string | null) => KVValue | Promise<KVValue>;

const DEFAULT_TIMEOUT_MS = 5000;

/**
 * Longest a write call (put, delete, cas, update) runs, whatever `timeoutMs` asks: 60 s.
 * A node recognizes the retries of a write's (clientId, seq) only while its session is
 * kept, which is at least its retry horizon (2 min of log time) after the client's last
 * write on the shard; a write that is still unanswered here stops retrying well inside
 * that and fails with TIMEOUT, `outcomeUnknown` set. Reads keep the deadline asked for.
 */
export const MAX_WRITE_CALL_MS = 60_000;
const DEFAULT_UPDATE_ATTEMPTS = 100;
/** Backoff between update rounds that hit a conflict: short, jittered, so contenders spread out. */
const UPDATE_BACKOFF: BackoffPolicy = { baseDelayMs: 2, maxDelayMs: 100 };

const decoder = new TextDecoder();

/**
 * A client of one kvstore cluster. Create one per process and share it: it keeps one channel and one
 * Batch stream per node. Call {@link KVClient.finalize} when done; the process then exits by itself.
 */
export class KVClient {
  /** This client's session id: writes carry (clientId, seq) so retries apply once. */
  readonly clientId: string = randomUUID();
  private readonly timeoutMs: number;
  private readonly logger: ClientLogger;
  private readonly manager: ManagerConnection;
  private readonly map: ShardMapCache;
  private readonly router: Router;
  private nextSeq = 1;
  private closed = false;
  private initializing: Promise<void> | undefined;

  constructor(options: KVClientOptions) {
    if (typeof options.manager !== 'string' || options.manager === '') {
      throw new KVError('INVALID_ARGUMENT', 'KVClient needs { manager: "host:port" }');
    }
    this.timeoutMs = checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs');
    if (options.maxRetries !== undefined && !(Number.isInteger(options.maxRetries) && options.maxRetries >= 0)) {
      throw new KVError('INVALID_ARGUMENT', `maxRetries must be a non-negative integer, got ${String(options.maxRetries)}`);
    }
    this.logger = options.logger ?? SILENT_LOGGER;
    const security = clientChannelSecurity(options);
    this.manager = new ManagerConnection(options.manager, security);
    this.map = new ShardMapCache(this.manager);
    this.router = new Router(this.map, { ...DEFAULT_ROUTER_OPTIONS, maxRetries: options.maxRetries }, this.logger, security);
  }

  /**
   * Fetches the cluster map. Fails fast with UNAVAILABLE when the manager is unreachable. Calling it is
   * optional (the first operation initializes), but it surfaces a wrong address early.
   */
  async init(options: CallOptions = {}): Promise<void> {
    await this.run('init', false, options, (deadline) => this.ensureReady(deadline));
  }

  /**
   * Stores `value` under `key`; resolves once a majority of the shard's replicas committed it.
   * With `ttlMs` the key expires that long after the put applies.
   */
  async put(key: string, value: KVValue, options: PutOptions = {}): Promise<void> {
    const keyBytes = keyToBytes(key);
    const valueBytes = valueToBytes(value);
    const ttlMs = ttlOf(options.ttlMs);
    const session = this.newSession();
    await this.run('put', true, options, (deadline) =>
      this.router.execute(
        {
          name: 'put',
          key: keyBytes,
          isWrite: true,
          build: (epoch) => ({ $case: 'put', value: { key: keyBytes, value: valueBytes, session, epoch, ttlMs } }),
          interpret: (response): AttemptOutcome<void> => {
            if (response.$case !== 'put') return mismatched('put', response.$case);
            return response.value.error === undefined ? { ok: true, value: undefined } : { ok: false, error: response.value.error };
          },
        },
        deadline,
      ),
    );
  }

  /** The value as a string (UTF-8), or null when absent. Linearizable: served by the shard leader. */
  async get(key: string, options: CallOptions = {}): Promise<string | null> {
    const entry = await this.getEntry(key, options);
    return entry === null ? null : entry.value;
  }

  /** The value's exact bytes, or null when absent. */
  async getBytes(key: string, options: CallOptions = {}): Promise<Uint8Array | null> {
    const entry = await this.getEntry(key, options);
    return entry === null ? null : entry.bytes;
  }

  /** The value and its version, or null when absent; the version feeds {@link KVClient.cas}. */
  async getEntry(key: string, options: CallOptions = {}): Promise<KVEntry | null> {
    const keyBytes = keyToBytes(key);
    return this.run('get', false, options, (deadline) => this.readEntry(keyBytes, deadline));
  }

  /** Deletes `key`; resolves to whether it existed. */
  async delete(key: string, options: CallOptions = {}): Promise<boolean> {
    const keyBytes = keyToBytes(key);
    const session = this.newSession();
    return this.run('delete', true, options, (deadline) =>
      this.router.execute(
        {
          name: 'delete',
          key: keyBytes,
          isWrite: true,
          build: (epoch) => ({ $case: 'delete', value: { key: keyBytes, session, epoch } }),
          interpret: (response): AttemptOutcome<boolean> => {
            if (response.$case !== 'delete') return mismatched('delete', response.$case);
            const result = response.value;
            return result.error === undefined ? { ok: true, value: result.existed } : { ok: false, error: result.error };
          },
        },
        deadline,
      ),
    );
  }

  /**
   * Writes `value` only if the key's version is `expectedVersion` (0 = the key must not exist).
   * Resolves to the new version; rejects with CONFLICT (and `currentVersion`) otherwise.
   */
  async cas(key: string, expectedVersion: number, value: KVValue, options: CallOptions = {}): Promise<number> {
    const keyBytes = keyToBytes(key);
    const valueBytes = valueToBytes(value);
    checkVersion(expectedVersion);
    return this.run('cas', true, options, (deadline) => this.compareAndSet(keyBytes, expectedVersion, valueBytes, deadline));
  }

  /**
   * The safe read-modify-write: reads the key, applies `fn` to its value (null when absent), writes the
   * result back with compare-and-set, and on CONFLICT retries the whole round after a jittered backoff,
   * up to `maxAttempts` rounds within the deadline. Resolves to the value written. `fn` may run more
   * than once, so it should be free of side effects.
   */
  async update(key: string, fn: UpdateFunction, options: UpdateOptions = {}): Promise<KVValue> {
    const keyBytes = keyToBytes(key);
    if (typeof fn !== 'function') throw new KVError('INVALID_ARGUMENT', 'update needs a function');
    const maxAttempts = options.maxAttempts ?? DEFAULT_UPDATE_ATTEMPTS;
    if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1)) {
      throw new KVError('INVALID_ARGUMENT', `maxAttempts must be a positive integer, got ${String(maxAttempts)}`);
    }
    return this.run('update', true, options, async (deadline) => {
      for (let attempt = 0; ; attempt++) {
        const current = await this.readEntry(keyBytes, deadline);
        const next = await fn(current === null ? null : current.value);
        const nextBytes = valueToBytes(next);
        try {
          await this.compareAndSet(keyBytes, current === null ? 0 : current.version, nextBytes, deadline);
          return next;
        } catch (error) {
          if (!(error instanceof KVError) || error.code !== 'CONFLICT') throw error;
          if (attempt + 1 >= maxAttempts) {
            throw new KVError('CONFLICT', `update gave up after ${maxAttempts} conflicting attempts`, {
              retryable: true,
              ...(error.currentVersion === undefined ? {} : { currentVersion: error.currentVersion }),
              cause: error,
            });
          }
          await sleep(Math.min(backoffDelayMs(attempt, UPDATE_BACKOFF), deadline.remainingMs()), deadline.signal);
        }
      }
    });
  }

  /**
   * Runs a transaction on keys of one shard: if every compare holds, the `success` operations run,
   * else the `failure` ones, in order, as one Raft entry — atomic and linearizable, and exactly once
   * under the client's retries like every write. Resolves with whether the compares held and one
   * result per operation of the branch that ran (a failed compare is not an error). Keys of two
   * shards are refused with INVALID_ARGUMENT before sending: give them one hash tag (`{u42}cart`).
   */
  async txn(txn: KVTxn, options: CallOptions = {}): Promise<KVTxnResult> {
    return this.run('txn', true, options, (deadline) => {
      const plan = txnRequestOf(txn, this.map.shardCount);
      const session = this.newSession();
      return this.router.execute(
        {
          name: 'txn',
          key: plan.key,
          isWrite: true,
          build: (epoch) => ({ $case: 'txn', value: { ...plan.request, session, epoch } }),
          interpret: (response): AttemptOutcome<KVTxnResult> => {
            if (response.$case !== 'txn') return mismatched('txn', response.$case);
            const result = response.value;
            return result.error === undefined ? { ok: true, value: txnResultOf(plan, result) } : { ok: false, error: result.error };
          },
        },
        deadline,
      );
    });
  }

  /**
   * Reads several keys at once: the reads go out together, one Batch message per node, and each is
   * linearizable on its own (they are not one snapshot across keys). Resolves with one result per
   * key, in order, each its entry (null when absent) or its own error; rejects only when the input
   * is invalid (then nothing is sent).
   */
  async getMany(keys: readonly string[], options: CallOptions = {}): Promise<KVGetManyResult[]> {
    checkMany('getMany', keys);
    for (const key of keys) keyToBytes(key);
    return eachKey(keys, (key) => key, (key) => this.getEntry(key, options).then((entry) => ({ entry })));
  }

  /**
   * Writes several keys at once, one Batch message per node. Not atomic: each put commits (or fails)
   * on its own, exactly once under the client's retries like every put; use `txn` on keys of one
   * shard for all-or-nothing. A key may appear once. Resolves with one result per entry, in order;
   * rejects only when the input is invalid (then nothing is sent).
   */
  async putMany(entries: readonly (readonly [string, KVValue])[], options: CallOptions = {}): Promise<KVPutManyResult[]> {
    checkMany('putMany', entries);
    checkDistinct('putMany', entries.map((entry) => (Array.isArray(entry) ? entry[0] : undefined)));
    for (const entry of entries) {
      if (!Array.isArray(entry) || entry.length !== 2) throw new KVError('INVALID_ARGUMENT', 'putMany takes [key, value] pairs');
      keyToBytes(entry[0]);
      valueToBytes(entry[1]);
    }
    return eachKey(entries, ([key]) => key, ([key, value]) => this.put(key, value, options).then(() => ({})));
  }

  /**
   * Deletes several keys at once, one Batch message per node; not atomic, each exactly once. A key
   * may appear once. Resolves with one result per key, in order (whether it existed, or its error).
   */
  async deleteMany(keys: readonly string[], options: CallOptions = {}): Promise<KVDeleteManyResult[]> {
    checkMany('deleteMany', keys);
    checkDistinct('deleteMany', keys);
    for (const key of keys) keyToBytes(key);
    return eachKey(keys, (key) => key, (key) => this.delete(key, options).then((existed) => ({ existed })));
  }

  /**
   * Closes every channel and stream. Calls in flight and later calls reject with CLOSED. Idempotent;
   * afterwards the client holds no handles, so the process can exit by itself.
   */
  async finalize(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.router.close();
    this.manager.close();
    await this.map.settle();
    await this.initializing?.catch(() => undefined);
  }

  private newSession(): Session {
    return { clientId: this.clientId, seq: this.nextSeq++ };
  }

  /** Runs one public call under its deadline, mapping a passed deadline or closed client to its KVError. */
  private async run<T>(name: string, isWrite: boolean, options: CallOptions, body: (deadline: CallDeadline) => Promise<T>): Promise<T> {
    if (this.closed) throw new KVError('CLOSED', `${name}: the client was finalized`);
    const timeoutMs = options.timeoutMs === undefined ? this.timeoutMs : checkTimeout(options.timeoutMs, 'timeoutMs');
    const deadline = new CallDeadline(isWrite ? Math.min(timeoutMs, MAX_WRITE_CALL_MS) : timeoutMs, options.signal);
    try {
      if (name !== 'init' && !this.ready) await this.ensureReady(deadline);
      return await body(deadline);
    } catch (error) {
      if (this.closed && !(error instanceof KVError && error.code === 'INVALID_ARGUMENT')) {
        throw new KVError('CLOSED', `${name}: the client was finalized`, { cause: error });
      }
      if (error instanceof KVError) throw error;
      if (deadline.expired) throw deadline.timeoutError(name, isWrite, error);
      throw error;
    } finally {
      deadline.dispose();
    }
  }

  /** Loads the hash function and the shard map once; concurrent callers share the work. */
  /** True once the hash function and a shard map are loaded. */
  private get ready(): boolean {
    return this.map.loaded && this.map.shardCount > 0;
  }

  private async ensureReady(deadline: CallDeadline): Promise<void> {
    if (this.ready) return;
    this.initializing ??= this.initialize(deadline.timeoutMs).finally(() => {
      this.initializing = undefined;
    });
    const initializing = this.initializing;
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(deadline.timeoutError('init', false));
      deadline.signal.addEventListener('abort', onAbort, { once: true });
      void initializing.then(resolve, reject).finally(() => deadline.signal.removeEventListener('abort', onAbort));
    });
  }

  private async initialize(timeoutMs: number): Promise<void> {
    await loadHasher();
    const result = await this.map.refresh({ force: true, timeoutMs });
    if (!result.ok) {
      const reason = result.error instanceof Error ? result.error.message : String(result.error);
      const refused = result.error instanceof ManagerUnreachableError && result.error.grpcCode === GrpcStatus.UNAUTHENTICATED;
      throw new KVError(refused ? 'UNAUTHENTICATED' : 'UNAVAILABLE', reason, { cause: result.error });
    }
    if (this.map.shardCount <= 0) {
      throw new KVError('UNAVAILABLE', `manager ${this.manager.address} has no shard map yet`);
    }
    this.logger.debug('shard map loaded', { manager: this.manager.address, shards: this.map.shardCount });
  }

  private readEntry(keyBytes: Buffer, deadline: CallDeadline): Promise<KVEntry | null> {
    return this.router.execute(
      {
        name: 'get',
        key: keyBytes,
        isWrite: false,
        build: (epoch) => ({ $case: 'get', value: { key: keyBytes, epoch } }),
        interpret: (response): AttemptOutcome<KVEntry | null> => {
          if (response.$case !== 'get') return mismatched('get', response.$case);
          const result = response.value;
          if (result.error !== undefined) return { ok: false, error: result.error };
          if (!result.found) return { ok: true, value: null };
          const bytes = new Uint8Array(result.value);
          const entry: KVEntry = { value: decoder.decode(bytes), bytes, version: result.version };
          if (result.expiresAtMs > 0) {
            entry.expiresAtMs = result.expiresAtMs;
            entry.expiresInMs = result.expiresInMs;
          }
          return { ok: true, value: entry };
        },
      },
      deadline,
    );
  }

  private compareAndSet(keyBytes: Buffer, expectedVersion: number, valueBytes: Buffer, deadline: CallDeadline): Promise<number> {
    const session = this.newSession();
    return this.router.execute(
      {
        name: 'cas',
        key: keyBytes,
        isWrite: true,
        build: (epoch) => ({
          $case: 'cas',
          value: { key: keyBytes, expectedVersion, value: valueBytes, session, epoch },
        }),
        interpret: (response): AttemptOutcome<number> => {
          if (response.$case !== 'cas') return mismatched('cas', response.$case);
          const result = response.value;
          if (result.error === undefined) return { ok: true, value: result.version };
          if (result.error.code === ErrorCode.ERROR_CODE_CONFLICT) {
            const found = result.currentVersion === 0 ? 'the key is absent' : `its version is ${result.currentVersion}`;
            throw new KVError('CONFLICT', `cas expected version ${expectedVersion} but ${found}`, {
              currentVersion: result.currentVersion,
            });
          }
          return { ok: false, error: result.error };
        },
      },
      deadline,
    );
  }
}

/** A response of the wrong kind is a node bug; treat it like an unavailable replica. */
function mismatched(expected: string, got: string): AttemptOutcome<never> {
  return {
    ok: false,
    error: { code: ErrorCode.ERROR_CODE_UNAVAILABLE, message: `expected a ${expected} response, got ${got}`, leaderNodeId: '', leaderAddress: '', epoch: 0 },
  };
}

/** A many-key call's list: an array of 1…{@link MAX_MANY_KEYS} items. */
function checkMany(name: string, items: unknown): void {
  if (!Array.isArray(items)) throw new KVError('INVALID_ARGUMENT', `${name} takes an array`);
  if (items.length === 0) throw new KVError('INVALID_ARGUMENT', `${name} needs at least one key`);
  if (items.length > MAX_MANY_KEYS) throw new KVError('INVALID_ARGUMENT', `${name} takes at most ${MAX_MANY_KEYS} keys, got ${items.length}`);
}

/** Writes of one key in one many-key call would race each other: refused. */
function checkDistinct(name: string, keys: readonly unknown[]): void {
  const seen = new Set<unknown>();
  for (const key of keys) {
    if (seen.has(key)) throw new KVError('INVALID_ARGUMENT', `${name}: key "${String(key)}" appears twice (their order would be undefined)`);
    seen.add(key);
  }
}

/**
 * Runs `call` for every item at once (so the requests leave in one Batch per node) and settles each
 * into `{ key, ok: true, …fields }` or `{ key, ok: false, error }`, in order.
 */
function eachKey<I, F extends object>(
  items: readonly I[], keyOf: (item: I) => string, call: (item: I) => Promise<F>,
): Promise<({ key: string; ok: true } & F | { key: string; ok: false; error: KVError })[]> {
  return Promise.all(items.map((item) => {
    const key = keyOf(item);
    return call(item).then(
      (fields) => ({ key, ok: true as const, ...fields }),
      (error: unknown) => ({ key, ok: false as const, error: asKVError(error) }),
    );
  }));
}

/** A per-key failure as the KVError it should be (anything else is a bug, kept as the cause). */
function asKVError(error: unknown): KVError {
  if (error instanceof KVError) return error;
  return new KVError('UNAVAILABLE', error instanceof Error ? error.message : String(error), { cause: error });
}

function checkVersion(version: unknown): void {
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
    throw new KVError('INVALID_ARGUMENT', `expectedVersion must be a non-negative integer (0 = absent), got ${String(version)}`);
  }
}

function checkTimeout(timeoutMs: unknown, name: string): number {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new KVError('INVALID_ARGUMENT', `${name} must be a positive number of milliseconds, got ${String(timeoutMs)}`);
  }
  return timeoutMs;
}

/**
 * The channel security the `tls` and `token` options ask for, checked: a CA with TLS, cert and key
 * together and parsing, a token the servers could accept. Also for tools that talk to the manager
 * with a client's credentials (`ManagerConnection`).
 * @throws KVError INVALID_ARGUMENT naming the option.
 */
export function clientChannelSecurity(options: Pick<KVClientOptions, 'tls' | 'token'>): ChannelSecurity {
  const { tls, token } = options;
  if (token !== undefined) {
    const problem = typeof token === 'string' ? tokenProblem(token) : 'is not a string';
    if (problem !== undefined) throw new KVError('INVALID_ARGUMENT', `token ${problem}`);
  }
  if (tls === undefined) return token === undefined ? ChannelSecurity.NONE : new ChannelSecurity(undefined, () => token);
  const pem = (value: unknown): boolean => typeof value === 'string' || value instanceof Uint8Array;
  if (!pem(tls.ca)) throw new KVError('INVALID_ARGUMENT', 'tls.ca must be the cluster CA certificate (PEM, a string or bytes)');
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new KVError('INVALID_ARGUMENT', `tls.cert and tls.key go together: ${tls.cert === undefined ? 'tls.cert' : 'tls.key'} is missing`);
  }
  if (tls.cert !== undefined && (!pem(tls.cert) || !pem(tls.key))) throw new KVError('INVALID_ARGUMENT', 'tls.cert and tls.key must be PEM (a string or bytes)');
  const parses = (what: string, parse: () => unknown): void => {
    try {
      parse();
    } catch {
      throw new KVError('INVALID_ARGUMENT', `${what} is not PEM that parses`);
    }
  };
  parses('tls.ca', () => new X509Certificate(tls.ca));
  if (tls.cert !== undefined && tls.key !== undefined) {
    const { cert, key } = tls;
    parses('tls.cert', () => new X509Certificate(cert));
    parses('tls.key', () => createPrivateKey(typeof key === 'string' ? key : Buffer.from(key)));
  }
  try {
    return new ChannelSecurity(tls, token === undefined ? undefined : () => token);
  } catch (error) {
    throw new KVError('INVALID_ARGUMENT', `tls: ${(error as Error).message}`, { cause: error });
  }
}
