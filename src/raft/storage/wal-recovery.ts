/**
 * Recovery: reads every WAL segment in order and replays its records into the
 * state of each group (DESIGN.md §3 "Durability"). Which records count, and
 * which damage is a torn tail rather than corruption, is `wal-scan.ts`'s part.
 *
 * @internal
 */
import { join } from 'node:path';
import { NONE, type Entry, type HardState } from '../types.js';
import type { FileSystem } from './file-system.js';
import { WalCorruptionError } from './wal-errors.js';
import { WalGroup } from './wal-group.js';
import { scanSegment } from './wal-scan.js';

/** A segment file: `wal/<16-digit sequence>.log`. */
export interface SegmentInfo {
  sequence: number;
  path: string;
  /** For every group incarnation with entries in the segment, its highest entry index there. */
  maxIndexByGroup: Map<WalGroup, number>;
  /** The segment's size in bytes (for the one being appended to: when it was opened or last rolled). */
  bytes: number;
}

/** The file name of segment `sequence`. */
export function segmentFileName(sequence: number): string {
  return `${sequence.toString().padStart(16, '0')}.log`;
}

/** The sequence number of a segment file name, or undefined for other files. */
export function parseSegmentFileName(name: string): number | undefined {
  const match = /^(\d{16})\.log$/.exec(name);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** A group's log being rebuilt: a run of consecutive entries and where the run began. */
interface LogReplay {
  entries: Entry[];
  runFile: string;
  runOffset: number;
}

/** What replaying all segments produced. */
export interface ReplayResult {
  segments: SegmentInfo[];
  /** Live groups (not dropped), with `recovered.entries` set; snapshot data is loaded by the caller. */
  groups: Map<number, WalGroup>;
  /** Valid length of the last segment; less than its size when a torn tail must be cut. */
  lastSegmentValidBytes: number;
  /** Bytes of torn tail found after `lastSegmentValidBytes`. */
  tornBytes: number;
  /** The last segment's nonce; undefined when it was written before batch headers (or there is none). */
  lastSegmentNonce: number | undefined;
  /** Sequence of the last segment's last batch kept. */
  lastSegmentSequence: number;
  /** Groups whose recovered hard state was raised to their snapshot (see {@link raiseToSnapshot}), for the log. */
  raised: { groupId: number; from: HardState; to: HardState }[];
}

/**
 * Replays the segments (sorted by sequence) into per-group state. Entries at
 * an index already seen overwrite it and everything after it (Raft log
 * truncation); a tombstone forgets the group; entries at or below the final
 * snapshot are dropped.
 */
export async function replaySegments(
  fs: FileSystem,
  segmentPaths: readonly { sequence: number; path: string }[],
): Promise<ReplayResult> {
  const groups = new Map<number, WalGroup>();
  const logs = new Map<WalGroup, LogReplay>();
  const segments: SegmentInfo[] = [];
  let lastSegmentValidBytes = 0;
  let tornBytes = 0;
  let lastSegmentNonce: number | undefined;
  let lastSegmentSequence = 0;

  const groupFor = (groupId: number): WalGroup => {
    let group = groups.get(groupId);
    if (group === undefined) {
      group = new WalGroup(groupId);
      groups.set(groupId, group);
      logs.set(group, { entries: [], runFile: '', runOffset: 0 });
    }
    return group;
  };

  for (let s = 0; s < segmentPaths.length; s++) {
    const { sequence, path } = segmentPaths[s] as { sequence: number; path: string };
    const isLast = s === segmentPaths.length - 1;
    const buffer = await fs.readFile(path);
    const segment: SegmentInfo = { sequence, path, maxIndexByGroup: new Map(), bytes: buffer.length };
    segments.push(segment);
    const scan = scanSegment(buffer, path, isLast, (record, offset) => {
      const group = groupFor(record.groupId);
      const log = logs.get(group) as LogReplay;
      switch (record.type) {
        case 'entries': {
          replayEntries(log, record.entries, path, offset);
          const last = (record.entries[record.entries.length - 1] as Entry).index;
          segment.maxIndexByGroup.set(group, Math.max(last, segment.maxIndexByGroup.get(group) ?? 0));
          break;
        }
        case 'hard-state':
          group.hardState = record.hardState;
          break;
        case 'snapshot':
          group.marker = record.marker;
          group.durableSnapshotIndex = record.marker.index;
          group.durableSnapshotFile = group.snapshotFile;
          if (record.marker.replacesLog) log.entries = [];
          break;
        case 'tombstone':
          group.dropped = true;
          groups.delete(record.groupId);
          logs.delete(group);
          break;
      }
    });
    if (isLast) {
      lastSegmentValidBytes = scan.validBytes;
      tornBytes = buffer.length - scan.validBytes;
      lastSegmentNonce = scan.nonce;
      lastSegmentSequence = scan.lastSequence;
    }
  }

  const raised: ReplayResult['raised'] = [];
  for (const group of groups.values()) {
    const log = logs.get(group) as LogReplay;
    group.recovered = { entries: entriesAfterSnapshot(group, log), snapshotData: new Uint8Array(0) };
    const from = group.hardState ?? { term: 0, vote: NONE, commit: 0 };
    const to = raiseToSnapshot(from, group.marker.index, group.marker.term);
    if (to !== from) {
      group.hardState = to;
      raised.push({ groupId: group.groupId, from, to });
    }
  }
  return { segments, groups, lastSegmentValidBytes, tornBytes, lastSegmentNonce, lastSegmentSequence, raised };
}

/**
 * The hard state a group restarts with, given its latest snapshot marker:
 * commit at least the snapshot's index, term at least the snapshot's term.
 *
 * Why this is true and needed: a snapshot holds only applied, hence committed,
 * entries (Raft §7), so its index is a commit index this replica knew, and its
 * term a term it saw. But the hard state recording that commit may have been
 * lost while the marker survived: a segment written before batch headers keeps
 * a torn batch's valid prefix, and a leader's batch holds the marker, then
 * entries, then the hard state. Restarting with commit below the snapshot
 * index makes `RawNode` refuse to start ("hard state commit out of the log
 * range"), so the node could never come back.
 *
 * A raised term comes with no vote: a vote this replica sent in a term at or
 * past the snapshot's was durable BEFORE it was sent (Ready contract), and
 * hard states are replayed in order, so recovery would have found it.
 */
export function raiseToSnapshot(hardState: HardState, snapshotIndex: number, snapshotTerm: number): HardState {
  if (hardState.commit >= snapshotIndex && hardState.term >= snapshotTerm) return hardState;
  const term = Math.max(hardState.term, snapshotTerm);
  return { term, vote: term === hardState.term ? hardState.vote : NONE, commit: Math.max(hardState.commit, snapshotIndex) };
}

/** Applies one entries record with Raft's overwrite semantics. */
function replayEntries(log: LogReplay, batch: Entry[], file: string, offset: number): void {
  const incomingFirst = (batch[0] as Entry).index;
  const first = log.entries[0]?.index ?? 0;
  const last = first + log.entries.length - 1;
  if (log.entries.length === 0 || incomingFirst <= first || incomingFirst > last + 1) {
    // Nothing kept before incomingFirst: start a new run. A gap is legal while
    // replaying (older entries may sit in deleted segments, covered by a later
    // snapshot marker); entriesAfterSnapshot checks the final result.
    log.entries = [...batch];
    log.runFile = file;
    log.runOffset = offset;
    return;
  }
  log.entries.length = incomingFirst - first;
  for (const entry of batch) log.entries.push(entry);
}

/** The group's entries after its snapshot; they must start right after it. */
function entriesAfterSnapshot(group: WalGroup, log: LogReplay): Entry[] {
  const snapshotIndex = group.marker.index;
  const first = log.entries[0]?.index;
  if (first === undefined) return [];
  const last = first + log.entries.length - 1;
  if (last <= snapshotIndex) return [];
  if (first > snapshotIndex + 1) {
    throw new WalCorruptionError(
      'LOG_GAP',
      log.runFile,
      log.runOffset,
      `group ${group.groupId}: entries resume at ${first} but the snapshot ends at ${snapshotIndex}`,
    );
  }
  return log.entries.slice(snapshotIndex + 1 - first);
}

/** Paths of the segments in `walDir` given its file names, sorted by sequence. */
export function listSegments(walDir: string, names: readonly string[]): { sequence: number; path: string }[] {
  const result: { sequence: number; path: string }[] = [];
  for (const name of names) {
    const sequence = parseSegmentFileName(name);
    if (sequence !== undefined) result.push({ sequence, path: join(walDir, name) });
  }
  return result.sort((a, b) => a.sequence - b.sequence);
}
