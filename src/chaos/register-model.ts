/**
 * The sequential specification one key must meet: a register with get, put and compare-and-set on
 * versions. The state is the value last written (null = absent), named by its unique value. (Keys
 * that transactions tie together are one object of several such registers: object-model.ts.)
 *
 * A version is the Raft index of the write that produced the value, so the model cannot predict it;
 * it learns the value ↔ version pairs the history observed (reads return both, a successful cas
 * returns its new version) and uses them to decide whether a cas's expected version matched. A
 * version the history never tied to a value can only belong to a value whose version was never
 * observed, so the model lets it match any such value (permissive, never a false alarm).
 */
import type { Operation, TxnOperation } from './history.js';

/** The register's state: the current value, or null when the key is absent. */
export type RegisterState = string | null;

/** Why a history cannot be checked at all: the observations contradict each other before any ordering. */
export interface VersionContradiction {
  reason: string;
  /** The operations that disagree. */
  operationIds: number[];
}

/** A value some operation saw on a key, with the version it had. */
export interface VersionObservation {
  key: string;
  value: string;
  version: number;
}

/**
 * The value ↔ version pairs an operation observed: a successful read of a present key, a
 * successful cas, and a transaction's put results (the value it put, at the version it got) and
 * get results.
 */
export function versionObservations(operation: Operation): VersionObservation[] {
  if (operation.type === 'get' && operation.status === 'ok' && typeof operation.value === 'string' && operation.version !== undefined) {
    return [{ key: operation.key, value: operation.value, version: operation.version }];
  }
  if (operation.type === 'cas' && operation.status === 'ok' && operation.version !== undefined) {
    return [{ key: operation.key, value: operation.value, version: operation.version }];
  }
  if (operation.type !== 'txn' || operation.status !== 'ok' || operation.succeeded === undefined) return [];
  const branch = operation.succeeded ? operation.success : operation.failure;
  const observations: VersionObservation[] = [];
  (operation.results ?? []).forEach((result, i) => {
    const step = branch[i];
    if (result.op === 'put' && step?.op === 'put') observations.push({ key: step.key, value: step.value, version: result.version });
    if (result.op === 'get' && result.value !== null) observations.push({ key: result.key, value: result.value, version: result.version });
  });
  return observations;
}

/**
 * The value ↔ version pairs one key's history observed. Built once per key before the search.
 */
export class VersionKnowledge {
  private readonly versionOfValue = new Map<string, number>();
  private readonly valueOfVersion = new Map<number, string>();
  private readonly sourceOfValue = new Map<string, number>();

  /**
   * Learns what `operations` observed about `key` (every successful read, cas, and transaction
   * result on it); returns the first contradiction, if any.
   */
  static learn(operations: readonly Operation[], key: string): { knowledge: VersionKnowledge; contradiction?: VersionContradiction } {
    const knowledge = new VersionKnowledge();
    for (const operation of operations) {
      for (const observation of versionObservations(operation)) {
        if (observation.key !== key) continue;
        const contradiction = knowledge.add(observation.value, observation.version, operation.id);
        if (contradiction !== undefined) return { knowledge, contradiction };
      }
    }
    return { knowledge };
  }

  private add(value: string, version: number, operationId: number): VersionContradiction | undefined {
    const knownVersion = this.versionOfValue.get(value);
    if (knownVersion !== undefined && knownVersion !== version) {
      return {
        reason: `value "${value}" was observed at two versions, v${knownVersion} and v${version}: one write applied twice`,
        operationIds: [this.sourceOfValue.get(value) ?? -1, operationId],
      };
    }
    const knownValue = this.valueOfVersion.get(version);
    if (knownValue !== undefined && knownValue !== value) {
      return {
        reason: `version v${version} was observed holding two values, "${knownValue}" and "${value}"`,
        operationIds: [this.sourceOfValue.get(knownValue) ?? -1, operationId],
      };
    }
    if (version === 0) {
      return { reason: `value "${value}" was observed at version 0, which means absent`, operationIds: [operationId] };
    }
    this.versionOfValue.set(value, version);
    this.valueOfVersion.set(version, value);
    this.sourceOfValue.set(value, operationId);
    return undefined;
  }

  /** The value a version was observed with, if any. */
  valueAt(version: number): string | undefined {
    return this.valueOfVersion.get(version);
  }

  /** Whether the value's version was observed. */
  hasVersion(value: string): boolean {
    return this.versionOfValue.has(value);
  }

  /** Every value some operation observed (read, or named by a known version). */
  observedValues(): Set<string> {
    return new Set(this.versionOfValue.keys());
  }

  /**
   * Whether the state's version may be `version`. Exact when the version or the state's version is
   * known; when neither is, any value with an unobserved version may match.
   */
  mayMatch(state: RegisterState, version: number): boolean {
    if (version === 0) return state === null;
    const value = this.valueOfVersion.get(version);
    if (value !== undefined) return state === value;
    return state !== null && !this.versionOfValue.has(state);
  }

  /** Whether the state's version is certainly `version`. */
  surelyMatches(state: RegisterState, version: number): boolean {
    if (version === 0) return state === null;
    const value = this.valueOfVersion.get(version);
    return value !== undefined && state === value;
  }

  /** Whether the version is tied to a value (or is 0): a cas naming it is fully determined. */
  isKnown(version: number): boolean {
    return version === 0 || this.valueOfVersion.has(version);
  }
}

/**
 * Applies one operation to the register: the next state, or undefined when the operation's observed
 * result is impossible in `state`. An indeterminate write is applied as if it took effect (the
 * search decides whether it did).
 */
export function stepRegister(state: RegisterState, operation: Exclude<Operation, TxnOperation>, knowledge: VersionKnowledge): RegisterState | undefined {
  switch (operation.type) {
    case 'get':
      return (operation.value ?? null) === state ? state : undefined;
    case 'put':
      return operation.value;
    case 'delete':
      if (operation.status === 'ok' && operation.existed !== undefined && operation.existed !== (state !== null)) return undefined;
      return null;
    case 'cas':
      if (operation.status === 'conflict') {
        if (knowledge.surelyMatches(state, operation.expectedVersion)) return undefined;
        if (operation.currentVersion !== undefined && !knowledge.mayMatch(state, operation.currentVersion)) return undefined;
        return state;
      }
      return knowledge.mayMatch(state, operation.expectedVersion) ? operation.value : undefined;
  }
}
