/**
 * The receiver's check of a snapshot's data, run on the whole reassembled data BEFORE the
 * snapshot reaches its replica — so before any of it is written to the replica's storage (the
 * receiving node only spooled it to a scratch file, `snapshot-spool.ts`). A replica persists a
 * snapshot it accepts (its data file's CRC computed from the bytes as received), then
 * restores its state machine from it, and again at every restart: data that does not
 * restore would stop the node for good.
 *
 * ## The end-to-end checksum
 * The sender computes the CRC32C of the snapshot data it read from its storage
 * (`RaftTransport.sendSnapshot`, over the very bytes its state machine encoded or its WAL
 * verified on recovery) and sends it with the first chunk (`SendSnapshotRequest.data_crc32c`).
 * The receiver recomputes it over the chunks as reassembled: a mismatch — a flipped bit on
 * the way, a lost or doubled chunk, a sender that reassembled wrong — refuses the snapshot,
 * the stream answers `accepted: false`, and the leader retries later. CRC32C is the WAL's
 * checksum (it catches every burst of up to 32 flipped bits), and at ~1 GB/s it adds about
 * a second per GiB on each side, as writing the snapshot already does.
 *
 * ## Decoding
 * The data must then restore as a KV snapshot (`KvStateMachine.decodeSnapshot`) applied
 * through exactly the metadata's index, and be canonical: encoding the restored state again
 * gives the same bytes. That refuses what would restore but not survive the next snapshot
 * — duplicate keys, members or sessions (one silently lost), text that is not UTF-8
 * (re-encoded longer than its one-byte length, which may not fit), a value the encoder
 * writes differently.
 *
 * Canonical is judged in the format the data is in. This version writes KV snapshot format
 * 2 and still reads format 1 — from a node older than format 2, or a snapshot file an
 * upgraded node wrote before its upgrade and now sends. Format 1 re-encodes as format 2, so
 * for it only the part both formats lay out alike (everything before the session table) is
 * compared byte for byte, and the restored state must encode again; its session table is
 * only decoded.
 *
 * ## Older senders
 * A node older than the checksum sends none. Its snapshots are accepted when they pass the
 * decoding checks, which is what keeps the receiver up; corruption that still decodes (a
 * flipped bit inside a value) goes unnoticed, as before this check existed. The gate logs
 * each such snapshot at info, so an operator sees when a mixed-version cluster is done.
 * @internal
 */
import { crc32c } from '../raft/index.js';
import { type DecodedSnapshot, KvStateMachine } from './kv-state-machine.js';
import type { Rejection } from './message-check.js';

/** The checksum a sender attaches to a snapshot's data. */
export function snapshotChecksum(data: Uint8Array): number {
  return crc32c(data);
}

/**
 * Why `data` must not be installed as the snapshot at `index`, or undefined when it may.
 * `dataCrc32c` is the sender's checksum; undefined from a node older than it.
 */
export function checkSnapshotData(data: Uint8Array, index: number, dataCrc32c: number | undefined): Rejection | undefined {
  if (dataCrc32c !== undefined) {
    const actual = snapshotChecksum(data);
    if (actual !== dataCrc32c) {
      return { reason: 'snapshot_checksum', detail: `${data.length} bytes with CRC32C ${actual}, the sender's is ${dataCrc32c}` };
    }
  }
  let decoded: DecodedSnapshot;
  try {
    decoded = KvStateMachine.decodeSnapshot(data);
  } catch (error) {
    return { reason: 'snapshot_data', detail: `not a KV snapshot: ${errorText(error)}` };
  }
  const { machine, comparableBytes, exact } = decoded;
  if (machine.appliedIndex !== index) {
    return { reason: 'snapshot_data', detail: `holds state applied through ${machine.appliedIndex}, the metadata says ${index}` };
  }
  let encoded: Buffer;
  try {
    encoded = machine.encodeSnapshot();
  } catch (error) {
    return { reason: 'snapshot_data', detail: `not canonical: its state does not encode again: ${errorText(error)}` };
  }
  const received = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  // Past the format byte; older formats as far as they lay out alike (DecodedSnapshot.comparableBytes).
  const compared = comparableBytes(encoded.length);
  const canonical = (!exact || received.length === compared) && encoded.subarray(1, compared).equals(received.subarray(1, compared));
  if (!canonical) {
    return { reason: 'snapshot_data', detail: 'not canonical: its state encodes to other bytes (duplicate keys, members or sessions, text that is not UTF-8)' };
  }
  return undefined;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
