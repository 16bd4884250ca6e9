/**
 * Safety checks run after every Ready of every replica in a simulation:
 * election safety, log matching, leader completeness, state-machine safety
 * (Raft §5.4 Figure 3), and linearizable ReadIndex answers.
 */
import type { Entry, Ready, Snapshot } from '../../../src/raft/index.js';
import { chainDigest, type ReadyObserver, type TestReplica } from './replica.js';

/** A broken safety property; the message names the seed. */
export class SafetyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyViolation';
  }
}

interface LogRecord {
  hash: number;
  prevTerm: number;
}

export class SafetyChecker implements ReadyObserver {
  /** term → the one leader of that term (election safety, §5.2). */
  private readonly leaderOfTerm = new Map<number, number>();
  /** index → term → what an entry of that (index, term) holds (log matching, §5.3). */
  private readonly logRecords = new Map<number, Map<number, LogRecord>>();
  /** index → hash of the entry applied there (state-machine safety, §5.4.3). */
  private readonly appliedHash: number[] = [];
  /** index → term of the committed entry (leader completeness, §5.4). */
  private readonly committedTerm: number[] = [];
  /** index → state-machine digest after applying it. */
  private readonly digestAt: number[] = [];
  /** Highest index any replica reported as committed. */
  maxCommitted = 0;
  /** Steps checked, for reporting. */
  checks = 0;

  constructor(private readonly label: string) {}

  private fail(message: string): never {
    throw new SafetyViolation(`${this.label}: ${message}`);
  }

  onReady(replica: TestReplica, ready: Ready): void {
    this.checks++;
    if (ready.hardState !== undefined && ready.hardState.commit > this.maxCommitted) this.maxCommitted = ready.hardState.commit;
    if (replica.node.isLeader()) {
      const term = replica.node.term();
      const existing = this.leaderOfTerm.get(term);
      if (existing === undefined) {
        this.leaderOfTerm.set(term, replica.id);
        this.checkLeaderCompleteness(replica, term);
      } else if (existing !== replica.id) {
        this.fail(`election safety: replicas ${existing} and ${replica.id} both lead term ${term}`);
      }
    }
    const storage = replica.storage;
    for (const entry of ready.entries) {
      const prevTerm = storage.term(entry.index - 1);
      if (!prevTerm.ok) this.fail(`replica ${replica.id}: no term before appended index ${entry.index}`);
      const hash = chainDigest(0, entry);
      let byTerm = this.logRecords.get(entry.index);
      if (byTerm === undefined) {
        byTerm = new Map();
        this.logRecords.set(entry.index, byTerm);
      }
      const record = byTerm.get(entry.term);
      if (record === undefined) {
        byTerm.set(entry.term, { hash, prevTerm: prevTerm.value });
      } else if (record.hash !== hash || record.prevTerm !== prevTerm.value) {
        this.fail(
          `log matching: replica ${replica.id} index ${entry.index} term ${entry.term} differs ` +
            `(prev term ${prevTerm.value} vs ${record.prevTerm})`,
        );
      }
    }
    for (const readState of ready.readStates) this.onReadState?.(replica, readState.index, readState.context);
  }

  /** Set by the simulation to check read answers. */
  onReadState: ((replica: TestReplica, index: number, context: Uint8Array) => void) | undefined;

  private checkLeaderCompleteness(replica: TestReplica, term: number): void {
    const storage = replica.storage;
    const lastIndex = storage.lastIndex();
    const committedLast = this.committedTerm.length - 1;
    if (committedLast > lastIndex) {
      this.fail(`leader completeness: leader ${replica.id} of term ${term} ends at ${lastIndex}, committed ${committedLast}`);
    }
    for (let index = Math.max(1, storage.firstIndex()); index <= committedLast; index++) {
      const expected = this.committedTerm[index];
      if (expected === undefined) continue;
      const actual = storage.term(index);
      if (!actual.ok || actual.value !== expected) {
        this.fail(`leader completeness: leader ${replica.id} of term ${term} lacks committed index ${index} (term ${expected})`);
      }
    }
  }

  onApply(replica: TestReplica, entry: Entry): void {
    const hash = chainDigest(0, entry);
    const known = this.appliedHash[entry.index];
    if (known === undefined) {
      this.appliedHash[entry.index] = hash;
      this.committedTerm[entry.index] = entry.term;
    } else if (known !== hash) {
      this.fail(`state-machine safety: replica ${replica.id} applied a different entry at index ${entry.index}`);
    }
    const digest = this.digestAt[entry.index];
    if (digest === undefined) this.digestAt[entry.index] = replica.digest;
    else if (digest !== replica.digest) {
      this.fail(`state-machine safety: replica ${replica.id} state after index ${entry.index} differs`);
    }
    if (entry.index > this.maxCommitted) this.maxCommitted = entry.index;
  }

  onSnapshotApplied(replica: TestReplica, snapshot: Snapshot): void {
    const digest = this.digestAt[snapshot.metadata.index];
    if (digest !== undefined && digest !== replica.digest) {
      this.fail(`state-machine safety: replica ${replica.id} restored a snapshot at ${snapshot.metadata.index} that differs`);
    }
  }

  /** Leaders seen, for reporting. */
  get terms(): number {
    return this.leaderOfTerm.size;
  }
}
