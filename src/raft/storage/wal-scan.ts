/**
 * Reading one WAL segment: which of its records count, and what damage means
 * (DESIGN.md §3: a torn tail is cut off, corruption is refused naming file
 * and offset).
 *
 * A segment is a series of batches: a batch header (the segment's random
 * nonce, the batch's sequence number, its length; format in `wal-codec.ts`)
 * followed by the records of one `sync()`. The first batch is the segment's
 * checkpoint, written whole and datasynced before the segment gets its name,
 * so the nonce is durable before any batch relies on it.
 *
 * The WAL writes a batch only once the previous batch's datasync completed,
 * and after a restart only once it has datasynced what it recovered. So if
 * any byte of a later batch is on disk, every earlier batch was synced. That
 * tells damage apart. A batch counts only when all of it checks out, and
 * damage at offset X of the last segment is:
 * - corruption if a valid header of this segment (same nonce) with a higher
 *   sequence lies after X: the damaged batch was synced, a crash cannot
 *   explain it, and `WalCorruptionError` names the file and X;
 * - otherwise a torn unsynced tail: the damaged batch was never acknowledged
 *   (its sync never resolved), so it is cut off whole, from its header.
 * Damage anywhere in another segment is corruption: a segment's last batch is
 * synced before the next segment is created.
 *
 * The nonce is why a header found after the damage can be trusted. Entry data
 * are clients' bytes, stored raw, so a client can plant bytes that form a
 * well-checksummed record. Without the segment's nonce, which never leaves the
 * node, it cannot forge one of its batch headers, so it cannot make a torn
 * tail look like corruption and keep a node from starting.
 *
 * The one case that cannot be told apart: the very last batch of the last
 * segment, synced and later damaged, with no batch written after it, looks
 * exactly like a tear. It is cut off and the acknowledged writes of that one
 * batch are lost, with a warning (`wal torn tail cut off`).
 *
 * Segments written before batch headers existed (no header at offset 0) are
 * read with the earlier rule: records count one by one; damage followed by any
 * well-formed record is corruption, else a torn tail cut at the damage. The
 * WAL never appends to such a segment: it starts a new one.
 *
 * @internal
 */
import { BATCH_HEADER_BYTES, batchHeaderAt, decodeRecord, describeDamage, recordEndAt, type GroupRecord } from './wal-codec.js';
import { WalCorruptionError } from './wal-errors.js';

/** What scanning a segment found, beyond its records. */
export interface SegmentScan {
  /** Where the valid data ends; in the last segment, what follows is a torn tail to cut off. */
  validBytes: number;
  /** The segment's nonce, or undefined for a segment written before batch headers. */
  nonce: number | undefined;
  /** Sequence of the last batch kept (meaningful only with a nonce). */
  lastSequence: number;
}

/**
 * Calls `onRecord` for each record of `buffer` (the segment `file`) that
 * counts, in order. Throws {@link WalCorruptionError} for damage that is not
 * a torn tail of the last segment (`isLast`).
 */
export function scanSegment(
  buffer: Uint8Array,
  file: string,
  isLast: boolean,
  onRecord: (record: GroupRecord, offset: number) => void,
): SegmentScan {
  const first = batchHeaderAt(buffer, 0, undefined);
  if (first === undefined) return { validBytes: scanUnframed(buffer, file, isLast, onRecord), nonce: undefined, lastSequence: 0 };
  const { nonce } = first;
  const batch: { record: GroupRecord; offset: number }[] = [];
  let lastSequence = first.sequence - 1;
  let offset = 0;

  /** Damage at `at`, in the batch starting at `batchStart` (numbered `sequence` if its header is sound). */
  const damaged = (at: number, limit: number, batchStart: number, sequence: number): SegmentScan => {
    const code = describeDamage(buffer, at, limit);
    if (code === 'BAD_RECORD') throw new WalCorruptionError(code, file, at, 'checksummed record of an unknown type');
    if (!isLast) throw new WalCorruptionError(code, file, at, 'damaged record in a segment that is not the last');
    for (let later = at + 1; later + BATCH_HEADER_BYTES <= buffer.length; later++) {
      const header = batchHeaderAt(buffer, later, nonce);
      if (header !== undefined && header.sequence > sequence) {
        throw new WalCorruptionError(code, file, at, `damaged record followed by batch ${header.sequence} at offset ${later}`);
      }
    }
    return { validBytes: batchStart, nonce, lastSequence };
  };

  while (offset < buffer.length) {
    const headerEnd = recordEndAt(buffer, offset, buffer.length);
    if (headerEnd < 0) return damaged(offset, buffer.length, offset, lastSequence);
    const header = decodeRecord(buffer, offset, headerEnd, file);
    if (header.type !== 'batch-header') throw new WalCorruptionError('BAD_RECORD', file, offset, 'a record outside any batch');
    if (header.nonce !== nonce) throw new WalCorruptionError('BAD_RECORD', file, offset, 'a batch header of another segment');
    if (header.sequence !== lastSequence + 1) {
      throw new WalCorruptionError('BAD_RECORD', file, offset, `batch ${header.sequence} after batch ${lastSequence}`);
    }
    const batchEnd = headerEnd + header.batchBytes;
    const limit = Math.min(batchEnd, buffer.length);
    batch.length = 0;
    let position = headerEnd;
    while (position < limit) {
      const end = recordEndAt(buffer, position, limit);
      if (end < 0) return damaged(position, limit, offset, header.sequence);
      const record = decodeRecord(buffer, position, end, file);
      if (record.type === 'batch-header') throw new WalCorruptionError('BAD_RECORD', file, position, 'a batch header inside a batch');
      batch.push({ record, offset: position });
      position = end;
    }
    if (batchEnd > buffer.length) return damaged(buffer.length, buffer.length, offset, header.sequence);
    for (const { record, offset: at } of batch) onRecord(record, at);
    lastSequence = header.sequence;
    offset = batchEnd;
  }
  return { validBytes: offset, nonce, lastSequence };
}

/** The earlier rule, for a segment without batch headers; returns where valid data ends. */
function scanUnframed(buffer: Uint8Array, file: string, isLast: boolean, onRecord: (record: GroupRecord, offset: number) => void): number {
  let offset = 0;
  while (offset < buffer.length) {
    const end = recordEndAt(buffer, offset, buffer.length);
    if (end < 0) {
      const damage = describeDamage(buffer, offset, buffer.length);
      if (damage === 'BAD_RECORD') throw new WalCorruptionError(damage, file, offset, 'checksummed record of an unknown type');
      if (!isLast) throw new WalCorruptionError(damage, file, offset, 'damaged record in a segment that is not the last');
      const next = findValidRecord(buffer, offset + 1);
      if (next >= 0) {
        throw new WalCorruptionError(damage, file, offset, `damaged record followed by a valid record at offset ${next}`);
      }
      return offset;
    }
    const record = decodeRecord(buffer, offset, end, file);
    if (record.type === 'batch-header') {
      throw new WalCorruptionError('BAD_RECORD', file, offset, 'a batch header in a segment that does not start with one');
    }
    onRecord(record, offset);
    offset = end;
  }
  return offset;
}

/** The first offset ≥ `from` where a well-formed record starts, or -1. */
function findValidRecord(buffer: Uint8Array, from: number): number {
  for (let offset = from; offset < buffer.length; offset++) {
    if (recordEndAt(buffer, offset, buffer.length) >= 0) return offset;
  }
  return -1;
}
