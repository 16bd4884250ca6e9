/**
 * Linearizability checking of a recorded history, one object at a time.
 *
 * An object is a key, or the keys transactions tie together (issue 18): a transaction is one
 * operation on every key it names, so those keys form one object whose state is all their values
 * (object-model.ts). Objects are independent, so the history is linearizable iff each object's
 * sub-history is (P-compositionality: Horn & Kroening, "Faster linearizability checking via
 * P-compositionality", 2015). The chaos workload ties the keys of one hash tag (`{g1}a`, `{g1}b`),
 * so its objects are those groups plus the untagged keys; objects come from the history itself,
 * so a transaction over keys of different tags in one shard would join them too.
 *
 * Each object is checked with the Wing–Gong search as improved by Lowe ("Testing for
 * linearizability", 2017): walk the history's call and return events in time order, tentatively
 * linearize any operation whose call comes before the first outstanding return, backtrack when a
 * return is reached with its operation not yet linearized, and memoize every (set of linearized
 * operations, object state) pair already explored so no configuration is searched twice. An
 * operation may leave more than one state (an indeterminate transaction whose compares may go
 * either way); the search tries each in turn.
 *
 * An indeterminate write (the client gave up: TIMEOUT or UNAVAILABLE) has a call but no return: it
 * may be linearized at any point after its invocation, or never. The search succeeds as soon as every
 * operation with a return is linearized.
 *
 * A key written with a TTL may expire (expiry.ts): an invisible step, taken by no client, that
 * turns the key absent while that write's value is current, at or after its earliest expiry. In
 * the search it is one more move at a configuration, enabled only when a key's current value came
 * from a TTL write and the search's time — the first outstanding return, before which the next
 * step must linearize — is at or past that write's earliest expiry. It is tried last, only when no
 * operation can go next without it (so the linearization found expires a key only when something
 * needed it gone), and it consumes no operation: the memo tells the two branches apart by the
 * state (the key absent or not), and they merge again once the key is written. A read that finds
 * the key absent too early, or finds the value again after it was gone, has no order.
 */
import { findCameBack, readsOf } from './expiry.js';
import { isCheckable, isIndeterminate, keysOf, possibleWrites, type Operation } from './history.js';
import { ObjectModel, type ObjectState } from './object-model.js';
import { withoutUnobservableWrites } from './unobserved-writes.js';

/** The verdict on one object: one key, or the keys transactions tie together. */
export interface KeyCheck {
  /** The object's name: its key, or its keys joined by `+` (`{g1}a+{g1}b`). */
  key: string;
  /** The object's keys, sorted. */
  keys: string[];
  /** `unknown` when the search ran out of its step budget before deciding. */
  verdict: 'linearizable' | 'violation' | 'unknown';
  /** Operations of this object the checker used (failed reads are dropped). */
  operations: number;
  /** For a violation: what could not be explained. */
  reason?: string;
  /** For a violation: the operations the reason names. */
  operationIds?: number[];
  /** Configurations the search visited. */
  steps: number;
  /**
   * Expiries of TTL writes the linearization found took and a later read observed (found the key
   * absent before it was written again); 0 unless linearizable.
   */
  expirations: number;
  /** Reads (gets, and transactions' gets) that found a key absent because it expired, in that linearization. */
  expiredReads: number;
}

/** The verdict on a whole history. */
export interface HistoryCheck {
  /** `violation` if any object is; else `unknown` if any object is; else `linearizable`. */
  verdict: KeyCheck['verdict'];
  /** Operations used across all objects (a transaction counts once). */
  operationsChecked: number;
  /** Indeterminate operations among them. */
  indeterminate: number;
  /** One per object, by name. */
  keys: KeyCheck[];
  /** Expiries observed, summed over the objects ({@link KeyCheck.expirations}). */
  expirations: number;
  /** Reads that found a key expired, summed over the objects ({@link KeyCheck.expiredReads}). */
  expiredReads: number;
}

/** Search limits. */
export interface CheckOptions {
  /**
   * Configurations one object's search may visit before giving up with `unknown`. Default
   * 5,000,000: seconds of CPU; a chaos history needs far fewer unless it holds many indeterminate
   * writes whose values some read observed.
   */
  maxSteps?: number;
}

