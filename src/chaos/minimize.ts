/**
 * Shrinks the history of a non-linearizable object (a key, or the keys transactions tie together)
 * to a small failing sub-history a person can read, by delta debugging (Zeller, "Simplifying and
 * isolating failure-inducing input", 2002): try removing chunks of operations, halving the chunk
 * size, and keep every removal after which the checker still fails.
 *
 * Only *closed* sub-histories are kept: every value a remaining read returned is still written by a
 * remaining operation, and every version a remaining cas or compare depends on is tied (by a
 * remaining read or cas result) to a value still written; and an operation that observes a key
 * without naming its value (a read of an absent key, a delete's "existed", a transaction's failed
 * or exists compare) stays only while the writes of that key that could change what it saw do —
 * for absence, every delete and every put with a TTL (its value may have expired). A closed
 * sub-history of a linearizable history is linearizable (drop the removed operations, and the
 * expiries of removed TTL puts, from its linearization: each remaining read still follows its
 * write with no write in between, each cas and compare still sees the value its version names),
 * so a failing closed sub-history is a genuine witness, not an artefact of cutting.
 */
import { branchRan, isCheckable, possibleWrites, type Operation, type TxnOperation } from './history.js';
import { checkKey } from './checker.js';
import { mayRemove } from './expiry.js';
import { versionObservations } from './register-model.js';

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
      const candidate = closeUnder([...current.slice(0, start), ...current.slice(start + chunk)], checkable);
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
 * read value or cas version lost its write (dropping one can untie another's version). `whole` is
 * the history `operations` was cut from: an operation that observes a key's absence, its presence
 * or a value it does not hold (without naming what it held) stays only while every write of that
 * key in `whole` that could change the answer does.
 */
export function closeUnder(operations: readonly Operation[], whole: readonly Operation[] = operations): Operation[] {
  const writes = writeCounts(whole);
  let current = [...operations];
  for (;;) {
    const admitted = closedMembers(current, writes);
    const next = current.filter((operation) => admitted.has(operation));
    if (next.length === current.length) return current;
    current = next;
  }
}

/** True when every value read and every version a cas depends on is written by an operation in the set (see the file comment). */
export function isClosed(operations: readonly Operation[], whole: readonly Operation[] = operations): boolean {
  return closedMembers(operations, writeCounts(whole)).size === operations.length;
}

/**
 * Per key, how many operations may write it and how many may make it absent: a delete, or a put
 * with a TTL (its value may expire, issue 18), so absence stays explained only while every such
 * write of the key stays.
 */
interface WriteCounts {
  writes: Map<string, number>;
  deletes: Map<string, number>;
}

function writeCounts(operations: readonly Operation[]): WriteCounts {
  const counts: WriteCounts = { writes: new Map(), deletes: new Map() };
  for (const operation of operations) {
    const writes = possibleWrites(operation);
    for (const key of new Set(writes.map((write) => write.key))) counts.writes.set(key, (counts.writes.get(key) ?? 0) + 1);
    for (const key of new Set(writes.filter(mayRemove).map((write) => write.key))) {
      counts.deletes.set(key, (counts.deletes.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** The operations of the set whose observations are covered by the set. */
function closedMembers(operations: readonly Operation[], whole: WriteCounts): Set<Operation> {
  const written = new Set<string>();
  for (const operation of operations) for (const write of possibleWrites(operation)) if (write.value !== null) written.add(`${write.key}\u0000${write.value}`);
  const valueAtVersion = new Map<string, string>();
  for (const operation of operations) {
    for (const observation of versionObservations(operation)) valueAtVersion.set(`${observation.key}\u0000${observation.version}`, observation.value);
  }
  const here = writeCounts(operations);
  const isWritten = (key: string, value: string): boolean => written.has(`${key}\u0000${value}`);
  // A key read as absent still reads absent once writes are cut, as long as no delete of it is
  // cut; presence, or "not this value", only while no write of it is.
  const absenceKept = (key: string): boolean => (here.deletes.get(key) ?? 0) === (whole.deletes.get(key) ?? 0);
  const everyWriteKept = (key: string): boolean => (here.writes.get(key) ?? 0) === (whole.writes.get(key) ?? 0);
  // A version a cas depends on must be tied, by the remaining operations, to a value they still
  // write: then every cas decision depends on values only, exactly as in the whole history. (An
  // untied version would let the removal of its write fail the cas spuriously.) A conflict's
  // expected version only has to differ from the state, so an untied one is harmless there.
  const tiedToWritten = (key: string, version: number): boolean => {
    if (version === 0) return absenceKept(key);
    const value = valueAtVersion.get(`${key}\u0000${version}`);
    return value !== undefined && isWritten(key, value);
  };
  const covered = (operation: Operation): boolean => {
    switch (operation.type) {
      case 'get':
        return typeof operation.value === 'string' ? isWritten(operation.key, operation.value) : absenceKept(operation.key);
      case 'put':
        return true;
      case 'delete':
        if (operation.status !== 'ok' || operation.existed === undefined) return true;
        return operation.existed ? everyWriteKept(operation.key) : absenceKept(operation.key);
      case 'cas': {
        if (operation.status !== 'conflict') return tiedToWritten(operation.key, operation.expectedVersion);
        const expected = valueAtVersion.get(`${operation.key}\u0000${operation.expectedVersion}`);
        if (expected !== undefined && !isWritten(operation.key, expected)) return false;
        return operation.currentVersion === undefined || tiedToWritten(operation.key, operation.currentVersion);
      }
      case 'txn':
        return txnCovered(operation, { isWritten, absenceKept, everyWriteKept, tiedToWritten });
    }
  };
  return new Set(operations.filter(covered));
}

interface Coverage {
  isWritten: (key: string, value: string) => boolean;
  absenceKept: (key: string) => boolean;
  everyWriteKept: (key: string) => boolean;
  tiedToWritten: (key: string, version: number) => boolean;
}

/**
 * A transaction's observations: every value its gets returned is written by the set; a compare
 * is anchored by a get of its key at the start of the branch that ran, or by the value or tied
 * version it held, or else (a compare that failed, an exists compare, an unknown outcome) every
 * write of the key that could change it stays; likewise a delete that reports what it found.
 */
function txnCovered(operation: TxnOperation, coverage: Coverage): boolean {
  const branch = branchRan(operation);
  const results = operation.results ?? [];
  const firstTouch = new Map<string, number>();
  branch?.forEach((step, i) => {
    if (!firstTouch.has(step.key)) firstTouch.set(step.key, i);
  });
  for (const [i, result] of results.entries()) {
    if (result.op === 'get') {
      if (result.value === null ? !coverage.absenceKept(result.key) : !coverage.isWritten(result.key, result.value)) return false;
    } else if (result.op === 'delete' && firstTouch.get(result.key) === i) {
      if (result.existed ? !coverage.everyWriteKept(result.key) : !coverage.absenceKept(result.key)) return false;
    }
  }
  for (const compare of operation.compare) {
    const first = firstTouch.get(compare.key);
    if (first !== undefined && branch?.[first]?.op === 'get') continue;
    if (operation.succeeded === true && 'value' in compare && coverage.isWritten(compare.key, compare.value)) continue;
    if (operation.succeeded === true && 'version' in compare && coverage.tiedToWritten(compare.key, compare.version)) continue;
    if (operation.succeeded === true && 'exists' in compare && !compare.exists && coverage.absenceKept(compare.key)) continue;
    if (!coverage.everyWriteKept(compare.key)) return false;
  }
  return true;
}
