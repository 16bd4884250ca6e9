/**
 * Shrinks a non-linearizable key history to a small failing sub-history a person can read, by delta
 * debugging (Zeller, "Simplifying and isolating failure-inducing input", 2002): try removing chunks of
 * operations, halving the chunk size, and keep every removal after which the checker still fails.
 *
 * Only *closed* sub-histories are kept: every value a remaining read returned is still written by a
 * remaining operation, and every version a remaining cas depends on is tied (by a remaining read or
 * cas result) to a value still written. A closed sub-history of a linearizable history is
 * linearizable (drop the removed operations from its linearization: each remaining read still
 * follows its write with no write in between, each cas still sees the value its version names), so
 * a failing closed sub-history is a genuine witness, not an artefact of cutting.
 */
import { isCheckable, type Operation } from './history.js';
import { checkKey } from './checker.js';

/** Limits for {@link minimizeViolation}. */
export interface MinimizeOptions {
  /** Checker step budget per attempt. Default 200,000: an attempt that cannot decide counts as passing. */
  maxStepsPerCheck?: number;
  /** Attempts in total. Default 2,000. */
  maxAttempts?: number;
}

/**
 * A smallest failing closed sub-history of `operations` (one key's, which must fail the checker) that
 * the search finds; the input itself if nothing can be removed.
 */
export function minimizeViolation(key: string, operations: readonly Operation[], options: MinimizeOptions = {}): Operation[] {
  const maxSteps = options.maxStepsPerCheck ?? 200_000;
  let attemptsLeft = options.maxAttempts ?? 2000;
  const fails = (candidate: readonly Operation[]): boolean => {
    attemptsLeft--;
    return candidate.length > 0 && checkKey(key, candidate, { maxSteps }).verdict === 'violation';
  };
  const checkable = operations.filter(isCheckable);
  const whole = checkKey(key, checkable, { maxSteps });
  if (whole.verdict === 'violation' && whole.steps === 0 && whole.operationIds !== undefined) {
    // Decided before any search (a value read that nobody wrote, a version seen twice): those operations are the witness.
    const named = new Set(whole.operationIds);
    return checkable.filter((operation) => named.has(operation.id));
  }
  let current = closeUnder(checkable);
  if (!fails(current)) return checkable; // only the unclosed whole fails: no sub-history is a sound witness
  let chunk = Math.max(1, Math.floor(current.length / 2));
  for (;;) {
    let removedAny = false;
    for (let start = 0; start < current.length && attemptsLeft > 0; ) {
      const candidate = closeUnder([...current.slice(0, start), ...current.slice(start + chunk)]);
      if (fails(candidate)) {
        current = candidate;
        removedAny = true;
      } else {
        start += chunk;
      }
    }
    if (attemptsLeft <= 0) return current;
    if (chunk === 1 && !removedAny) return current;
    if (!removedAny) chunk = Math.max(1, Math.floor(chunk / 2));
  }
}

/**
 * The largest closed subset of `operations` obtained by dropping, repeatedly, every operation whose
 * read value or cas version lost its write (dropping one can untie another's version).
 */
export function closeUnder(operations: readonly Operation[]): Operation[] {
  let current = [...operations];
  for (;;) {
    const admitted = closedMembers(current);
    const next = current.filter((operation) => admitted.has(operation));
    if (next.length === current.length) return current;
    current = next;
  }
}

/** True when every value read and every version a cas depends on is written by an operation in the set (see the file comment). */
export function isClosed(operations: readonly Operation[]): boolean {
  return closedMembers(operations).size === operations.length;
}

/** The operations of the set whose read value and cas versions are covered by the set. */
function closedMembers(operations: readonly Operation[]): Set<Operation> {
  const written = new Set<string>();
  for (const operation of operations) if (operation.type === 'put' || operation.type === 'cas') written.add(operation.value);
  const valueAtVersion = new Map<number, string>();
  for (const operation of operations) {
    if (operation.type === 'get' && operation.status === 'ok' && typeof operation.value === 'string' && operation.version !== undefined) {
      valueAtVersion.set(operation.version, operation.value);
    }
    if (operation.type === 'cas' && operation.status === 'ok' && operation.version !== undefined) valueAtVersion.set(operation.version, operation.value);
  }
  // A version a cas depends on must be tied, by the remaining operations, to a value they still
  // write: then every cas decision depends on values only, exactly as in the whole history. (An
  // untied version would let the removal of its write fail the cas spuriously.) A conflict's
  // expected version only has to differ from the state, so an untied one is harmless there.
  const tiedToWritten = (version: number): boolean => {
    if (version === 0) return true;
    const value = valueAtVersion.get(version);
    return value !== undefined && written.has(value);
  };
  const covered = (operation: Operation): boolean => {
    if (operation.type === 'get') return typeof operation.value !== 'string' || written.has(operation.value);
    if (operation.type === 'put' || operation.type === 'delete') return true;
    if (operation.status !== 'conflict') return tiedToWritten(operation.expectedVersion);
    const expected = valueAtVersion.get(operation.expectedVersion);
    if (expected !== undefined && !written.has(expected)) return false;
    return operation.currentVersion === undefined || tiedToWritten(operation.currentVersion);
  };
  return new Set(operations.filter(covered));
}