const DEFAULT_MAX_STEPS = 5_000_000;

/**
 * Splits a history into objects: keys are joined when one operation (a transaction) names them
 * together. Each object's operations keep their order; objects are named by their sorted keys.
 */
export function partitionByObject(history: readonly Operation[]): Map<string, { keys: string[]; operations: Operation[] }> {
  const parent = new Map<string, string>();
  const root = (key: string): string => {
    let top = key;
    for (let up = parent.get(top); up !== undefined && up !== top; up = parent.get(top)) top = up;
    parent.set(key, top);
    return top;
  };
  for (const operation of history) {
    const keys = keysOf(operation);
    for (const key of keys) if (!parent.has(key)) parent.set(key, key);
    const first = root(keys[0] ?? operation.key);
    for (const key of keys.slice(1)) {
      const other = root(key);
      if (other !== first) parent.set(other, first);
    }
  }
  const keysOfRoot = new Map<string, string[]>();
  for (const key of parent.keys()) {
    const top = root(key);
    keysOfRoot.set(top, [...(keysOfRoot.get(top) ?? []), key]);
  }
  const nameOfRoot = new Map<string, string>();
  const objects = new Map<string, { keys: string[]; operations: Operation[] }>();
  for (const [top, keys] of keysOfRoot) {
    keys.sort();
    const name = keys.join('+');
    nameOfRoot.set(top, name);
    objects.set(name, { keys, operations: [] });
  }
  for (const operation of history) objects.get(nameOfRoot.get(root(operation.key)) ?? '')?.operations.push(operation);
  return objects;
}

