/**
 * A naive reference of the inbound message rules (`src/node/message-check.ts`), written
 * for clarity, not speed: each rule a plain statement, commands and conf changes judged by
 * decoding them with the node's own decoders and encoding them again. The property tests
 * hold the fast checks to it, rule by rule, in the same order.
 */
import type { RaftEntry, RaftMessage } from '../../../src/gen/kvstore/v1/raft.js';
import { isValidUtf8 } from '../../../src/common/index.js';
import { CommandOp, decodeCommand, encodeCommand, MAX_CLIENT_ID_BYTES, type TxnOp, TxnOpKind, type WriteRequest } from '../../../src/node/kv-command.js';

const EMPTY_KEY = new Uint8Array(0);
import type { RejectReason } from '../../../src/node/message-check.js';
import { decodeConfChange } from '../../../src/raft/index.js';

const LIMIT = 2 ** 52;
/** Append … TransferLeader: what one node's replica sends another. */
const PEER_TYPES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
const READ_INDEX = 11;
const APPEND = 1;
const SNAPSHOT = 9;

const natural = (value: number): boolean => Number.isSafeInteger(value) && value >= 0 && value <= LIMIT;
const replicaId = (value: number): boolean => natural(value) && value !== 0;

/** The reference verdict on a message's own fields: 'ok' or the first rule it breaks. */
export function referenceVerdict(message: RaftMessage): RejectReason | 'ok' {
  const type: number = message.type;
  if (!PEER_TYPES.includes(type)) return 'bad_type';
  if (!(Number.isSafeInteger(message.shardId) && message.shardId >= 0 && message.shardId < 2 ** 32)) return 'bad_field';
  if (!replicaId(message.to) || !replicaId(message.from) || message.to === message.from) return 'bad_field';
  if (![message.term, message.logTerm, message.index, message.commit, message.rejectHint].every(natural)) return 'bad_field';
  if (message.term === 0 && type !== READ_INDEX) return 'bad_field';
  if (message.logTerm > message.term) return 'bad_field';
  if (message.context.length > 256) return 'bad_field';
  if (message.entries.length > 0 && type !== APPEND) return 'bad_field';
  let previousTerm = message.logTerm;
  for (const [i, entry] of message.entries.entries()) {
    if (entry.index !== message.index + 1 + i) return 'bad_entries';
    if (!(natural(entry.term) && entry.term >= 1 && entry.term >= previousTerm && entry.term <= message.term)) return 'bad_entries';
    previousTerm = entry.term;
    const entryType: number = entry.type;
    if (entryType !== 0 && entryType !== 1) return 'bad_entries';
    if (!entryDataOk(entry)) return 'bad_entry_data';
  }
  if (message.snapshot === undefined) return type === SNAPSHOT ? 'bad_snapshot' : 'ok';
  if (type !== SNAPSHOT) return 'bad_field';
  const metadata = message.snapshot.metadata;
  if (metadata === undefined) return 'bad_snapshot';
  if (!natural(metadata.index) || !natural(metadata.term) || metadata.term > message.term) return 'bad_snapshot';
  if (metadata.index > 0 && metadata.term === 0) return 'bad_snapshot';
  const voters = metadata.confState?.voters ?? [];
  const members = [...voters, ...(metadata.confState?.learners ?? [])];
  if (voters.length === 0 || members.length > 256) return 'bad_snapshot';
  if (!members.every(replicaId) || new Set(members).size !== members.length) return 'bad_snapshot';
  return 'ok';
}

function entryDataOk(entry: RaftEntry): boolean {
  if ((entry.type as number) === 1) {
    try {
      const change = decodeConfChange(entry.data);
      return replicaId(change.replicaId) && change.context.length <= 255;
    } catch {
      return false;
    }
  }
  return entry.data.length === 0 || referenceCommandOk(entry.data);
}

/** True when `data` decodes as a KV command that encodes back to exactly `data`, with a UTF-8 client id of at most 128 bytes. */
export function referenceCommandOk(data: Uint8Array): boolean {
  try {
    const command = decodeCommand(data);
    if (command.op === CommandOp.Expire) return encodeCommand({ op: command.op, key: EMPTY_KEY }, command.proposedAtMs).equals(data);
    const session = command.session;
    if (session !== undefined) {
      const clientId = Buffer.from(session.clientId, 'utf8');
      if (clientId.length > MAX_CLIENT_ID_BYTES || !isValidUtf8(clientId)) return false;
    }
    const withSession = session === undefined ? {} : { session };
    if (command.op === CommandOp.Txn) {
      const bytes = (key: string): Buffer => Buffer.from(key, 'latin1');
      const ops = (branch: typeof command.txn.success): TxnOp<Uint8Array, Uint8Array>[] =>
        branch.map((op) => (op.kind === TxnOpKind.Put ? { ...op, key: bytes(op.key) } : { kind: op.kind, key: bytes(op.key) }));
      const txn = {
        compares: command.txn.compares.map((compare) => ({ ...compare, key: bytes(compare.key) })),
        success: ops(command.txn.success),
        failure: ops(command.txn.failure),
      };
      return encodeCommand({ op: command.op, key: EMPTY_KEY, txn, ...withSession }, command.proposedAtMs).equals(data);
    }
    const key = Buffer.from(command.key, 'latin1');
    const request: WriteRequest =
      command.op === CommandOp.Put ? { op: command.op, key, value: command.value, ...withSession, ...(command.ttlMs > 0 ? { ttlMs: command.ttlMs } : {}) }
      : command.op === CommandOp.Delete ? { op: command.op, key, ...withSession }
      : { op: command.op, key, value: command.value, expectedVersion: command.expectedVersion, ...withSession };
    return encodeCommand(request, command.proposedAtMs).equals(data);
  } catch {
    return false;
  }
}
