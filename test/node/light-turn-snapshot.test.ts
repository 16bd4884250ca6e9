/**
 * A light turn (a sync in flight) must not step a leader's snapshot: the Ready still out may
 * hold committed membership changes to apply after the sync, and a restore under them let
 * the stale change apply on top of the snapshot's membership — the core then counted other
 * voters than the group (found in review of the light turns; cf. etcd-io/etcd#11510).
 */
import { expect } from 'chai';
import { createSilentLogger } from '../../src/common/index.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import { confChangeFor, Replica } from '../../src/node/replica.js';
import { systemRuntime } from '../../src/node/runtime.js';
import { TurnLoop } from '../../src/node/turn-loop.js';
import { ConfChangeType, encodeConfChange, type Entry, EntryType, MemoryStorage, type Message, MessageType, SeededRandom } from '../../src/raft/index.js';

const EMPTY = new Uint8Array(0);

function message(type: MessageType, fields: Partial<Message>): Message {
  return { type, to: 3, from: 1, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: EMPTY, ...fields };
}

/** Lets the turn loop's scheduled turns (setImmediate) and their promises run. */
async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('node/turn-loop: a light turn and a snapshot', () => {
  it('leaves a snapshot for the full turn while a Ready with a membership change is out', async () => {
    const members = [1, 2, 3].map((replicaId) => ({ replicaId, nodeId: `n${replicaId}` }));
    const follower = new Replica({
      shardId: 0,
      replicaId: 3,
      storage: new MemoryStorage({ confState: { voters: [1, 2, 3], learners: [] } }),
      machine: KvStateMachine.bootstrap(members),
      logger: createSilentLogger(),
      snapshotIntervalEntries: 10_000,
      retainedEntries: 1_000,
      raft: { electionTick: 10, heartbeatTick: 2, preVote: true, checkQuorum: true, random: new SeededRandom(3) },
    });
    const syncs: (() => void)[] = [];
    let fatal: unknown;
    const loop = new TurnLoop({
      runtime: systemRuntime,
      sync: () => new Promise<void>((resolve) => syncs.push(resolve)),
      flush: () => undefined,
      router: { route: () => undefined, isHosted: () => true },
      events: undefined,
      onFatal: (error) => {
        fatal = error;
      },
    });
    const addFour = (index: number, type: ConfChangeType): Entry => ({
      index, term: 1, type: EntryType.ConfChange, data: encodeConfChange(confChangeFor(type, 4, 'n4')),
    });

    // A move's first steps at the leader: 1 no-op, 2 AddLearner(4), 3 AddVoter(4). The
    // follower's full turn takes entries 1–2 with commit 2; AddLearner(4) applies only after
    // the sync, which stalls.
    follower.receive(message(MessageType.Append, { entries: [{ index: 1, term: 1, type: EntryType.Normal, data: EMPTY }, addFour(2, ConfChangeType.AddLearner)], commit: 2 }));
    loop.mark(follower);
    await settle();
    expect(syncs, 'a sync in flight').to.have.length(1);

    // The leader, its log compacted, sends a snapshot at 3 (voters 1–4); a tick brings a light turn.
    const machineAt3 = KvStateMachine.bootstrap(members);
    machineAt3.applyEmpty(1);
    machineAt3.applyMembershipChange(2, { type: 'add', replicaId: 4, nodeId: 'n4' });
    machineAt3.applyMembershipChange(3, { type: 'add', replicaId: 4, nodeId: 'n4' });
    const snapshot = { metadata: { index: 3, term: 1, confState: { voters: [1, 2, 3, 4], learners: [] } }, data: machineAt3.encodeSnapshot() };
    follower.receive(message(MessageType.Snapshot, { snapshot }));
    follower.pendingTicks += 1;
    loop.mark(follower);
    loop.ticked();
    await settle();
    expect(loop.stats.lightTurns, 'a light turn ran').to.be.greaterThan(0);
    expect(follower.rawNode.confState().voters, 'not restored in the light turn').to.have.members([1, 2, 3]);

    // The sync ends: AddLearner(4) applies; the next full turn restores and installs the snapshot.
    for (let round = 0; round < 5 && follower.machine.appliedIndex < 3; round++) {
      for (const release of syncs.splice(0)) release();
      await settle();
    }
    for (const release of syncs.splice(0)) release();
    await settle();
    expect(fatal).to.equal(undefined);
    expect(follower.machine.appliedIndex, 'snapshot installed').to.equal(3);
    // The core counts exactly the group's membership: voter 4 was not demoted by the stale change.
    expect(follower.rawNode.confState()).to.deep.equal({ voters: [1, 2, 3, 4], learners: [] });
    expect(follower.confState).to.deep.equal({ voters: [1, 2, 3, 4], learners: [] });
  });
});