/** Checks every object of `history`. */
export function checkHistory(history: readonly Operation[], options: CheckOptions = {}): HistoryCheck {
  const keys: KeyCheck[] = [];
  let operationsChecked = 0;
  let indeterminate = 0;
  for (const [name, object] of [...partitionByObject(history)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const result = checkKey(name, object.operations, options);
    keys.push(result);
    operationsChecked += result.operations;
    indeterminate += object.operations.filter(isIndeterminate).length;
  }
  const verdict = keys.some((key) => key.verdict === 'violation')
    ? 'violation'
    : keys.some((key) => key.verdict === 'unknown')
      ? 'unknown'
      : 'linearizable';
  const expirations = keys.reduce((sum, key) => sum + key.expirations, 0);
  const expiredReads = keys.reduce((sum, key) => sum + key.expiredReads, 0);
  return { verdict, operationsChecked, indeterminate, keys, expirations, expiredReads };
}

/**
 * Checks `allOperations` as one object, named `name`, made of every key they touch: one key's
 * operations, or an object's from {@link partitionByObject}.
 */
export function checkKey(name: string, allOperations: readonly Operation[], options: CheckOptions = {}): KeyCheck {
  const operations = allOperations.filter(isCheckable);
  const keys = [...new Set(allOperations.flatMap(keysOf))].sort();
  const base = { key: name, keys, operations: operations.length, expirations: 0, expiredReads: 0 };
  const built = ObjectModel.build(keys, operations);
  if ('contradiction' in built) {
    return { ...base, verdict: 'violation', reason: built.contradiction.reason, operationIds: built.contradiction.operationIds, steps: 0 };
  }
  const model = built.model;
  const neverWritten = readOfUnwrittenValue(operations);
  if (neverWritten !== undefined) {
    return {
      ...base,
      verdict: 'violation',
      reason: `a read returned "${neverWritten.value}", a value no operation on ${keys.length > 1 ? `key ${neverWritten.key}` : 'this key'} wrote`,
      operationIds: [neverWritten.id],
      steps: 0,
    };
  }
  const cameBack = findCameBack(operations);
  if (cameBack !== undefined) {
    return {
      ...base,
      verdict: 'violation',
      reason:
        `${keys.length > 1 ? `key ${cameBack.key}` : 'the key'} came back: "${cameBack.value}" was written (#${cameBack.writerId}), ` +
        `read as absent (#${cameBack.absentReadId}) after the write certainly happened (#${cameBack.surelyWrittenById}), ` +
        `then read again (#${cameBack.againReadId}) with no write of it in between`,
      operationIds: [...new Set([cameBack.writerId, cameBack.surelyWrittenById, cameBack.absentReadId, cameBack.againReadId])],
      steps: 0,
    };
  }
  const searched = searchLinearization(withoutUnobservableWrites(operations, model), model, options.maxSteps ?? DEFAULT_MAX_STEPS);
  return { ...base, ...searched };
}

/** The first read (a get, or a transaction's get) of a value no operation may have written on that key. */
function readOfUnwrittenValue(operations: readonly Operation[]): { id: number; key: string; value: string } | undefined {
  const written = new Set<string>();
  for (const operation of operations) {
    for (const write of possibleWrites(operation)) if (write.value !== null) written.add(`${write.key}\u0000${write.value}`);
  }
  for (const operation of operations) {
    const reads =
      operation.type === 'get'
        ? [{ key: operation.key, value: operation.value }]
        : operation.type === 'txn'
          ? (operation.results ?? []).flatMap((result) => (result.op === 'get' ? [{ key: result.key, value: result.value }] : []))
          : [];
    for (const read of reads) {
      if (typeof read.value === 'string' && !written.has(`${read.key}\u0000${read.value}`)) return { id: operation.id, key: read.key, value: read.value };
    }
  }
  return undefined;
}

/** One call or return event in the doubly linked list the search lifts entries out of. */
interface Entry {
  operation: Operation;
  /** Index of the operation in the search's operation array (its bit in the linearized set). */
  index: number;
  isCall: boolean;
  /** The call's matching return entry; undefined for returns and indeterminate calls. */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

type SearchResult = Pick<KeyCheck, 'verdict' | 'reason' | 'operationIds' | 'steps'> & Partial<Pick<KeyCheck, 'expirations' | 'expiredReads'>>;

/**
 * One move of the search: a tentatively linearized operation (`entry` its call), or an expiry
 * taken at the first outstanding return (`entry` that return); the state before it, the states
 * the move may leave, and which one the search took.
 */
interface Frame {
  entry: Entry;
  state: ObjectState;
  successors: ObjectState[];
  taken: number;
}

function searchLinearization(operations: readonly Operation[], model: ObjectModel, maxSteps: number): SearchResult {
  if (operations.length === 0) return { verdict: 'linearizable', steps: 0 };
  const head = buildEntries(operations);
  let remainingReturns = operations.filter((operation) => !isIndeterminate(operation)).length;
  const linearized = new Uint32Array(Math.ceil(operations.length / 32) + 1);
  const seen = new Set<string>();
  const stack: Frame[] = [];
  let state = model.initialState();
  let entry = head.next;
  /** Set when backtracking to a move: try its states after the one taken before. */
  let resume: Frame | undefined;
  let steps = 0;
  /** Operations linearized on the current path (the stack also holds expiries). */
  let ordered = 0;
  let deepest = 0;
  let blockedAt: Operation | undefined;

  while (remainingReturns > 0) {
    if (entry === undefined) throw new Error('linearizability search ran off the end of the history');
    if (++steps > maxSteps) return { verdict: 'unknown', reason: `search stopped after ${maxSteps} steps`, steps };
    const resuming = resume?.entry === entry ? resume : undefined;
    resume = undefined;
    // At a call, the states its operation may leave. At the first outstanding return (every call
    // before it tried), the expiries due by then: the next step linearizes before that return.
    const successors =
      resuming?.successors ?? (entry.isCall ? model.step(state, entry.operation) : model.expirations(state, entry.operation.completedAtMs));
    let descended = false;
    for (let taken = resuming === undefined ? 0 : resuming.taken + 1; taken < successors.length && !descended; taken++) {
      const next = successors[taken] as ObjectState;
      if (entry.isCall) setBit(linearized, entry.index, true);
      const configuration = `${linearized.join(',')}|${model.encode(next)}`;
      if (seen.has(configuration)) {
        if (entry.isCall) setBit(linearized, entry.index, false);
        continue;
      }
      seen.add(configuration);
      stack.push({ entry, state, successors, taken });
      state = next;
      if (entry.isCall) {
        lift(entry);
        if (entry.match !== undefined) remainingReturns--;
        ordered++;
      }
      descended = true;
    }
    if (descended) {
      entry = head.next;
      continue;
    }
    if (entry.isCall) {
      entry = entry.next;
      continue;
    }
    // Blocked at a return whose operation cannot be linearized here: undo the last move.
    if (ordered >= deepest) {
      deepest = ordered;
      blockedAt = entry.operation;
    }
    const top = stack.pop();
    if (top === undefined) {
      const culprit = blockedAt ?? entry.operation;
      return {
        verdict: 'violation',
        reason: `no order of the operations explains ${culprit.type} #${culprit.id} (at most ${deepest} of ${operations.length} could be ordered)`,
        operationIds: [culprit.id],
        steps,
      };
    }
    state = top.state;
    if (top.entry.isCall) {
      setBit(linearized, top.entry.index, false);
      unlift(top.entry);
      if (top.entry.match !== undefined) remainingReturns++;
      ordered--;
    }
    entry = top.entry;
    resume = top;
  }
  return { verdict: 'linearizable', steps, ...expiriesObserved(stack, model) };
}

/**
 * Counts, along the linearization found (the search's final stack), the expiries a later read
 * observed — found the key absent before it was written again — and those reads.
 */
function expiriesObserved(stack: readonly Frame[], model: ObjectModel): Pick<KeyCheck, 'expirations' | 'expiredReads'> {
  let expirations = 0;
  let expiredReads = 0;
  /** Per key: the expiry that made it absent, if no write came since, and whether a read saw it. */
  const expired = new Map<string, { observed: boolean }>();
  for (const frame of stack) {
    const after = frame.successors[frame.taken] as ObjectState;
    const changed = model.keys.filter((_, index) => frame.state[index] !== after[index]);
    if (!frame.entry.isCall) {
      for (const key of changed) expired.set(key, { observed: false });
      continue;
    }
    for (const read of readsOf(frame.entry.operation)) {
      const expiry = read.value === null ? expired.get(read.key) : undefined;
      if (expiry === undefined) continue;
      expiredReads++;
      if (!expiry.observed) expirations++;
      expiry.observed = true;
    }
    for (const key of changed) expired.delete(key);
  }
  return { expirations, expiredReads };
}

/**
 * Builds the event list, in time order, behind a sentinel head. A call at the same instant as a
 * return sorts first, so touching operations count as concurrent (the order that accepts more).
 */
function buildEntries(operations: readonly Operation[]): Entry {
  const events: { time: number; entry: Entry }[] = [];
  operations.forEach((operation, index) => {
    const call: Entry = { operation, index, isCall: true, match: undefined, prev: undefined, next: undefined };
    events.push({ time: operation.invokedAtMs, entry: call });
    if (!isIndeterminate(operation)) {
      const ret: Entry = { operation, index, isCall: false, match: undefined, prev: undefined, next: undefined };
      call.match = ret;
      events.push({ time: operation.completedAtMs, entry: ret });
    }
  });
  events.sort((a, b) => a.time - b.time || Number(b.entry.isCall) - Number(a.entry.isCall) || a.entry.index - b.entry.index);
  const head: Entry = { operation: operations[0] as Operation, index: -1, isCall: false, match: undefined, prev: undefined, next: undefined };
  let tail = head;
  for (const { entry } of events) {
    tail.next = entry;
    entry.prev = tail;
    tail = entry;
  }
  return head;
}

/** Removes a call entry and its return from the list (they stay linked to their neighbours for unlift). */
function lift(call: Entry): void {
  unlink(call);
  if (call.match !== undefined) unlink(call.match);
}

/** Puts a lifted call (and its return) back, in reverse order of lifting. */
function unlift(call: Entry): void {
  if (call.match !== undefined) relink(call.match);
  relink(call);
}

function unlink(entry: Entry): void {
  if (entry.prev !== undefined) entry.prev.next = entry.next;
  if (entry.next !== undefined) entry.next.prev = entry.prev;
}

function relink(entry: Entry): void {
  if (entry.prev !== undefined) entry.prev.next = entry;
  if (entry.next !== undefined) entry.next.prev = entry;
}

function setBit(bits: Uint32Array, index: number, on: boolean): void {
  const word = index >>> 5;
  const mask = 1 << (index & 31);
  const current = bits[word] ?? 0;
  bits[word] = on ? current | mask : current & ~mask;
}
