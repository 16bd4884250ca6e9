/**
 * The WAL on the simulated disk (test/sim/sim-disk.ts) under random workloads,
 * crashed at random points: SIGKILLs and power losses between any two disk
 * operations, so also in the middle of a flush, a segment roll, garbage
 * collection, or recovery itself. Every seed runs several crash-and-recover
 * rounds on one disk. `SEED=n` replays one seed, `WAL_SEEDS=n` runs more;
 * a failure names its seed.
 */
import { expect } from 'chai';
import { RawNode, SeededRandom, type RaftLogger } from '../../../src/raft/index.js';
import { Wal, WalCorruptionError, type DurableStorage } from '../../../src/raft/storage/index.js';
import { batchHeaderAt, BATCH_HEADER_BYTES } from '../../../src/raft/storage/wal-codec.js';
import { SimDisk } from '../../sim/sim-disk.js';
import { drainMicrotasks, SimScheduler } from '../../sim/sim-scheduler.js';
import { entriesAfterSnapshot, WalWorkload } from './wal-workload.js';

const replaySeed = process.env['SEED'];
const seedsOf = (count: number): number[] =>
  replaySeed !== undefined ? [Number(replaySeed)] : Array.from({ length: Number(process.env['WAL_SEEDS'] ?? count) }, (_, i) => i + 1);

/** What the runs did, to show that they reached the interesting cases. */
interface Tally {
  kills: number;
  powerLosses: number;
  crashesInRecovery: number;
  tornTailsCut: number;
  segmentsRolled: number;
  /** Times a WAL on a disk that offers inline fsyncs turned to them (`fsync-policy.ts`). */
  inlineFsyncs: number;
}

function countingLogger(tally: Tally): RaftLogger {
  return {
    debug: (event) => {
      if (event === 'wal segment rolled') tally.segmentsRolled++;
    },
    info: (event) => {
      if (event === 'wal fsyncs inline: the disk syncs fast') tally.inlineFsyncs++;
    },
    warn: (event) => {
      if (event === 'wal torn tail cut off') tally.tornTailsCut++;
    },
    error() {},
  };
}

/** Runs the scheduler until `opening` settles or `budget` callbacks ran; undefined when it did not settle. */
async function openWithin(scheduler: SimScheduler, opening: Promise<Wal>, budget: number): Promise<Wal | undefined> {
  let outcome: { wal: Wal } | { error: unknown } | undefined;
  opening.then((wal) => (outcome = { wal }), (error: unknown) => (outcome = { error }));
  await drainMicrotasks();
  for (let step = 0; outcome === undefined && step < budget; step++) {
    if (!scheduler.runNext()) throw new Error('the scheduler ran dry during Wal.open');
    await drainMicrotasks();
  }
  if (outcome === undefined) return undefined;
  if ('error' in outcome) throw outcome.error;
  return outcome.wal;
}

/** What must hold of any recovered group, whatever the workload was: the node must be able to start on it. */
function expectStartable(id: number, storage: DurableStorage): void {
  const snapshot = storage.snapshot();
  if (!snapshot.ok) throw new Error(`group ${id}: no snapshot`);
  const { index, confState } = snapshot.value.metadata;
  expect(storage.firstIndex(), `group ${id} first index`).to.equal(index + 1);
  entriesAfterSnapshot(storage).forEach((entry, i) => expect(entry.index, `group ${id} entry ${i}`).to.equal(index + 1 + i));
  const { commit } = storage.initialState().hardState;
  expect(commit, `group ${id} commit`).to.be.within(index, storage.lastIndex());
  new RawNode({ id: confState.voters[0] ?? 1, storage, random: new SeededRandom(id) });
}

async function runSeed(seed: number, tally: Tally): Promise<void> {
  const random = new SeededRandom(seed);
  const scheduler = new SimScheduler();
  // Even seeds: the disk offers inline fsyncs, which the WAL takes (they take no time here).
  const disk = new SimDisk({ random: new SeededRandom(seed * 7919 + 1), scheduler: scheduler.schedule, inlineSyncs: seed % 2 === 0 });
  const walRandom = new SeededRandom(seed * 104_729 + 3);
  const workload = new WalWorkload(new SeededRandom(seed * 15_485_863 + 5));
  const segmentBytes = 600 + random.nextInt(8000);
  const logger = countingLogger(tally);
  const crash = (): void => {
    if (random.nextInt(2) === 0) {
      tally.kills++;
      disk.kill();
    } else {
      tally.powerLosses++;
      disk.powerLoss();
    }
  };
  const rounds = 2 + random.nextInt(3);
  for (let round = 1; round <= rounds; round++) {
    let wal: Wal | undefined;
    while (wal === undefined) {
      // A clock that stands still: the policy's choices replay from the seed (every fsync is fast).
      const opening = Wal.open('/node', logger, { fs: disk.process(), segmentBytes, random: walRandom, clock: () => 0 });
      wal = await openWithin(scheduler, opening, random.nextInt(4) === 0 ? random.nextInt(40) : Number.POSITIVE_INFINITY);
      if (wal === undefined) {
        tally.crashesInRecovery++;
        crash();
      }
    }
    for (const [id, storage] of workload.recover(wal)) expectStartable(id, storage);
    if (round === rounds) break;
    // Some rounds crash within a few steps of recovering, before a flush has synced anything.
    const steps = random.nextInt(4) === 0 ? random.nextInt(6) : 20 + random.nextInt(160);
    // Half the time the crash waits for unsynced data on the disk: a flush in the middle.
    const midFlush = random.nextInt(2) === 0;
    for (let step = 0; step < steps || (midFlush && step < steps + 200 && disk.unsyncedFiles().length === 0); step++) {
      if (random.nextInt(100) < 45) {
        scheduler.runNext();
        await drainMicrotasks();
      } else {
        workload.step();
      }
    }
    crash();
  }
  expect(workload.failures, `syncs that failed: ${workload.failures.map(String).join('; ')}`).to.deep.equal([]);
}

