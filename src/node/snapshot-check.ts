/**
 * The receiver's check of a snapshot's data, run on the whole reassembled data BEFORE the
 * snapshot reaches its replica — so before anything of it is written. A replica persists a
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
 * The data must then restore as a KV snapshot (`KvStateMachine.fromSnapshot`) applied
 * through exactly the metadata's index, and be canonical: encoding the restored state again
 * gives the same bytes. That refuses what would restore but not survive the next snapshot
 * — duplicate keys or members (one silently lost), text that is not UTF-8 (re-encoded
 * longer than its one-byte length), a value the encoder writes differently.
 *
 * ## Older senders
 * A node older than the checksum sends none. Its snapshots are accepted when they pass the
 * decoding checks, which is what keeps the receiver up; corruption that still decodes (a
 * flipped bit inside a value) goes unnoticed, as before this check existed. The gate logs
 * each such snapshot at info, so an operator sees when a mixed-version cluster is done.
 * @internal
 */
import { crc32c } from '../raft/index.js';
import { KvStateMachine } from './kv-state-machine.js';
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
  let machine: KvStateMachine;
  try {
    machine = KvStateMachine.fromSnapshot(data);
  } catch (error) {
    return { reason: 'snapshot_data', detail: `not a KV snapshot: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (machine.appliedIndex !== index) {
    return { reason: 'snapshot_data', detail: `holds state applied through ${machine.appliedIndex}, the metadata says ${index}` };
  }
  if (!machine.encodeSnapshot().equals(data)) {
    return { reason: 'snapshot_data', detail: 'not canonical: its state encodes to other bytes (duplicate keys or members, text that is not UTF-8)' };
  }
  return undefined;
}
