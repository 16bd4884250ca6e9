/**
 * A test replica: a RawNode over MemoryStorage with a tiny state machine (a
 * hash chain of applied entries), driven through the Ready contract exactly as
 * a host would: persist, send, apply, advance.
 */
import {
  EntryType,
  MemoryStorage,
  RawNode,
  SeededRandom,
  decodeConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type RaftLogger,
  type ReadState,
  type Ready,
  type ReplicaId,
  type Snapshot,
} from '../../../src/raft/index.js';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Options shared by every replica of a test group. */
export interface ReplicaOptions {
  electionTick?: number;
  heartbeatTick?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  piggyback?: boolean;
  maxSizePerMsg?: number;
  maxInflightMsgs?: number;
  maxUncommittedEntriesBytes?: number;
  /** Take a snapshot and compact every this many applied entries (0 = never). */
  snapshotEvery?: number;
  /** Entries kept behind a compaction point. */
  compactMargin?: number;
  logger?: RaftLogger;
}

/** Called by {@link TestReplica.processReady} so checkers see every step. */
export interface ReadyObserver {
  /** Right after `ready()`: what the node hands out, before anything is persisted or sent. */
  onReadyTaken?(replica: TestReplica, ready: Ready): void;
  /** After the Ready is persisted. */
  onReady?(replica: TestReplica, ready: Ready): void;
  onApply?(replica: TestReplica, entry: Entry): void;
  onSnapshotApplied?(replica: TestReplica, snapshot: Snapshot): void;
  /** After `advance()` (and any compaction): the end of the replica's turn. */
  onAdvanced?(replica: TestReplica): void;
}

/** Several observers as one, called in order. */
export function observeAll(...observers: ReadyObserver[]): ReadyObserver {
  return {
    onReadyTaken: (replica, ready) => observers.forEach((o) => o.onReadyTaken?.(replica, ready)),
    onReady: (replica, ready) => observers.forEach((o) => o.onReady?.(replica, ready)),
    onApply: (replica, entry) => observers.forEach((o) => o.onApply?.(replica, entry)),
    onSnapshotApplied: (replica, snapshot) => observers.forEach((o) => o.onSnapshotApplied?.(replica, snapshot)),
    onAdvanced: (replica) => observers.forEach((o) => o.onAdvanced?.(replica)),
  };
}

/**
 * How a leader sends before it persists, as the storage node's host does with a leader's
 * Ready (Raft thesis §10.2.1, DESIGN.md §3): its messages leave BEFORE its entries are
 * durable. Its term and vote are still persisted first: every message carries the term.
 */
export interface EarlySend {
  /** Hands the leader's messages to the network. */
  send(messages: Message[]): void;
  /**
   * Called after the send and before the entries are persisted: returning true is a
   * power cut there (the replica is down, its entries and commit index never written).
   */
  powerCut(ready: Ready): boolean;
}

/** FNV-1a over the previous digest and an entry: the state machine's state. */
export function chainDigest(previous: number, entry: Entry): number {
  let hash = (previous ^ 0x811c9dc5) >>> 0;
  const mix = (byte: number): void => {
    hash ^= byte & 0xff;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  };
  for (const value of [entry.index, entry.term, entry.type]) {
    mix(value);
    mix(value >>> 8);
    mix(value >>> 16);
    mix(value >>> 24);
  }
  for (const byte of entry.data) mix(byte);
  return hash >>> 0;
}

/** The data of an entry as text (proposals in tests are UTF-8). */
export function entryText(entry: Entry): string {
  return entry.type === EntryType.ConfChange ? `conf:${Array.from(entry.data).join(',')}` : decoder.decode(entry.data);
}

export const utf8 = (text: string): Uint8Array => encoder.encode(text);

interface StateMachineImage {
  index: number;
  digest: number;
  texts: string[];
}

/** One replica; `crash()` + `restart()` keep only what was persisted. */
export class TestReplica {
  node: RawNode;
  storage: MemoryStorage;
  confState: ConfState;
  appliedIndex: number;
  digest: number;
  /** Applied normal entries' texts, in order (the test's "database"). */
  texts: string[];
  readStates: ReadState[] = [];
  alive = true;
  private restarts = 0;

  constructor(
    readonly id: ReplicaId,
    storage: MemoryStorage,
    private readonly options: ReplicaOptions,
    private readonly seed: number,
  ) {
    this.storage = storage;
    const image = this.loadImage();
    this.appliedIndex = image.index;
    this.digest = image.digest;
    this.texts = image.texts;
    this.confState = storage.initialState().confState;
    this.node = this.createNode();
  }

  private loadImage(): StateMachineImage {
    const snapshot = this.storage.snapshot();
    if (!snapshot.ok || snapshot.value.data.length === 0) {
      return { index: snapshot.ok ? snapshot.value.metadata.index : 0, digest: 0, texts: [] };
    }
    return JSON.parse(decoder.decode(snapshot.value.data)) as StateMachineImage;
  }

