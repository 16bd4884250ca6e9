/**
 * Drops indeterminate writes whose values nothing observed, before the linearizability search.
 * Every timed-out write may take effect anywhere after its call or never, so each one kept doubles
 * the configurations the search may visit; most are never observed and can go.
 *
 * Why it is sound. Let W be an indeterminate write that puts only values u nobody observed (no read
 * returned u, no compare names u, no version is tied to u). Take any linearization L of the history
 * with W in it. Between W and the next write of each key W wrote, that key holds u. If no operation
 * linearized in such a stretch can tell u from whatever the key held before W, then L without W
 * (and without the indeterminate operations that did nothing there) is a linearization of the
 * history without W. That is so when no operation could tell on any key W writes (none is among
 * the keys {@link keysItCouldTell} returns for any operation of the object):
 *
 * - a read, or a transaction's get of a key before its branch writes it, would have returned u:
 *   impossible, u is unobserved;
 * - a put or delete of the key overwrites it and reports nothing about it, except a delete that
 *   reports it found the key: that observes presence without naming a value (not allowed);
 * - a cas or a version compare naming a version tied to a value cannot match u, whose version is
 *   untied, so a successful one cannot be there, and a refused one or a failed transaction must
 *   name what it found (a conflict's tied current version; a get of the key in the failure branch);
 * - a value compare cannot hold (u is not named) and `exists: false` cannot either; `exists: true`
 *   holds of u and of no absent key, so a transaction with one must read the key in its branch;
 * - an indeterminate transaction linearized over u with a compare on the key fails its compares,
 *   which is harmless only when its failure branch writes nothing.
 *
 * A write that deletes is never dropped: "absent" is what every read of an absent key observes.
 * Nor is a put with a TTL (issue 18): its value may expire, and then the key is absent — a
 * delete in disguise. (A write without a TTL over a TTL value is still dropped safely: in L the
 * key held u, which never expires, so nothing in the stretch saw it absent, and without W the
 * earlier value simply stays, unexpired, as L' needs no expiry that L did not take.)
 */
import { mayRemove } from './expiry.js';
import { branchRan, isIndeterminate, possibleWrites, type Operation, type TxnOperation, type TxnStep } from './history.js';
import type { ObjectModel } from './object-model.js';
import { versionObservations } from './register-model.js';

/** `operations` without the indeterminate writes that can be left out (see the file comment). */
export function withoutUnobservableWrites(operations: readonly Operation[], model: ObjectModel): Operation[] {
  const telling = new Set<string>();
  for (const operation of operations) for (const key of keysItCouldTell(operation, model)) telling.add(key);
  const observed = observedValues(operations);
  return operations.filter((operation) => !(isIndeterminate(operation) && writesOnlyUnobserved(operation, observed, telling)));
}

/**
 * The keys on which `operation` might tell an unobserved value from the key's earlier one (see the
 * file comment); a write to any of them is kept.
 */
function keysItCouldTell(operation: Operation, model: ObjectModel): string[] {
  switch (operation.type) {
    case 'get':
    case 'put':
      return [];
    case 'delete':
      return operation.status === 'ok' && operation.existed === true ? [operation.key] : [];
    case 'cas': {
      const knowledge = model.knowledgeOf(operation.key);
      const determined =
        knowledge.isKnown(operation.expectedVersion) &&
        (operation.status !== 'conflict' || (operation.currentVersion !== undefined && knowledge.isKnown(operation.currentVersion)));
      return determined ? [] : [operation.key];
    }
    case 'txn':
      return keysATxnCouldTell(operation, model);
  }
}

function keysATxnCouldTell(operation: TxnOperation, model: ObjectModel): string[] {
  const keys = new Set<string>();
  for (const compare of operation.compare) {
    if ('version' in compare && !model.knowledgeOf(compare.key).isKnown(compare.version)) keys.add(compare.key);
  }
  const branch = branchRan(operation);
  if (branch === undefined) {
    // Unknown outcome: over u a compare on the key fails (exists: true would hold), so the failure branch must be harmless.
    const failureWrites = operation.failure.some((step) => step.op !== 'get');
    for (const compare of operation.compare) if (failureWrites || ('exists' in compare && compare.exists)) keys.add(compare.key);
    return [...keys];
  }
  const firstTouch = firstTouches(branch, operation.results ?? []);
  for (const compare of operation.compare) {
    if (firstTouch.get(compare.key)?.kind === 'get') continue; // the branch names the value it compared
    const cannotHoldOverU = !('exists' in compare && compare.exists);
    if (!(operation.succeeded === true && cannotHoldOverU)) keys.add(compare.key);
  }
  for (const [key, touch] of firstTouch) if (touch.kind === 'delete' && touch.existed) keys.add(key);
  return [...keys];
}

/** How a branch first touches each key: a get, a put, or a delete that found the key (`existed`). */
function firstTouches(branch: readonly TxnStep[], results: readonly { op: string; existed?: boolean }[]): Map<string, { kind: TxnStep['op']; existed: boolean }> {
  const touches = new Map<string, { kind: TxnStep['op']; existed: boolean }>();
  branch.forEach((step, i) => {
    if (!touches.has(step.key)) touches.set(step.key, { kind: step.op, existed: results[i]?.existed === true });
  });
  return touches;
}

/** `key\0value` for every value some operation observed: read, compared, or tied to a version. */
function observedValues(operations: readonly Operation[]): Set<string> {
  const observed = new Set<string>();
  const add = (key: string, value: string | null | undefined): void => {
    if (typeof value === 'string') observed.add(`${key}\u0000${value}`);
  };
  for (const operation of operations) {
    if (operation.type === 'get') add(operation.key, operation.value);
    for (const observation of versionObservations(operation)) add(observation.key, observation.value);
    if (operation.type !== 'txn') continue;
    for (const compare of operation.compare) if ('value' in compare) add(compare.key, compare.value);
    for (const result of operation.results ?? []) if (result.op === 'get') add(result.key, result.value);
  }
  return observed;
}

/**
 * A put, cas or transaction that writes no delete, no put with a TTL, no observed value and no key
 * some operation could tell by (a read-only transaction writes nothing at all).
 */
function writesOnlyUnobserved(operation: Operation, observed: ReadonlySet<string>, telling: ReadonlySet<string>): boolean {
  if (operation.type === 'get' || operation.type === 'delete') return false;
  return possibleWrites(operation).every(
    (write) => !mayRemove(write) && !telling.has(write.key) && !observed.has(`${write.key}\u0000${write.value ?? ''}`),
  );
}
