/**
 * `npm run bench:raft`: throughput and commit latency of one 3-member Raft
 * group over an in-process transport, proposing 128-byte entries with 256 in
 * flight — first with MemoryStorage, then with the durable WAL on a temp dir
 * (one Wal per member, as one per node; group commit: each member's turn
 * persists its Ready, does one `wal.sync()`, then sends and advances).
 *
 * Latency is from `propose()` on the leader to the entry being applied there.
 * Env: BENCH_MEMORY_PROPOSALS (default 200000), BENCH_DURABLE_PROPOSALS
 * (default 50000), BENCH_INFLIGHT (default 256), BENCH_ENTRY_BYTES (default 128).
 */
import hdr from 'hdr-histogram-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  EntryType,
  MemoryStorage,
  RawNode,
  SeededRandom,
  Wal,
  type ConfState,
  type Message,
  type Ready,
  type WritableStorage,
} from '../../src/raft/index.js';

const MEMBERS = [1, 2, 3];
const CONF_STATE: ConfState = { voters: MEMBERS, learners: [] };

function envNumber(name: string, fallback: number): number {
  const value = process.env[name];
  return value === undefined ? fallback : Number(value);
}

/** Entries applied between snapshots, and entries kept before a snapshot for lagging followers. */
const COMPACT_EVERY = 20_000;
const COMPACT_MARGIN = 4_096;
const INFLIGHT = envNumber('BENCH_INFLIGHT', 256);
const ENTRY_BYTES = envNumber('BENCH_ENTRY_BYTES', 128);

/** One member: its core, storage, optional WAL and inbox. */
interface Member {
  id: number;
  node: RawNode;
  storage: WritableStorage;
  wal: Wal | undefined;
  inbox: Message[];
  /** Resolves the member's wait for work (durable mode). */
  wake: (() => void) | undefined;
}

/** What a run measured. */
interface RunResult {
  proposals: number;
  seconds: number;
  /** CPU seconds (user + system) the process used: on a shared machine, wall time alone misleads. */
  cpuSeconds: number;
  histogram: hdr.Histogram;
}

class Group {
  readonly members = new Map<number, Member>();
  private readonly proposedAt = new Map<number, number>();
  /** Proposal payloads are views into pooled chunks (as Node's Buffer pool does), one per entry. */
  private pool = new Uint8Array(0);
  private poolOffset = 0;
  readonly histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  private proposed = 0;
  committed = 0;
  private onDone: (() => void) | undefined;

  constructor(
    storages: Map<number, { storage: WritableStorage; wal: Wal | undefined }>,
    private readonly target: number,
  ) {
    for (const id of MEMBERS) {
      const { storage, wal } = storages.get(id) as { storage: WritableStorage; wal: Wal | undefined };
      const node = new RawNode({ id, storage, random: new SeededRandom(id), electionTick: 10, heartbeatTick: 1, maxInflightMsgs: 256 });
      this.members.set(id, { id, node, storage, wal, inbox: [], wake: undefined });
    }
  }

  get done(): boolean {
    return this.committed >= this.target;
  }

  /** Resolves once `target` proposals have been applied on the leader. */
  finished(): Promise<void> {
    return new Promise((resolve) => {
      this.onDone = resolve;
      if (this.done) resolve();
    });
  }

  /** Steps the inbox, tops up proposals, and persists (unsynced) the next Ready, if any. */
  collect(member: Member): Ready | undefined {
    const inbox = member.inbox;
    if (inbox.length > 0) {
      member.inbox = [];
      for (const message of inbox) member.node.step(message);
    }
    if (member.node.isLeader()) this.propose(member);
    if (!member.node.hasReady()) return undefined;
    const ready = member.node.ready();
    if (ready.snapshot !== undefined) member.storage.applySnapshot(ready.snapshot);
    if (ready.entries.length > 0) member.storage.append(ready.entries);
    if (ready.hardState !== undefined) member.storage.setHardState(ready.hardState);
    return ready;
  }

