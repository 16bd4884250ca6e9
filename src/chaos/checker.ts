/**
 * Linearizability checking of a recorded history, one key at a time.
 *
 * Keys are independent registers, so the history is linearizable iff each key's sub-history is
 * (P-compositionality: Horn & Kroening, "Faster linearizability checking via P-compositionality",
 * 2015). Each key is checked with the Wing–Gong search as improved by Lowe ("Testing for
 * linearizability", 2017): walk the history's call and return events in time order, tentatively
 * linearize any operation whose call comes before the first outstanding return, backtrack when a
 * return is reached with its operation not yet linearized, and memoize every (set of linearized
 * operations, register state) pair already explored so no configuration is searched twice.
 *
 * An indeterminate write (the client gave up: TIMEOUT or UNAVAILABLE) has a call but no return: it
 * may be linearized at any point after its invocation, or never. The search succeeds as soon as every
 * operation with a return is linearized.
 */
import { isCheckable, isIndeterminate, partitionByKey, type Operation } from './history.js';
import { stepRegister, VersionKnowledge, type RegisterState } from './register-model.js';

/** The verdict on one key. */
export interface KeyCheck {
  key: string;
  /** `unknown` when the search ran out of its step budget before deciding. */
  verdict: 'linearizable' | 'violation' | 'unknown';
  /** Operations of this key the checker used (failed reads are dropped). */
  operations: number;
  /** For a violation: what could not be explained. */
  reason?: string;
  /** For a violation: the operations the reason names. */
  operationIds?: number[];
  /** Configurations the search visited. */
  steps: number;
}

/** The verdict on a whole history. */
export interface HistoryCheck {
  /** `violation` if any key is; else `unknown` if any key is; else `linearizable`. */
  verdict: KeyCheck['verdict'];
  /** Operations used across all keys. */
  operationsChecked: number;
  /** Indeterminate writes among them. */
  indeterminate: number;
  keys: KeyCheck[];
}

/** Search limits. */
export interface CheckOptions {
  /**
   * Configurations one key's search may visit before giving up with `unknown`. Default 5,000,000:
   * seconds of CPU; a chaos history needs far fewer unless it holds many indeterminate writes
   * whose values some read observed.
   */
  maxSteps?: number;
}

const DEFAULT_MAX_STEPS = 5_000_000;

/** Checks every key of `history`. */
export function checkHistory(history: readonly Operation[], options: CheckOptions = {}): HistoryCheck {
  const keys: KeyCheck[] = [];
  let operationsChecked = 0;
  let indeterminate = 0;
  for (const [key, operations] of [...partitionByKey(history)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const result = checkKey(key, operations, options);
    keys.push(result);
    operationsChecked += result.operations;
    indeterminate += operations.filter(isIndeterminate).length;
  }
  const verdict = keys.some((key) => key.verdict === 'violation')
    ? 'violation'
    : keys.some((key) => key.verdict === 'unknown')
      ? 'unknown'
      : 'linearizable';
  return { verdict, operationsChecked, indeterminate, keys };
}

/** Checks one key's operations (all on `key`). */
export function checkKey(key: string, allOperations: readonly Operation[], options: CheckOptions = {}): KeyCheck {
  const operations = allOperations.filter(isCheckable);
  const base = { key, operations: operations.length };
  const learned = VersionKnowledge.learn(operations);
  if (learned.contradiction !== undefined) {
    return { ...base, verdict: 'violation', reason: learned.contradiction.reason, operationIds: learned.contradiction.operationIds, steps: 0 };
  }
  const knowledge = learned.knowledge;
  const neverWritten = readOfUnwrittenValue(operations);
  if (neverWritten !== undefined) {
    return {
      ...base,
      verdict: 'violation',
      reason: `a read returned "${neverWritten.value ?? ''}", a value no operation on this key wrote`,
      operationIds: [neverWritten.id],
      steps: 0,
    };
  }
  const searched = searchLinearization(withoutUnobservableWrites(operations, knowledge), knowledge, options.maxSteps ?? DEFAULT_MAX_STEPS);
  return { ...base, ...searched };
}

function readOfUnwrittenValue(operations: readonly Operation[]): Operation & { value?: string | null } | undefined {
  const written = new Set<string>();
  for (const operation of operations) if (operation.type === 'put' || operation.type === 'cas') written.add(operation.value);
  return operations.find((operation) => operation.type === 'get' && typeof operation.value === 'string' && !written.has(operation.value));
}

/**
 * Drops indeterminate writes whose value nothing observed. Sound when every cas names versions the
 * history tied to values and no delete reports that it found the key: then the only operations
 * that could follow such a write in a linearization are other writes, which overwrite it, so
 * leaving it out explains the history equally well. Without this, every unobserved timed-out
 * write doubles the search space.
 */
function withoutUnobservableWrites(operations: readonly Operation[], knowledge: VersionKnowledge): Operation[] {
  const everyCasDetermined = operations.every(
    (operation) =>
      operation.type !== 'cas' ||
      (knowledge.isKnown(operation.expectedVersion) &&
        (operation.status !== 'conflict' || (operation.currentVersion !== undefined && knowledge.isKnown(operation.currentVersion)))),
  );
  // A delete that found the key observes that some write took effect without naming it.
  const presenceObserved = operations.some((operation) => operation.type === 'delete' && operation.status === 'ok' && operation.existed === true);
  if (!everyCasDetermined || presenceObserved) return [...operations];
  const observed = knowledge.observedValues();
  for (const operation of operations) if (operation.type === 'get' && typeof operation.value === 'string') observed.add(operation.value);
  // A delete writes "absent", which any read of an absent key may have observed: always kept.
  return operations.filter(
    (operation) => !(isIndeterminate(operation) && (operation.type === 'put' || operation.type === 'cas') && !observed.has(operation.value)),
  );
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

type SearchResult = Pick<KeyCheck, 'verdict' | 'reason' | 'operationIds' | 'steps'>;

function searchLinearization(operations: readonly Operation[], knowledge: VersionKnowledge, maxSteps: number): SearchResult {
  const head = buildEntries(operations);
  let remainingReturns = operations.filter((operation) => !isIndeterminate(operation)).length;
  const linearized = new Uint32Array(Math.ceil(operations.length / 32) + 1);
  const seen = new Set<string>();
  const stack: { entry: Entry; state: RegisterState }[] = [];
  let state: RegisterState = null;
  let entry = head.next;
  let steps = 0;
  let deepest = 0;
  let blockedAt: Operation | undefined;

  while (remainingReturns > 0) {
    if (entry === undefined) throw new Error('linearizability search ran off the end of the history');
    if (++steps > maxSteps) return { verdict: 'unknown', reason: `search stopped after ${maxSteps} steps`, steps };
    if (entry.isCall) {
      const next = stepRegister(state, entry.operation, knowledge);
      if (next !== undefined) {
        setBit(linearized, entry.index, true);
        const configuration = `${linearized.join(',')}|${next === null ? '\u0000' : next}`;
        if (!seen.has(configuration)) {
          seen.add(configuration);
          stack.push({ entry, state });
          state = next;
          lift(entry);
          if (entry.match !== undefined) remainingReturns--;
          entry = head.next;
          continue;
        }
        setBit(linearized, entry.index, false);
      }
      entry = entry.next;
    } else {
      if (stack.length >= deepest) {
        deepest = stack.length;
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
      setBit(linearized, top.entry.index, false);
      unlift(top.entry);
      if (top.entry.match !== undefined) remainingReturns++;
      entry = top.entry.next;
    }
  }
  return { verdict: 'linearizable', steps };
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
