/**
 * Starting a WAL segment: its random nonce, its checkpoint (batch 0), and
 * creating the file whole, so that the nonce every later batch header carries
 * is durable before any batch relies on it (`wal-scan.ts`).
 *
 * @internal
 */
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import type { RandomSource } from '../types.js';
import type { FileHandle, FileSystem } from './file-system.js';
import { writeFileAtomically } from './snapshot-files.js';
import { RecordEncoder } from './wal-codec.js';
import type { WalGroup } from './wal-group.js';
import { segmentFileName, type SegmentInfo } from './wal-recovery.js';

/** Crypto-strong randomness: the default source of segment nonces, which clients must not be able to guess. */
export const cryptoRandom: RandomSource = { nextInt: (maxExclusive) => randomInt(maxExclusive) };

/** A segment nonce: 53 random bits (a u64 field of the format holds a safe integer). */
export function drawNonce(random: RandomSource): number {
  return random.nextInt(2 ** 21) * 2 ** 32 + random.nextInt(2 ** 32);
}

/**
 * The head of a new segment: a batch header (sequence 0) and the hard state
 * and snapshot marker of every live group, so older segments can be deleted
 * without losing them.
 */
export function encodeCheckpoint(groups: Iterable<WalGroup>, nonce: number): Buffer {
  const encoder = new RecordEncoder(1024, { batchHeader: true });
  for (const group of groups) {
    if (group.hardState !== undefined) encoder.hardState(group.groupId, group.hardState);
    encoder.snapshot(group.groupId, { ...group.marker, replacesLog: false });
  }
  return Buffer.from(encoder.framedBytes(nonce, 0));
}

/**
 * Creates segment `sequence` holding `checkpoint`, written whole by temp file,
 * datasync and rename, its directory entry synced, and opens it for appending.
 */
export async function createSegment(
  fs: FileSystem,
  walDir: string,
  sequence: number,
  checkpoint: Uint8Array,
): Promise<{ segment: SegmentInfo; handle: FileHandle }> {
  const name = segmentFileName(sequence);
  await writeFileAtomically(fs, walDir, name, checkpoint);
  await fs.syncDirectory(walDir);
  const path = join(walDir, name);
  return { segment: { sequence, path, maxIndexByGroup: new Map(), bytes: checkpoint.length }, handle: await fs.open(path, 'existing') };
}
