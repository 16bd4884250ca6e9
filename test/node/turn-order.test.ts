/**
 * The replica's half of the turn loop's durability order (src/node/turn-loop.ts): which
 * Readies may send before their fsync, and which must sync before they apply.
 */
import { expect } from 'chai';
import { createSilentLogger } from '../../src/common/index.js';
import { CommandOp } from '../../src/node/kv-command.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import { confChangeFor } from '../../src/node/conf-change-context.js';
import { Replica } from '../../src/node/replica.js';
import { systemRuntime } from '../../src/node/runtime.js';
import { TurnLoop } from '../../src/node/turn-loop.js';
import { raftMessage, settle, threeVoterReplica } from './support/turn-fixtures.js';
import { ConfChangeType, EntryType, MemoryStorage, type Message, MessageType, type Ready, Role, SeededRandom } from '../../src/raft/index.js';

/** A one-voter group (replica 1) with a learner (replica 2) that never answers. */
function oneVoterWithLearner(): Replica {
  const members = [{ replicaId: 1, nodeId: 'n1' }];
  return new Replica({
    shardId: 0,
    replicaId: 1,
    storage: new MemoryStorage({ confState: { voters: [1], learners: [2] } }),
    machine: KvStateMachine.bootstrap(members),
    logger: createSilentLogger(),
    snapshotIntervalEntries: 10_000,
    retainedEntries: 1_000,
    raft: { electionTick: 10, heartbeatTick: 2, preVote: true, checkQuorum: true, random: new SeededRandom(1) },
  });
}

/** One turn without a router: step, collect, finish as if the sync completed. */
function turn(replica: Replica): Ready | undefined {
  replica.step();
  const ready = replica.collectReady();
  if (ready === undefined) return undefined;
  replica.applyDurable(ready);
  replica.handleReady(ready, { route: () => undefined });
  return ready;
}

const message = (type: MessageType, fields: Partial<Message>): Message => raftMessage(type, 2, fields);

describe('node/turn order: early sends and syncs before applying', () => {
  it('a leader elected in the turn it granted a pre-vote sends both before its fsync (simulator seed 33764)', async () => {
    const replica = threeVoterReplica(2, 1);
    const sent: Message[] = [];
    let fatal: unknown;
    const loop = new TurnLoop({
      runtime: systemRuntime,
      sync: () => Promise.resolve(),
      flush: () => undefined,
      router: { route: (_replica, sentMessage) => sent.push(sentMessage), isHosted: () => true },
      events: undefined,
      onFatal: (error) => {
        fatal = error;
      },
    });
    const run = async (...inbox: Message[]): Promise<void> => {
      for (const received of inbox) replica.receive(received);
      loop.mark(replica);
      await settle();
    };
    // A candidate at term 1, its term and vote durable.
    replica.control({ kind: 'campaign' });
    await run();
    await run(message(MessageType.PreVoteResponse, { term: 1 }));
    expect(replica.rawNode.role()).to.equal(Role.Candidate);
    expect(replica.term, 'term 1 durable').to.equal(1);
    // One turn: replica 3 asks for a pre-vote at term 2 (granted: no leader is known), then
    // replica 1's vote elects this one. The Ready grants the pre-vote at term 2 and appends
    // at term 1; the term and vote are unchanged, so it sends before its fsync.
    sent.length = 0;
    await run(message(MessageType.PreVote, { from: 3, term: 2 }), message(MessageType.VoteResponse, { term: 1 }));
    expect(fatal).to.equal(undefined);
    expect(replica.rawNode.role()).to.equal(Role.Leader);
    const preVoteAnswer = sent.find((answer) => answer.type === MessageType.PreVoteResponse);
    expect(preVoteAnswer).to.deep.include({ to: 3, term: 2, reject: false });
    expect(sent.some((append) => append.type === MessageType.Append && append.term === 1)).to.equal(true);
  });

  it('a leader sends before its fsync only once its term and vote are durable', () => {
    const replica = oneVoterWithLearner();
    replica.control({ kind: 'campaign' });
    replica.step();
    const elected = replica.collectReady();
    expect(elected?.softState?.role, 'won its own election at once').to.equal(Role.Leader);
    // This Ready makes the new term and the vote durable: a learner must not hear of the
    // term before, or a power cut could let the leader reuse it for other entries.
    expect(replica.maySendBeforeSync(elected as Ready)).to.equal(false);
    replica.handleReady(elected as Ready, { route: () => undefined });
    for (let i = 0; i < 3 && turn(replica) !== undefined; i++) {
      // the no-op commits once durable
    }
    replica.write({ op: CommandOp.Put, key: Buffer.from('k'), value: Buffer.from('v') }, () => undefined);
    replica.step();
    const proposal = replica.collectReady();
    expect(proposal?.entries.length).to.equal(1);
    expect(replica.maySendBeforeSync(proposal as Ready), 'entries alone may go out before the leader\'s fsync').to.equal(true);
  });

  it('a Ready that applies a membership change syncs first, and applyDurable leaves the change for after the sync', () => {
    const replica = oneVoterWithLearner();
    replica.control({ kind: 'campaign' });
    while (turn(replica) !== undefined) {
      // elected, no-op durable and applied
    }
    replica.control({ kind: 'conf-change', change: confChangeFor(ConfChangeType.RemoveReplica, 2, 'n2') });
    turn(replica); // appended and durable
    replica.step();
    const commit = replica.collectReady() as Ready;
    expect(commit.mustSync, 'a commit-only Ready writes nothing that must be synced').to.equal(false);
    expect(commit.committedEntries.some((entry) => entry.type === EntryType.ConfChange)).to.equal(true);
    expect(replica.needsSync(commit), 'but it applies a membership change').to.equal(true);
    replica.applyDurable(commit);
    expect(replica.confState.learners, 'not applied before the sync').to.deep.equal([2]);
    replica.handleReady(commit, undefined);
    expect(replica.confState.learners, 'applied after it').to.deep.equal([]);
  });
});