  /** After the Ready is durable: send, apply, advance. */
  finish(member: Member, ready: Ready): void {
    for (const message of ready.messages) {
      const to = this.members.get(message.to);
      if (to === undefined) continue;
      to.inbox.push(message);
      if (to.wake !== undefined) {
        const wake = to.wake;
        to.wake = undefined;
        wake();
      }
    }
    if (ready.committedEntries.length > 0 && member.node.isLeader()) {
      const now = performance.now();
      for (const entry of ready.committedEntries) {
        if (entry.type !== EntryType.Normal || entry.data.length === 0) continue;
        const start = this.proposedAt.get(entry.index);
        if (start === undefined) continue;
        this.proposedAt.delete(entry.index);
        this.histogram.recordValue(Math.max(1, Math.round((now - start) * 1000)));
        this.committed++;
      }
      if (this.done) this.onDone?.();
    }
    const lastApplied = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastApplied !== undefined) this.maybeCompact(member, lastApplied.index);
    member.node.advance(ready);
  }

  /**
   * Like a node does: every COMPACT_EVERY applied entries, snapshot (empty data:
   * the bench has no state machine) and drop old entries, keeping a margin for
   * followers that are behind, so memory (and GC) stays bounded.
   */
  private maybeCompact(member: Member, applied: number): void {
    const snapshot = member.storage.snapshot();
    if (!snapshot.ok || applied - snapshot.value.metadata.index < COMPACT_EVERY) return;
    member.storage.createSnapshot(applied, CONF_STATE, new Uint8Array(0));
    member.storage.compact(applied - COMPACT_MARGIN);
  }

  private propose(leader: Member): void {
    const now = performance.now();
    while (this.proposedAt.size < INFLIGHT && this.proposed < this.target) {
      const result = leader.node.propose(this.nextPayload());
      if (!result.ok) return;
      this.proposedAt.set(result.index, now);
      this.proposed++;
    }
  }

  private nextPayload(): Uint8Array {
    if (this.poolOffset + ENTRY_BYTES > this.pool.length) {
      this.pool = new Uint8Array(Math.max(ENTRY_BYTES, 64 * 1024)).fill(0x61);
      this.poolOffset = 0;
    }
    const payload = this.pool.subarray(this.poolOffset, this.poolOffset + ENTRY_BYTES);
    this.poolOffset += ENTRY_BYTES;
    return payload;
  }

  /** Elects member 1 (no ticks needed: it campaigns at once). */
  campaign(): void {
    (this.members.get(1) as Member).node.campaign();
  }
}

/** In memory: one synchronous round-robin over the members until done. */
function runMemory(target: number): RunResult {
  const storages = new Map<number, { storage: WritableStorage; wal: Wal | undefined }>(
    MEMBERS.map((id) => [id, { storage: new MemoryStorage({ confState: CONF_STATE }), wal: undefined }]),
  );
  const group = new Group(storages, target);
  group.campaign();
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  let idleRounds = 0;
  while (!group.done) {
    let worked = false;
    for (const member of group.members.values()) {
      const ready = group.collect(member);
      if (ready === undefined) continue;
      worked = true;
      group.finish(member, ready);
    }
    idleRounds = worked ? 0 : idleRounds + 1;
    if (idleRounds > 3) throw new Error(`memory run stalled at ${group.committed} commits`);
  }
  const seconds = (performance.now() - start) / 1000;
  return { proposals: group.committed, seconds, cpuSeconds: cpuSecondsSince(cpuStart), histogram: group.histogram };
}

/** Durable: each member is its own loop (as on its own node), awaiting its WAL's sync per turn. */
async function runDurable(target: number, dir: string): Promise<RunResult> {
  const storages = new Map<number, { storage: WritableStorage; wal: Wal | undefined }>();
  for (const id of MEMBERS) {
    const wal = await Wal.open(join(dir, `n${id}`));
    storages.set(id, { storage: wal.openGroup(1, { confState: CONF_STATE }), wal });
  }
  for (const { wal } of storages.values()) await wal?.sync();
  const group = new Group(storages, target);
  const finished = group.finished();
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  group.campaign();
  const loop = async (member: Member): Promise<void> => {
    while (!group.done) {
      const ready = group.collect(member);
      if (ready === undefined) {
        await new Promise<void>((resolve) => {
          member.wake = resolve;
        });
        continue;
      }
      if (ready.mustSync) await member.wal?.sync();
      group.finish(member, ready);
    }
  };
  const loops = [...group.members.values()].map((member) => loop(member));
  let lastCommitted = -1;
  let stallTimer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    stallTimer = setInterval(() => {
      if (group.committed === lastCommitted) reject(new Error(`durable run stalled at ${group.committed} commits`));
      lastCommitted = group.committed;
    }, 10_000);
  });
  try {
    await Promise.race([finished, Promise.all(loops), stalled]);
  } finally {
    clearInterval(stallTimer);
  }
  const seconds = (performance.now() - start) / 1000;
  const cpuSeconds = cpuSecondsSince(cpuStart);
  for (const member of group.members.values()) member.wake?.();
  await Promise.all(loops);
  for (const member of group.members.values()) await member.wal?.close();
  return { proposals: group.committed, seconds, cpuSeconds, histogram: group.histogram };
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

function report(label: string, result: RunResult): void {
  const rate = Math.round(result.proposals / result.seconds);
  const p50 = result.histogram.getValueAtPercentile(50) / 1000;
  const p99 = result.histogram.getValueAtPercentile(99) / 1000;
  console.log(
    `${label}: ${rate} proposals/s (${result.proposals} in ${result.seconds.toFixed(2)} s, ` +
      `${Math.round(result.proposals / result.cpuSeconds)} per CPU-second), ` +
      `commit latency p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`,
  );
}

async function main(): Promise<void> {
  console.log(`raft bench: 3 members, ${ENTRY_BYTES}-byte entries, ${INFLIGHT} in flight`);
  report('memory ', runMemory(envNumber('BENCH_MEMORY_PROPOSALS', 200_000)));
  const dir = await mkdtemp(join(tmpdir(), 'kvstore-raft-bench-'));
  try {
    report('durable', await runDurable(envNumber('BENCH_DURABLE_PROPOSALS', 50_000), dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