/** Offsets of the batches of a segment written with batch headers. */
function batchStarts(bytes: Uint8Array): number[] {
  const starts: number[] = [];
  for (let offset = 0; offset < bytes.length; ) {
    const header = batchHeaderAt(bytes, offset, undefined);
    if (header === undefined) throw new Error(`no batch header at ${offset}`);
    starts.push(offset);
    offset += BATCH_HEADER_BYTES + header.batchBytes;
  }
  return starts;
}

/** The start of the record holding byte `position`, found by walking the length prefixes. */
function recordStart(bytes: Uint8Array, position: number): number {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset + 8 + view.readUInt32LE(offset) <= position) offset += 8 + view.readUInt32LE(offset);
  return offset;
}

describe('raft/storage/wal on a simulated disk that crashes', () => {
  it('always recovers every acknowledged write into a state the node can start on', async function () {
    this.timeout(120_000);
    const seeds = seedsOf(1000);
    const tally: Tally = { kills: 0, powerLosses: 0, crashesInRecovery: 0, tornTailsCut: 0, segmentsRolled: 0, inlineFsyncs: 0 };
    for (const seed of seeds) {
      try {
        await runSeed(seed, tally);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(`wal power-loss run failed for seed ${seed} — replay with SEED=${seed}: ${message}`, { cause: error });
      }
    }
    if (seeds.length > 1) {
      // The runs must reach the cases they exist for: crashes everywhere, torn tails, rolled segments.
      expect(tally.powerLosses).to.be.greaterThan(seeds.length / 2);
      expect(tally.tornTailsCut).to.be.greaterThan(0);
      expect(tally.crashesInRecovery).to.be.greaterThan(0);
      expect(tally.segmentsRolled).to.be.greaterThan(seeds.length);
      expect(tally.inlineFsyncs, 'WALs that fsynced inline').to.be.greaterThan(seeds.length / 10);
    }
    console.log(`seeds=${seeds.length} ${Object.entries(tally).map(([key, value]) => `${key}=${value}`).join(' ')}`);
  });

  it('refuses a flipped bit of synced data that a later batch follows, naming file and offset', async () => {
    for (const seed of seedsOf(60)) {
      const random = new SeededRandom(seed);
      const disk = new SimDisk({ random: new SeededRandom(seed + 1) });
      const options = { fs: disk.process(), segmentBytes: 600 + random.nextInt(4000), random: new SeededRandom(seed + 2) };
      const wal = await Wal.open('/node', undefined, options);
      const workload = new WalWorkload(new SeededRandom(seed + 3));
      workload.recover(wal);
      for (let step = 0; step < 30 + random.nextInt(100); step++) {
        workload.step();
        if (random.nextInt(3) === 0) await wal.sync();
      }
      // Any byte of a segment but the last, or of the last segment before its last batch.
      const targets = (): { path: string; bytes: Uint8Array; end: number }[] =>
        wal.segments().flatMap((sequence, i, all) => {
          const path = `/node/wal/${sequence.toString().padStart(16, '0')}.log`;
          const bytes = disk.read(path) as Uint8Array;
          const end = i < all.length - 1 ? bytes.length : (batchStarts(bytes).at(-1) as number);
          return end > 0 ? [{ path, bytes, end }] : [];
        });
      // Until the last segment has a batch before its last one: closing never deletes it.
      const lastSegmentHasTarget = (): boolean => targets().at(-1)?.path.endsWith(`${wal.segments().at(-1)?.toString().padStart(16, '0')}.log`) === true;
      await wal.sync();
      while (!lastSegmentHasTarget()) {
        workload.step();
        await wal.sync();
      }
      // Chosen once closed: closing may delete old segments (seed 172), and may add a batch.
      await wal.close();
      const candidates = targets();
      const { path, bytes, end } = candidates[random.nextInt(candidates.length)] as { path: string; bytes: Uint8Array; end: number };
      const position = random.nextInt(end);
      disk.corrupt(path, position, 1 << random.nextInt(8));
      disk.kill();

      const where = `seed ${seed} (SEED=${seed} replays), byte ${position} of ${path}`;
      const error: unknown = await Wal.open('/node', undefined, { fs: disk.process() }).then(() => undefined, (reason: unknown) => reason);
      expect(error, where).to.be.instanceOf(WalCorruptionError);
      const corruption = error as WalCorruptionError;
      expect({ file: corruption.file, offset: corruption.offset }, where).to.deep.equal({ file: path, offset: recordStart(bytes, position) });
      expect(corruption.message, where).to.include(path).and.include(`offset ${corruption.offset}`);
    }
  });
});
