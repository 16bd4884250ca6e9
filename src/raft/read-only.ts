/**
 * ReadIndex bookkeeping on the leader (Raft thesis §6.4; etcd `read_only.go`,
 * safe mode): reads wait until a heartbeat round started after they arrived is
 * acknowledged by a majority, proving the leader was still the leader.
 *
 * Unlike etcd, reads are batched: every read that arrives in one turn joins
 * one round, so many reads cost one heartbeat to each follower.
 */
import type { ReplicaId } from './types.js';

/** One read waiting for its index: local (`from` = the leader itself) or forwarded by a follower. */
export interface ReadRequest {
  from: ReplicaId;
  context: Uint8Array;
}

/** A heartbeat round confirming leadership for a batch of reads. */
export interface ReadRound {
  /** Identifies the round in heartbeat contexts. */
  readonly key: number;
  /** The commit index when the round started: the read index of its requests. */
  readonly index: number;
  readonly requests: ReadRequest[];
  readonly acks: Map<ReplicaId, boolean>;
}

/** Encodes a round key as a heartbeat context (8 bytes, big-endian). */
export function encodeRoundKey(key: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, Math.floor(key / 0x1_0000_0000));
  view.setUint32(4, key >>> 0);
  return bytes;
}

/** Decodes a heartbeat context into a round key, or undefined if it is not one. */
export function decodeRoundKey(context: Uint8Array): number | undefined {
  if (context.length !== 8) return undefined;
  const view = new DataView(context.buffer, context.byteOffset, 8);
  return view.getUint32(0) * 0x1_0000_0000 + view.getUint32(4);
}

/** Rounds in start order. A round's acks also confirm every earlier round. */
export class ReadOnly {
  private rounds: ReadRound[] = [];
  private readonly byKey = new Map<number, ReadRound>();

  /** Starts a round for `requests` at read index `index`; the leader acks itself. */
  start(key: number, index: number, requests: ReadRequest[], self: ReplicaId): ReadRound {
    const round: ReadRound = { key, index, requests, acks: new Map([[self, true]]) };
    this.rounds.push(round);
    this.byKey.set(key, round);
    return round;
  }

  /** Records `from`'s heartbeat ack of round `key`; the round, if still pending. */
  recordAck(from: ReplicaId, key: number): ReadRound | undefined {
    const round = this.byKey.get(key);
    if (round !== undefined) round.acks.set(from, true);
    return round;
  }

  /** Completes round `key` and every earlier one, returning them oldest first. */
  advance(key: number): ReadRound[] {
    const position = this.rounds.findIndex((round) => round.key === key);
    if (position < 0) return [];
    const done = this.rounds.slice(0, position + 1);
    this.rounds = this.rounds.slice(position + 1);
    for (const round of done) this.byKey.delete(round.key);
    return done;
  }

  /** Number of rounds waiting. */
  get pendingRounds(): number {
    return this.rounds.length;
  }

  /** The most recent round's key, if any (heartbeats carry it so acks can finish it). */
  lastKey(): number | undefined {
    return this.rounds[this.rounds.length - 1]?.key;
  }
}
