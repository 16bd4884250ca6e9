/**
 * A light turn (a sync in flight) must not step a leader's snapshot: the Ready still out may
 * hold committed membership changes to apply after the sync, and a restore under them let
 * the stale change apply on top of the snapshot's membership — the core then counted other
 * voters than the group (found in review of the light turns; cf. etcd-io/etcd#11510).
 */
import { expect } from 'chai';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import { confChangeFor } from '../../src/node/conf-change-context.js';
import { systemRuntime } from '../../src/node/runtime.js';
import { TurnLoop } from '../../src/node/turn-loop.js';
import { ConfChangeType, encodeConfChange, type Entry, EntryType, type Message, MessageType } from '../../src/raft/index.js';
import { raftMessage, settle, THREE_MEMBERS, threeVoterReplica } from './support/turn-fixtures.js';

const EMPTY = new Uint8Array(0);
const message = (type: MessageType, fields: Partial<Message>): Message => raftMessage(type, 3, fields);

describe('node/turn-loop: a light turn and a snapshot', () => {
  it('leaves a snapshot for the full turn while a Ready with a membership change is out', async () => {
    const members = THREE_MEMBERS;
    const follower = threeVoterReplica(3, 3);
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
