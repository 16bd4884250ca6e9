/**
 * The sequential specification of one object: the keys that transactions tie together, each a
 * register (register-model.ts), changed by single-key operations one key at a time and by
 * transactions atomically (issue 18). A transaction is one operation on the object: its compares
 * are evaluated against the state, the branch they pick runs in order, and a recorded outcome
 * must be the one that state gives — the branch that ran, every get's value, every delete's
 * "existed". A get inside a branch sees the branch's own earlier puts and deletes, as on the node.
 *
 * Versions stay per key, learned from what the history observed (reads, cas results, a
 * transaction's put and get results), and a version compare is decided the way a cas is: exactly
 * when the version is tied to a value, permissively when it is not. All of one transaction's puts
 * get one version (its Raft index); the model does not use that, which only makes it more
 * permissive, never a false alarm.
 *
 * A key whose current value was written with a TTL may also expire (expiry.ts): {@link
 * ObjectModel.expirations} gives the states where it has, once the search's time is past that
 * write's earliest expiry. An expired key is simply absent, so the state — and the search's memo
 * of it — records whether the expiry happened, and forgets it once the key is written again.
 * The keys of one transaction's TTL puts expire in one log entry on the node; the model lets each
 * expire on its own, which again only makes it more permissive.
 */
import { earliestExpiries } from './expiry.js';
import { isIndeterminate, type Operation, type TxnCompareRecord, type TxnOperation, type TxnStep, type TxnStepResult } from './history.js';
import { stepRegister, VersionKnowledge, type RegisterState, type VersionContradiction } from './register-model.js';

/** The object's state: each key's value in the order of {@link ObjectModel.keys}, null when absent. */
export type ObjectState = readonly RegisterState[];

/** Whether a compare holds in a state: `maybe` when it names a version the history never tied to a value. */
type Truth = 'holds' | 'fails' | 'maybe';

/** The keys of one object, what the history observed about their versions, and the step function. */
export class ObjectModel {
  private readonly indexOfKey = new Map<string, number>();
  /** Values named by small integers, so a state encodes short for the search's memo. */
  private readonly valueIds = new Map<string, number>();

  private constructor(
    /** The object's keys, in state order. */
    readonly keys: readonly string[],
    private readonly knowledge: readonly VersionKnowledge[],
    /** Per key (state order): each value written with a TTL and its earliest expiry time. */
    private readonly expiries: readonly ReadonlyMap<string, number>[],
  ) {
    keys.forEach((key, index) => this.indexOfKey.set(key, index));
  }

  /**
   * Learns every key's value ↔ version pairs, and the earliest expiry of every value written with
   * a TTL, from `operations`; the first contradiction, if any, instead.
   */
  static build(keys: readonly string[], operations: readonly Operation[]): { model: ObjectModel } | { contradiction: VersionContradiction } {
    const knowledge: VersionKnowledge[] = [];
    for (const key of keys) {
      const learned = VersionKnowledge.learn(operations, key);
      if (learned.contradiction !== undefined) return { contradiction: learned.contradiction };
      knowledge.push(learned.knowledge);
    }
    const expiries = earliestExpiries(operations);
    return { model: new ObjectModel(keys, knowledge, keys.map((key) => expiries.get(key) ?? new Map<string, number>())) };
  }

  /**
   * The states reachable from `state` by one expiry at time `atMs` (history ms): for each key whose
   * value was written with a TTL whose earliest expiry is at or before `atMs`, the state with that
   * key absent. Only the write whose value is current can expire: one overwritten since cannot.
   */
  expirations(state: ObjectState, atMs: number): ObjectState[] {
    const nexts: ObjectState[] = [];
    state.forEach((value, index) => {
      if (value === null) return;
      const earliestMs = this.expiries[index]?.get(value);
      if (earliestMs === undefined || earliestMs > atMs) return;
      const next = [...state];
      next[index] = null;
      nexts.push(next);
    });
    return nexts;
  }

  /** Every key absent. */
  initialState(): ObjectState {
    return this.keys.map(() => null);
  }

