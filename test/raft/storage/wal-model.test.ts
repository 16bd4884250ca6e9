import { expect } from 'chai';
import fc from 'fast-check';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MemoryStorage, Wal, type DurableStorage } from '../../../src/raft/storage/index.js';
import { raiseToSnapshot } from '../../../src/raft/storage/wal-recovery.js';
import { EntryType, type ConfState, type Entry, type InitialState } from '../../../src/raft/types.js';
import { makeTempDir, propertyOptions, removeTempDir } from './helpers.js';

/**
 * Model-based property: any sequence of storage operations on a few groups,
 * with syncs, segment rolls, garbage collection, drops and restarts, recovers
 * to what an in-memory storage given the same operations holds (entries after
 * its snapshot, hard state, snapshot metadata and data). The operations are
 * not Raft-shaped (a hard state's commit may lag the snapshot, a later
 * snapshot may have a lower term), so the recovered hard state is the model's
 * raised to its snapshot, as recovery does, and after a reopen the model takes
 * the raised one as its own, as the node does.
 */

const GROUPS = [1, 2, 3];
const KINDS = ['append', 'append', 'append', 'hard', 'snap', 'compact', 'apply', 'drop', 'sync', 'sync-nowait', 'reopen'] as const;
type Kind = (typeof KINDS)[number];
interface Op { kind: Kind; group: number; a: number; b: number; data: Uint8Array }

const op: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom(...KINDS),
  group: fc.constantFrom(...GROUPS),
  a: fc.nat({ max: 1000 }),
  b: fc.nat({ max: 1000 }),
  data: fc.uint8Array({ maxLength: 24 }),
});

const confOf = (group: number): ConfState => ({ voters: [group, group + 10], learners: [group + 20] });

function snapshotIndex(model: MemoryStorage): number {
  const snapshot = model.snapshot();
  if (!snapshot.ok) throw new Error('model snapshot unavailable');
  return snapshot.value.metadata.index;
}