  private createNode(): RawNode {
    const o = this.options;
    return new RawNode({
      id: this.id,
      storage: this.storage,
      electionTick: o.electionTick ?? 10,
      heartbeatTick: o.heartbeatTick ?? 1,
      applied: this.appliedIndex,
      maxSizePerMsg: o.maxSizePerMsg ?? 1024 * 1024,
      maxInflightMsgs: o.maxInflightMsgs ?? 256,
      ...(o.maxUncommittedEntriesBytes === undefined ? {} : { maxUncommittedEntriesBytes: o.maxUncommittedEntriesBytes }),
      preVote: o.preVote ?? true,
      checkQuorum: o.checkQuorum ?? true,
      piggyback: o.piggyback ?? false,
      random: new SeededRandom(this.seed * 7919 + this.id * 104729 + this.restarts * 15485863),
      ...(o.logger === undefined ? {} : { logger: o.logger }),
    });
  }

  /** Loses everything not persisted: the node restarts from a copy of its storage. */
  crash(): void {
    this.alive = false;
  }

  restart(): void {
    this.restarts++;
    this.storage = this.storage.clone();
    const image = this.loadImage();
    this.appliedIndex = image.index;
    this.digest = image.digest;
    this.texts = image.texts;
    this.confState = this.storage.initialState().confState;
    this.readStates = [];
    this.node = this.createNode();
    this.alive = true;
  }

  /**
   * Runs one Ready through the contract and returns its messages (to be sent).
   * Returns an empty list when there is nothing to do. With `early`, a leader's Ready
   * (one without a snapshot) is sent through it before its entries are persisted, and
   * the returned list is empty.
   */
  processReady(observer?: ReadyObserver, early?: EarlySend): Message[] {
    if (!this.alive || !this.node.hasReady()) return [];
    const ready = this.node.ready();
    observer?.onReadyTaken?.(this, ready);
    const sendEarly = early !== undefined && ready.snapshot === undefined && this.node.isLeader();
    if (sendEarly) {
      this.persistTermAndVote(ready.hardState);
      early.send(ready.messages);
      if (early.powerCut(ready)) {
        this.crash();
        return [];
      }
    }
    // 1. Persist.
    if (ready.snapshot !== undefined) this.storage.applySnapshot(ready.snapshot);
    if (ready.entries.length > 0) this.storage.append(ready.entries);
    if (ready.hardState !== undefined) this.storage.setHardState(ready.hardState);
    observer?.onReady?.(this, ready);
    // 3. Apply (messages are handed back for sending: step 2).
    if (ready.snapshot !== undefined) {
      // The bootstrap snapshot (index 0, sent to initialize a new replica) has no data: an empty state machine.
      const image: StateMachineImage =
        ready.snapshot.data.length === 0
          ? { index: 0, digest: 0, texts: [] }
          : (JSON.parse(decoder.decode(ready.snapshot.data)) as StateMachineImage);
      this.appliedIndex = ready.snapshot.metadata.index;
      this.digest = image.digest;
      this.texts = [...image.texts];
      this.confState = ready.snapshot.metadata.confState;
      observer?.onSnapshotApplied?.(this, ready.snapshot);
    }
    for (const entry of ready.committedEntries) {
      if (entry.type === EntryType.ConfChange) {
        this.confState = this.node.applyConfChange(decodeConfChange(entry.data));
      } else if (entry.data.length > 0) {
        this.texts.push(decoder.decode(entry.data));
      }
      this.digest = chainDigest(this.digest, entry);
      this.appliedIndex = entry.index;
      observer?.onApply?.(this, entry);
    }
    for (const readState of ready.readStates) this.readStates.push(readState);
    this.node.advance(ready);
    this.maybeCompact();
    observer?.onAdvanced?.(this);
    return sendEarly ? [] : ready.messages;
  }

  /**
   * Before an early send: a new term or vote is made durable first (the messages carry
   * the term; a vote must never be forgotten). The commit index waits for the entries:
   * persisted alone it could point past the durable log.
   */
  private persistTermAndVote(hardState: HardState | undefined): void {
    if (hardState === undefined) return;
    const stored = this.storage.initialState().hardState;
    if (hardState.term === stored.term && hardState.vote === stored.vote) return;
    this.storage.setHardState({ term: hardState.term, vote: hardState.vote, commit: stored.commit });
  }

  private maybeCompact(): void {
    const every = this.options.snapshotEvery ?? 0;
    if (every <= 0) return;
    const snapshot = this.storage.snapshot();
    const snapshotIndex = snapshot.ok ? snapshot.value.metadata.index : 0;
    if (this.appliedIndex - snapshotIndex < every) return;
    const image: StateMachineImage = { index: this.appliedIndex, digest: this.digest, texts: this.texts };
    this.storage.createSnapshot(this.appliedIndex, this.confState, utf8(JSON.stringify(image)));
    const compactTo = this.appliedIndex - (this.options.compactMargin ?? 0);
    if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
  }
}
