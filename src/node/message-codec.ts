/**
 * Conversion between the Raft core's messages and the wire's `RaftMessage`. The
 * numeric enums are equal by design (raft.proto), so types convert with a cast and
 * bytes are shared, not copied.
 * @internal
 */
import type { RaftEntry, RaftMessage, RaftSnapshot } from '../gen/kvstore/v1/raft.js';
import type { Entry, Message, Snapshot } from '../raft/index.js';
import { asBuffer } from './binary-codec.js';

const EMPTY = Buffer.alloc(0);

/** A core message for shard `shardId` as a wire message. Snapshot data is sent separately when `withoutSnapshotData`. */
export function toWireMessage(shardId: number, message: Message, withoutSnapshotData = false): RaftMessage {
  const wire: RaftMessage = {
    shardId,
    type: message.type as number,
    to: message.to,
    from: message.from,
    term: message.term,
    logTerm: message.logTerm,
    index: message.index,
    entries: message.entries.length === 0 ? [] : message.entries.map(toWireEntry),
    commit: message.commit,
    reject: message.reject,
    rejectHint: message.rejectHint,
    context: message.context.length === 0 ? EMPTY : asBuffer(message.context),
  };
  if (message.snapshot !== undefined) wire.snapshot = toWireSnapshot(message.snapshot, withoutSnapshotData);
  return wire;
}

function toWireEntry(entry: Entry): RaftEntry {
  return { term: entry.term, index: entry.index, type: entry.type as number, data: asBuffer(entry.data) };
}

function toWireSnapshot(snapshot: Snapshot, withoutData: boolean): RaftSnapshot {
  const { index, term, confState } = snapshot.metadata;
  return {
    metadata: { index, term, confState: { voters: [...confState.voters], learners: [...confState.learners] } },
    data: withoutData ? EMPTY : asBuffer(snapshot.data),
  };
}

/** A wire message as a core message; `snapshotData` replaces the (chunked) snapshot data when given. */
export function fromWireMessage(wire: RaftMessage, snapshotData?: Uint8Array): Message {
  const message: Message = {
    type: wire.type as number,
    to: wire.to,
    from: wire.from,
    term: wire.term,
    logTerm: wire.logTerm,
    index: wire.index,
    entries: wire.entries.length === 0 ? [] : wire.entries.map(fromWireEntry),
    commit: wire.commit,
    reject: wire.reject,
    rejectHint: wire.rejectHint,
    context: wire.context,
  };
  if (wire.snapshot !== undefined) {
    const metadata = wire.snapshot.metadata;
    message.snapshot = {
      metadata: {
        index: metadata?.index ?? 0,
        term: metadata?.term ?? 0,
        confState: { voters: metadata?.confState?.voters ?? [], learners: metadata?.confState?.learners ?? [] },
      },
      data: snapshotData ?? wire.snapshot.data,
    };
  }
  return message;
}

function fromWireEntry(entry: RaftEntry): Entry {
  return { term: entry.term, index: entry.index, type: entry.type as number, data: entry.data };
}
