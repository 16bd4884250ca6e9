/** Shared pieces of the tests that drive one real Replica through the TurnLoop. */
import { createSilentLogger } from '../../../src/common/index.js';
import { KvStateMachine } from '../../../src/node/kv-state-machine.js';
import { Replica } from '../../../src/node/replica.js';
import { MemoryStorage, type Message, type MessageType, SeededRandom } from '../../../src/raft/index.js';

/** The members of a three-voter group: replicas 1–3 on nodes n1–n3. */
export const THREE_MEMBERS = [1, 2, 3].map((replicaId) => ({ replicaId, nodeId: `n${replicaId}` }));

/** Replica `replicaId` of a freshly bootstrapped three-voter group of shard `shardId`, in memory. */
export function threeVoterReplica(replicaId: number, seed: number, shardId = 0): Replica {
  return new Replica({
    shardId,
    replicaId,
    storage: new MemoryStorage({ confState: { voters: [1, 2, 3], learners: [] } }),
    machine: KvStateMachine.bootstrap(THREE_MEMBERS),
    logger: createSilentLogger(),
    snapshotIntervalEntries: 10_000,
    retainedEntries: 1_000,
    raft: { electionTick: 10, heartbeatTick: 2, preVote: true, checkQuorum: true, random: new SeededRandom(seed) },
  });
}

/** A message from replica 1 at term 1 to `to`, with `fields` set. */
export function raftMessage(type: MessageType, to: number, fields: Partial<Message>): Message {
  return { type, to, from: 1, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0), ...fields };
}

/** Lets the turn loop's scheduled turns (setImmediate) and their promises run. */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}