  /** What the history observed about `key`'s versions. */
  knowledgeOf(key: string): VersionKnowledge {
    return this.knowledge[this.indexOf(key)] as VersionKnowledge;
  }

  /**
   * The states `operation` may leave when applied in `state`; empty when its recorded result is
   * impossible there. A determinate operation has at most one. An indeterminate transaction may
   * have two (a compare on an untied version may go either way), and a branch that would change
   * nothing is left out: taking effect without effect is the same as never taking effect.
   */
  step(state: ObjectState, operation: Operation): ObjectState[] {
    if (operation.type === 'txn') return this.stepTxn(state, operation);
    const index = this.indexOf(operation.key);
    const next = stepRegister(state[index] ?? null, operation, this.knowledge[index] as VersionKnowledge);
    if (next === undefined) return [];
    if (next === state[index]) return [state];
    const copy = [...state];
    copy[index] = next;
    return [copy];
  }

  /** A short string naming the state, for the search's memo. */
  encode(state: ObjectState): string {
    let text = '';
    for (const value of state) {
      if (value === null) {
        text += '-,';
        continue;
      }
      let id = this.valueIds.get(value);
      if (id === undefined) {
        id = this.valueIds.size;
        this.valueIds.set(value, id);
      }
      text += `${id},`;
    }
    return text;
  }

  private stepTxn(state: ObjectState, operation: TxnOperation): ObjectState[] {
    const truths = operation.compare.map((compare) => this.truth(state, compare));
    const mayHold = truths.every((truth) => truth !== 'fails');
    const mayFail = truths.some((truth) => truth !== 'holds');
    if (!isIndeterminate(operation)) {
      if (operation.succeeded === undefined || !(operation.succeeded ? mayHold : mayFail)) return [];
      const next = this.runBranch(state, operation.succeeded ? operation.success : operation.failure, operation.results ?? []);
      return next === undefined ? [] : [next];
    }
    const nexts: ObjectState[] = [];
    for (const [possible, branch] of [[mayHold, operation.success], [mayFail, operation.failure]] as const) {
      if (!possible) continue;
      const next = this.runBranch(state, branch, undefined);
      if (next !== undefined && !sameState(next, state) && !nexts.some((other) => sameState(other, next))) nexts.push(next);
    }
    return nexts;
  }

  private truth(state: ObjectState, compare: TxnCompareRecord): Truth {
    const index = this.indexOf(compare.key);
    const current = state[index] ?? null;
    if ('value' in compare) return current === compare.value ? 'holds' : 'fails';
    if ('exists' in compare) return (current !== null) === compare.exists ? 'holds' : 'fails';
    const knowledge = this.knowledge[index] as VersionKnowledge;
    if (knowledge.surelyMatches(current, compare.version)) return 'holds';
    return knowledge.mayMatch(current, compare.version) ? 'maybe' : 'fails';
  }

  /**
   * Runs a branch's steps in order on a copy of `state`. With `results` (a known outcome) each
   * get must have read what the state held then and each delete must have found what was there;
   * undefined when one did not.
   */
  private runBranch(state: ObjectState, branch: readonly TxnStep[], results: readonly TxnStepResult[] | undefined): ObjectState | undefined {
    if (results !== undefined && results.length !== branch.length) return undefined;
    const next = [...state];
    for (const [i, step] of branch.entries()) {
      const index = this.indexOf(step.key);
      const result = results?.[i];
      if (result !== undefined && (result.op !== step.op || result.key !== step.key)) return undefined;
      switch (step.op) {
        case 'put':
          next[index] = step.value;
          break;
        case 'delete':
          if (result?.op === 'delete' && result.existed !== (next[index] !== null)) return undefined;
          next[index] = null;
          break;
        case 'get':
          if (result?.op === 'get' && result.value !== next[index]) return undefined;
          break;
      }
    }
    return next;
  }

  private indexOf(key: string): number {
    const index = this.indexOfKey.get(key);
    if (index === undefined) throw new Error(`key ${key} is not part of the object ${this.keys.join('+')}`);
    return index;
  }
}

function sameState(a: ObjectState, b: ObjectState): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}
