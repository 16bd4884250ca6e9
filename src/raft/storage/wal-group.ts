/**
 * What the WAL remembers about one incarnation of a group: the latest hard
 * state and snapshot marker it wrote (restated at the head of every new
 * segment, so deleting old segments never loses them) and how far its durable
 * snapshot reaches (which decides segment garbage collection).
 *
 * A group dropped with a tombstone and created again under the same id is a
 * new {@link WalGroup}: per-segment bookkeeping holds the object, not the id,
 * so the old incarnation's entries never block or confuse the new one.
 *
 * @internal
 */
import type { Entry, HardState } from '../types.js';
import type { SnapshotMarker } from './wal-codec.js';

/** The marker of a group that has never had a snapshot: index 0, term 0, no members. */
export function emptyMarker(): SnapshotMarker {
  return { index: 0, term: 0, confState: { voters: [], learners: [] }, replacesLog: false, dataLength: 0, dataCrc: 0 };
}

/** The snapshot data file of a marker, or undefined when the data is empty (no file is written). */
export function snapshotFileName(groupId: number, marker: SnapshotMarker): string | undefined {
  return marker.dataLength === 0 ? undefined : `${groupId}-${marker.term}-${marker.index}.snap`;
}

/** The group whose snapshot files are named `name` (the inverse of {@link snapshotFileName}). */
export function groupIdOfSnapshotFile(name: string): number {
  return Number(name.slice(0, name.indexOf('-')));
}

/** State recovered from disk, handed to the group's storage when it is opened, then released. */
export interface RecoveredLog {
  /** Entries after the snapshot, consecutive from `marker.index + 1`. */
  entries: Entry[];
  /** The snapshot's data, read and verified from its file. */
  snapshotData: Uint8Array;
}

/** A snapshot file being written ahead of its marker. */
export interface SnapshotWrite {
  readonly marker: SnapshotMarker;
  readonly file: string;
}

/** One incarnation of a group, as far as the WAL knows it. */
export class WalGroup {
  readonly groupId: number;
  /** The latest hard state written (or recovered), if any. */
  hardState: HardState | undefined;
  /** The latest snapshot marker written (or recovered). */
  marker: SnapshotMarker;
  /** Index of the latest snapshot whose marker is known durable: segments holding only entries ≤ it may go. */
  durableSnapshotIndex: number;
  /**
   * The data file of the latest marker known durable, which a crash now would
   * recover: it must stay even when a newer marker, not yet durable, replaced it.
   * Undefined once the group's tombstone is durable.
   */
  durableSnapshotFile: string | undefined;
  /** Set by a tombstone; a dropped group never blocks garbage collection. */
  dropped = false;
  /** True once a storage object was handed out for this incarnation. */
  opened = false;
  /** Present between recovery and `openGroup`. */
  recovered: RecoveredLog | undefined;
  /**
   * The group's own snapshot (`createSnapshot`) whose file is being written: its marker joins
   * the WAL once the file is durable, unless a tombstone or a newer marker came first (`Wal`,
   * "snapshot files ahead of their markers"). One at a time per group.
   */
  writing: SnapshotWrite | undefined;
  /** The newest own snapshot taken while `writing` was: written next. A newer one replaces it. */
  nextWrite: { write: SnapshotWrite; data: Uint8Array } | undefined;

  constructor(groupId: number, marker: SnapshotMarker = emptyMarker()) {
    this.groupId = groupId;
    this.marker = marker;
    this.durableSnapshotIndex = marker.index;
    this.durableSnapshotFile = snapshotFileName(groupId, marker);
  }

  /**
   * True when this incarnation may still need snapshot file `name`: its latest marker or its
   * latest durable marker names it, or it is being or is to be written.
   */
  needsFile(name: string): boolean {
    return this.snapshotFile === name || this.durableSnapshotFile === name || this.writing?.file === name || this.nextWrite?.write.file === name;
  }

  /** Name of the latest marker's data file, if it has data. */
  get snapshotFile(): string | undefined {
    return snapshotFileName(this.groupId, this.marker);
  }
}