function entriesAfterSnapshot(storage: MemoryStorage | DurableStorage): Entry[] {
  const snapshot = storage.snapshot();
  if (!snapshot.ok) throw new Error('snapshot unavailable');
  const lo = snapshot.value.metadata.index + 1;
  const result = storage.entries(lo, storage.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
  if (!result.ok) throw new Error(`entries unavailable: ${result.reason}`);
  return result.value;
}

/** The model's initial state as recovery yields it: the hard state raised to the snapshot. */
function recoveredInitialState(model: MemoryStorage): InitialState {
  const { hardState, confState } = model.initialState();
  const snapshot = model.snapshot();
  if (!snapshot.ok) throw new Error('model snapshot unavailable');
  const { index, term } = snapshot.value.metadata;
  return { hardState: raiseToSnapshot(hardState, index, term), confState };
}

function expectSame(group: number, storage: DurableStorage, model: MemoryStorage): void {
  const where = `group ${group}`;
  expect(storage.initialState(), where).to.deep.equal(recoveredInitialState(model));
  expect(storage.snapshot(), where).to.deep.equal(model.snapshot());
  expect(storage.lastIndex(), where).to.equal(model.lastIndex());
  expect(entriesAfterSnapshot(storage), where).to.deep.equal(entriesAfterSnapshot(model));
}

describe('raft/storage/wal model', () => {
  let dir: string | undefined;
  afterEach(async () => {
    await removeTempDir(dir);
  });

  it('recovers exactly what an in-memory storage holds, for any operation sequence', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 80 }), fc.integer({ min: 150, max: 2000 }), async (ops, segmentBytes) => {
        await removeTempDir(dir);
        dir = await makeTempDir();
        const openAll = async (): Promise<{ wal: Wal; storages: Map<number, DurableStorage> }> => {
          const opened = await Wal.open(dir as string, undefined, { segmentBytes });
          return { wal: opened, storages: new Map(opened.groupIds().map((id) => [id, opened.openGroup(id)])) };
        };
        let { wal, storages } = await openAll();
        const models = new Map<number, MemoryStorage>();
        for (const id of GROUPS) {
          storages.set(id, wal.openGroup(id, { confState: confOf(id) }));
          models.set(id, new MemoryStorage({ confState: confOf(id) }));
        }
        let pending: Promise<void>[] = [];
        try {
          for (const { kind, group, a, b, data } of ops) {
            const storage = storages.get(group) as DurableStorage;
            const model = models.get(group) as MemoryStorage;
            const snapIndex = snapshotIndex(model);
            switch (kind) {
              case 'append': {
                const lo = Math.max(model.firstIndex(), snapIndex + 1);
                const start = lo + (a % (model.lastIndex() + 2 - lo));
                const entries: Entry[] = [];
                for (let i = 0; i < 1 + (b % 4); i++) {
                  entries.push({ index: start + i, term: 1 + (a % 7), type: i % 3 === 2 ? EntryType.ConfChange : EntryType.Normal, data: data.subarray(i) });
                }
                model.append(entries);
                storage.append(entries);
                break;
              }
              case 'hard': {
                const hardState = { term: a % 100, vote: b % 5, commit: (a + b) % 50 };
                model.setHardState(hardState);
                storage.setHardState(hardState);
                break;
              }
              case 'snap':
                if (model.lastIndex() > snapIndex) {
                  const index = snapIndex + 1 + (a % (model.lastIndex() - snapIndex));
                  model.createSnapshot(index, confOf(b % 5), data);
                  storage.createSnapshot(index, confOf(b % 5), data);
                }
                break;
              case 'compact': {
                const index = model.firstIndex() + (a % (snapIndex + 2 - model.firstIndex()));
                model.compact(index);
                storage.compact(index);
                break;
              }
              case 'apply': {
                const snapshot = {
                  metadata: { index: Math.max(snapIndex, model.lastIndex()) + 1 + (a % 5), term: 1 + (b % 9), confState: confOf(a % 4) },
                  data,
                };
                model.applySnapshot(snapshot);
                storage.applySnapshot(snapshot);
                break;
              }
              case 'drop':
                wal.dropGroup(group);
                storages.set(group, wal.openGroup(group, { confState: confOf(group + b % 2) }));
                models.set(group, new MemoryStorage({ confState: confOf(group + b % 2) }));
                break;
              case 'sync':
                await Promise.all(pending);
                pending = [];
                await wal.sync();
                break;
              case 'sync-nowait':
                pending.push(wal.sync());
                break;
              case 'reopen':
                await Promise.all(pending);
                pending = [];
                await wal.close();
                ({ wal, storages } = await openAll());
                expect(wal.groupIds()).to.deep.equal(GROUPS);
                for (const id of GROUPS) {
                  const model = models.get(id) as MemoryStorage;
                  expectSame(id, storages.get(id) as DurableStorage, model);
                  // From here on the raised hard state is the group's (a later checkpoint restates it).
                  model.setHardState(recoveredInitialState(model).hardState);
                }
                break;
            }
          }
          await Promise.all(pending);
          await wal.close();
          ({ wal, storages } = await openAll());
          for (const id of GROUPS) expectSame(id, storages.get(id) as DurableStorage, models.get(id) as MemoryStorage);
          // No stray files: the segments are the WAL's, the snapshot files those of the latest markers.
          const walFiles = await readdir(join(dir, 'wal'));
          expect(walFiles.map((name) => Number(name.slice(0, 16))).sort((x, y) => x - y)).to.deep.equal(wal.segments());
          const expectedSnaps = GROUPS.flatMap((id) => {
            const snapshot = (models.get(id) as MemoryStorage).snapshot();
            if (!snapshot.ok || snapshot.value.data.length === 0) return [];
            return [`${id}-${snapshot.value.metadata.term}-${snapshot.value.metadata.index}.snap`];
          });
          expect((await readdir(join(dir, 'snap'))).sort()).to.deep.equal(expectedSnaps.sort());
        } finally {
          await Promise.allSettled(pending);
          await wal.close();
        }
      }),
      propertyOptions(60),
    );
  });
});
