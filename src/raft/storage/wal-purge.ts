/**
 * Keeping the WAL bounded (TiKV raft-engine's purge, CockroachDB's log truncation): a
 * segment can be deleted only once every group's durable snapshot covers the entries it
 * has there, so one quiet group whose first entries sit in the oldest segment would keep
 * every later segment on disk, however much a busy group wrote after it. When the
 * segments add up to more than the purge threshold, the groups that pin the oldest
 * segments — those a deletion down to the threshold needs — are asked to snapshot; once
 * their markers are durable, garbage collection deletes the segments.
 *
 * The bound that follows: the WAL holds at most the purge threshold, plus the segment
 * being written, plus what is written while the asked groups snapshot (a host that
 * spreads snapshots over turns takes as many turns as it needs for them) —
 * whatever the mix of hot and cold groups and however much is written. Live data is in
 * the snapshot files.
 * @internal
 */
import type { WalGroup } from './wal-group.js';
import type { SegmentInfo } from './wal-recovery.js';

/**
 * The groups whose entries keep segments that must go for the WAL to fall to
 * `purgeBytes`: oldest segments first, never the last (current) one. `currentBytes` is
 * the current segment's size.
 */
export function groupsPinning(segments: readonly SegmentInfo[], currentBytes: number, purgeBytes: number): WalGroup[] {
  let total = currentBytes;
  for (let i = 0; i < segments.length - 1; i++) total += (segments[i] as SegmentInfo).bytes;
  const pinning = new Set<WalGroup>();
  for (let i = 0; i < segments.length - 1 && total > purgeBytes; i++) {
    const segment = segments[i] as SegmentInfo;
    for (const [group, maxIndex] of segment.maxIndexByGroup) {
      // A group whose snapshot file is being written already does what it would be asked.
      if (group.durableSnapshotIndex < maxIndex && group.writing === undefined) pinning.add(group);
    }
    total -= segment.bytes;
  }
  return [...pinning];
}
