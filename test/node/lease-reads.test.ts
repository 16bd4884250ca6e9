import { expect } from 'chai';
import { createSilentLogger } from '../../src/common/index.js';
import { CommandOp } from '../../src/node/kv-command.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import { type MessageRouter, Replica } from '../../src/node/replica.js';
import type { ReadOutcome } from '../../src/node/replica-requests.js';
import type { NodeRuntime } from '../../src/node/runtime.js';
import { ConfChangeType, MemoryStorage, type Message, MessageType, Role, SeededRandom } from '../../src/raft/index.js';
import type { GetResponse, PutResponse } from '../../src/gen/kvstore/v1/kvstore.js';
import { waitFor } from '../support/wait-for.js';
import { type ClusterOptions, NodeCluster } from './support/node-cluster.js';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

/**
 * Three replicas of one shard wired by hand: `turn()` runs each once, and messages wait in
 * a mailbox until `deliver()`, so a test decides exactly which messages a quorum has seen.
 */
class Group implements MessageRouter {
  readonly replicas: Replica[];
  mailbox: Message[] = [];
  /** Messages of these types are dropped instead of queued. */
  readonly dropTypes = new Set<MessageType>();
  readonly reads = { lease: 0, readIndex: 0 };

  constructor(options: { leaseMs: number; voteGuardMs?: number; recovered?: boolean; runtime?: NodeRuntime }) {
    const members = [1, 2, 3].map((replicaId) => ({ replicaId, nodeId: `n${replicaId}` }));
    this.replicas = members.map(({ replicaId }) => new Replica({
      shardId: 0,
      replicaId,
      storage: new MemoryStorage({ confState: { voters: [1, 2, 3], learners: [] } }),
      machine: KvStateMachine.bootstrap(members),
      logger: createSilentLogger(),
      snapshotIntervalEntries: 10_000,
      retainedEntries: 1_000,
      leaseMs: options.leaseMs,
      ...(options.voteGuardMs === undefined ? {} : { voteGuardMs: options.voteGuardMs }),
      ...(options.recovered === undefined ? {} : { recovered: options.recovered }),
      ...(options.runtime === undefined ? {} : { runtime: options.runtime }),
      events: {
        leaderChanged: () => undefined,
        proposalDropped: () => undefined,
        snapshotCreated: () => undefined,
        snapshotInstalled: () => undefined,
        keysExpired: () => undefined,
        readsServed: (_shard, path, count) => {
          if (path === 'lease') this.reads.lease += count;
          else this.reads.readIndex += count;
        },
      },
      raft: { electionTick: 10, heartbeatTick: 2, preVote: true, checkQuorum: true, random: new SeededRandom(replicaId) },
    }));
  }

  replica(id: number): Replica {
    const replica = this.replicas[id - 1];
    if (replica === undefined) throw new Error(`no replica ${id}`);
    return replica;
  }

  route(_from: Replica, message: Message): void {
    // Replicas outside the three (a learner being added) do not exist here.
    if (!this.dropTypes.has(message.type) && message.to >= 1 && message.to <= 3) this.mailbox.push(message);
  }

  /** One turn of every replica (storage is memory: persisting is immediate). */
  turn(): void {
    for (const replica of this.replicas) {
      replica.step();
      const ready = replica.collectReady();
      if (ready === undefined) continue;
      replica.applyDurable(ready);
      replica.handleReady(ready, this);
    }
  }

  /** Hands every queued message to its replica; returns how many. */
  deliver(): number {
    const messages = this.mailbox;
    this.mailbox = [];
    for (const message of messages) this.replica(message.to).receive(message);
    return messages.length;
  }

  /** Turns and delivers until nothing moves. */
  settle(): void {
    for (let i = 0; i < 50; i++) {
      this.turn();
      if (this.deliver() === 0 && !this.replicas.some((replica) => replica.hasWork())) return;
    }
    throw new Error('group did not settle');
  }

  /** Elects replica 1 and commits one write through it (which also earns a lease). */
  elect(): Replica {
    const leader = this.replica(1);
    leader.control({ kind: 'campaign' });
    this.settle();
    expect(leader.role).to.equal(Role.Leader);
    let written = false;
    leader.write({ op: CommandOp.Put, key: bytes('k'), value: bytes('v1') }, (outcome) => { written = outcome.ok; });
    this.settle();
    expect(written).to.equal(true);
    return leader;
  }

  /** Queues a read of `key` on `replica` and runs its turn (no messages delivered). */
  read(replica: Replica, key: string): ReadOutcome[] {
    const answers: ReadOutcome[] = [];
    replica.read(Buffer.from(key).toString('latin1'), (outcome) => answers.push(outcome));
    replica.step();
    const ready = replica.collectReady();
    if (ready !== undefined) {
      replica.applyDurable(ready);
      replica.handleReady(ready, this);
    }
    return answers;
  }
}

const valueOf = (outcome: ReadOutcome | undefined): string | undefined =>
  outcome?.ok === true && outcome.value !== undefined ? Buffer.from(outcome.value.value).toString() : undefined;

describe('node/lease reads', function () {
  this.timeout(30_000);

  it('answers a read at once under the lease a committed write earned, with no message exchanged', () => {
    const group = new Group({ leaseMs: 60_000 });
    const leader = group.elect();
    group.mailbox = [];
    const answers = group.read(leader, 'k');
    expect(answers).to.have.length(1);
    expect(valueOf(answers[0])).to.equal('v1');
    expect(group.reads).to.deep.equal({ lease: 1, readIndex: 0 });
  });

  it('confirms every read through a ReadIndex round when lease reads are off', () => {
    const group = new Group({ leaseMs: 0 });
    const leader = group.elect();
    const answers = group.read(leader, 'k');
    expect(answers, 'answered before any follower confirmed').to.have.length(0);
    expect(group.mailbox.some((message) => message.type === MessageType.Heartbeat)).to.equal(true);
    group.settle();
    expect(valueOf(answers[0])).to.equal('v1');
    expect(group.reads).to.deep.equal({ lease: 0, readIndex: 1 });
  });

  it('falls back to ReadIndex once the lease ran out, and the confirmed round renews it', async () => {
    const group = new Group({ leaseMs: 40 });
    const leader = group.elect();
    // Let the lease run out (the clock is the point here): then a read needs a quorum again.
    const earnedMs = performance.now();
    await waitFor('the lease to run out', () => performance.now() - earnedMs > 80 || undefined, 10_000, 20);
    const waiting = group.read(leader, 'k');
    expect(waiting, 'answered after the lease ran out').to.have.length(0);
    group.settle();
    expect(valueOf(waiting[0])).to.equal('v1');
    expect(group.reads).to.deep.equal({ lease: 0, readIndex: 1 });
    // The round just confirmed renewed the lease.
    const answers = group.read(leader, 'k');
    expect(valueOf(answers[0])).to.equal('v1');
    expect(group.reads).to.deep.equal({ lease: 1, readIndex: 1 });
  });

  it('ends the lease when the leader sends TimeoutNow, even if the transfer never happens', () => {
    const group = new Group({ leaseMs: 60_000 });
    const leader = group.elect();
    group.dropTypes.add(MessageType.TimeoutNow);
    leader.control({ kind: 'transfer-leader', to: 2 });
    group.turn();
    expect(group.mailbox.length).to.equal(0); // TimeoutNow went out (and was lost)
    expect(leader.rawNode.status().leadTransferee).to.equal(2);
    // The transferee may be campaigning past every follower's promise: no lease read now.
    const answers = group.read(leader, 'k');
    expect(answers, 'answered under a revoked lease').to.have.length(0);
    expect(group.reads.lease).to.equal(0);
    group.settle();
    expect(valueOf(answers[0])).to.equal('v1');
  });

  it('ends the lease when a membership change applies', () => {
    const group = new Group({ leaseMs: 60_000 });
    const leader = group.elect();
    expect(valueOf(group.read(leader, 'k')[0])).to.equal('v1'); // under the lease
    leader.control({ kind: 'conf-change', change: { type: ConfChangeType.AddLearner, replicaId: 4, context: new Uint8Array(0) } });
    group.settle();
    expect(leader.confState.learners).to.include(4);
    const answers = group.read(leader, 'k');
    expect(answers, 'answered under a lease earned from the old configuration').to.have.length(0);
  });

  it('a recovered replica ignores vote requests while its guard runs', () => {
    const guarded = new Group({ leaseMs: 60_000, voteGuardMs: 60_000, recovered: true });
    const fresh = new Group({ leaseMs: 60_000 });
    for (const group of [guarded, fresh]) {
      group.replica(2).receive({
        type: MessageType.Vote, from: 1, to: 2, term: 5, logTerm: 1, index: 1_000, entries: [], commit: 0,
        reject: false, rejectHint: 0, context: new Uint8Array(0),
      });
      group.turn();
    }
    expect(guarded.mailbox.filter((message) => message.type === MessageType.VoteResponse)).to.have.length(0);
    expect(guarded.replica(2).rawNode.status().term).to.be.lessThan(5);
    const granted = fresh.mailbox.filter((message) => message.type === MessageType.VoteResponse && !message.reject);
    expect(granted).to.have.length(1);
  });
});

/** A clock the test moves by hand; replicas driven by `Group` never schedule anything. */
class ManualClock implements NodeRuntime {
  nowMs = 1_000;
  monotonicMs(): number {
    return this.nowMs;
  }
  wallClockMs(): number {
    return 1_700_000_000_000 + this.nowMs;
  }
  runSoon(): void {
    throw new Error('replicas do not schedule');
  }
  runAfter(): () => void {
    throw new Error('replicas do not schedule');
  }
  runEvery(): () => void {
    throw new Error('replicas do not schedule');
  }
  randomSeed(): number {
    return 1;
  }
}

describe('node/lease reads: the promise behind the lease (issue 14, bug 2)', () => {
  it('a campaign queued once the promise ran out is dropped if the leader spoke meanwhile: no stale lease read', () => {
    // L = 1 leads with a lease; F = 3 is the replica the fast failover tells to campaign; G = 2
    // is cut off from L. Lease 200 ms, promise 300 ms (the host's ratios of a 500 ms timeout).
    const clock = new ManualClock();
    const group = new Group({ leaseMs: 200, voteGuardMs: 300, runtime: clock });
    const leader = group.elect();
    const [follower, cutOff] = [group.replica(3), group.replica(2)];
    // Everyone's promise to L runs out; L's lease is long gone too.
    clock.nowMs += 400;
    // The failover timer saw the promise expired: both forget L, and F is told to campaign.
    follower.control({ kind: 'forget-leader', leader: leader.replicaId });
    follower.control({ kind: 'campaign' });
    cutOff.control({ kind: 'forget-leader', leader: leader.replicaId });
    // Before F's turn, L starts a ReadIndex round: its heartbeat reaches F, not G.
    const confirmed = group.read(leader, 'k');
    expect(confirmed, 'no lease: the read waits for its round').to.have.length(0);
    group.mailbox = group.mailbox.filter((message) => message.to !== cutOff.replicaId);
    group.deliver();
    // F's turn steps L's heartbeat, then the actions: F keeps L, G (not heard from L) forgets it.
    group.turn();
    expect(follower.leaderId, 'F heard from L: it keeps it').to.equal(leader.replicaId);
    // F's acknowledgement reaches L (the round confirms and renews L's lease); after that
    // L hears nothing more for a while (a slow link), while F and G go on.
    group.mailbox = group.mailbox.filter((message) => message.to === 1 && message.type === MessageType.HeartbeatResponse || message.to !== 1);
    group.deliver();
    leader.step();
    const ready = leader.collectReady();
    if (ready !== undefined) {
      leader.applyDurable(ready);
      leader.handleReady(ready, group);
    }
    expect(valueOf(confirmed[0]), 'the round confirmed').to.equal('v1');
    for (let i = 0; i < 20; i++) {
      group.mailbox = group.mailbox.filter((message) => message.to !== 1);
      for (const replica of [follower, cutOff]) {
        replica.step();
        const next = replica.collectReady();
        if (next === undefined) continue;
        replica.applyDurable(next);
        replica.handleReady(next, group);
      }
      group.mailbox = group.mailbox.filter((message) => message.to !== 1);
      group.deliver();
    }
    // Had F become leader with G, a write it committed would be missing from L's lease read.
    let written = false;
    follower.write({ op: CommandOp.Put, key: bytes('k'), value: bytes('v2') }, (outcome) => { written = outcome.ok; });
    for (let i = 0; i < 20; i++) {
      for (const replica of [follower, cutOff]) {
        replica.step();
        const next = replica.collectReady();
        if (next === undefined) continue;
        replica.applyDurable(next);
        replica.handleReady(next, group);
      }
      group.mailbox = group.mailbox.filter((message) => message.to !== 1);
      group.deliver();
    }
    const answers = group.read(leader, 'k');
    expect(written && valueOf(answers[0]) === 'v1', 'stale lease read at the old leader').to.equal(false);
    expect(follower.role, 'F must not campaign inside its promise').to.not.equal(Role.Leader);
  });
});

describe('node/fast failover: the successor\'s campaign retries', () => {
  it('a retry that finds the successor already a candidate leaves its vote round alone (no extra term)', () => {
    const clock = new ManualClock();
    const group = new Group({ leaseMs: 200, voteGuardMs: 300, runtime: clock });
    group.elect();
    const termBefore = group.replica(2).rawNode.term();
    clock.nowMs += 400; // every promise to 1 ran out: 1 is gone
    const [successor, other] = [group.replica(2), group.replica(3)];
    for (const replica of [successor, other]) replica.control({ kind: 'forget-leader', leader: 1 });
    successor.control({ kind: 'campaign' });
    const exchange = (): void => {
      group.mailbox = group.mailbox.filter((message) => message.to !== 1);
      group.deliver();
      group.turn();
    };
    group.turn(); // 2 sends its pre-votes; 3 forgets 1
    exchange(); // 3 grants the pre-vote
    group.mailbox = group.mailbox.filter((message) => message.to !== 1);
    group.deliver(); // the grant waits in 2's inbox, while the host still sees 2 as a pre-candidate
    successor.control({ kind: 'campaign' }); // the failover's retry
    for (let i = 0; i < 10; i++) exchange();
    expect(successor.role).to.equal(Role.Leader);
    expect(successor.rawNode.term(), 'elected in the first vote round').to.equal(termBefore + 1);
  });
});

describe('node/lease reads on in-process nodes: the flag and the fast failover', function () {
  this.timeout(60_000);
  let cluster: NodeCluster | undefined;

  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  /** Three in-process nodes hosting one shard, and the index of the node that leads it. */
  async function oneShard(overrides?: ClusterOptions['overrides']): Promise<{ c: NodeCluster; leader: number }> {
    const c = await NodeCluster.start({ nodeCount: 3, shardCount: 1, ...(overrides === undefined ? {} : { overrides }) });
    cluster = c;
    await c.waitForLeaders();
    return { c, leader: await waitFor('leader', () => c.leaderOf(0), 10_000, 20) };
  }

  it('a node started without lease reads confirms every read through ReadIndex', async () => {
    const { c, leader } = await oneShard({ leaseReads: false });
    expect(c.nodes.map((node) => node?.host.leaseMs)).to.deep.equal([0, 0, 0]);
    await c.call<object, PutResponse>('put', { key: bytes('k'), value: bytes('v'), epoch: 0 });
    for (let i = 0; i < 5; i++) {
      const got = await c.call<object, GetResponse>('get', { key: bytes('k'), epoch: 0 });
      expect(got.value.toString()).to.equal('v');
    }
    const reads = await c.nodes[leader]?.metrics.registry.getSingleMetric('kvstore_node_reads_total')?.get();
    const byPath = Object.fromEntries((reads?.values ?? []).map((value): [string, number] => [String(value.labels['path']), value.value]));
    expect(byPath).to.deep.equal({ read_index: 5 });
  });

  it('a failure report about a leader that is still talking deposes nobody', async () => {
    const { c, leader } = await oneShard();
    const leaderHost = c.nodes[leader]?.host;
    const term = leaderHost?.replica(0)?.term ?? 0;
    const guardMs = leaderHost?.voteGuardMs ?? 0;
    // A stream can break without its node dying (a network fault): the followers must keep
    // the promise behind the leader's lease while its heartbeats still arrive.
    for (const [index, node] of c.nodes.entries()) if (index !== leader) node?.host.reportPeerFailed(leaderHost?.nodeId ?? '');
    const untilMs = performance.now() + 3 * guardMs;
    await waitFor('the window to pass', () => {
      expect(c.leaderOf(0)).to.equal(leader);
      expect(leaderHost?.replica(0)?.term).to.equal(term);
      return performance.now() > untilMs || undefined;
    }, 10_000, 20);
  });

  it('survivors of a leader cut off mid-lease elect only after the vote guard since its last message', async () => {
    const { c, leader: oldLeader } = await oneShard();
    const oldHost = c.nodes[oldLeader]?.host;
    const oldReplicaId = oldHost?.replica(0)?.replicaId ?? 0;
    const guardMs = oldHost?.voteGuardMs ?? 0;
    expect(guardMs).to.be.greaterThan(0);
    const hosts = c.nodes.flatMap((node, index) => (node === undefined || index === oldLeader ? [] : [node.host]));
    const survivors = hosts.map((host) => host.replica(0)).filter((replica) => replica !== undefined);
    expect(survivors).to.have.length(2);
    // When each survivor last received anything from the old leader (stepped no earlier).
    let lastHeard = 0;
    for (const replica of survivors) {
      const receive = replica.receive.bind(replica);
      replica.receive = (message) => {
        if (message.from === oldReplicaId) lastHeard = Math.max(lastHeard, performance.now());
        receive(message);
      };
    }
    await waitFor('a heartbeat from the leader', () => lastHeard > 0 || undefined, 10_000, 20);
    const heard = lastHeard;
    await waitFor('the next heartbeat', () => lastHeard > heard || undefined, 10_000, 20);
    // Cut the leader off right after that heartbeat, alive and maybe holding a lease (a
    // partition), and report its streams broken: without the wait, the survivors would elect
    // within ~150 ms, inside the promise behind that lease.
    await oldHost?.transport.close();
    for (const host of hosts) host.reportPeerFailed(oldHost?.nodeId ?? '');
    const newLeader = await waitFor('a new leader', () => survivors.find((replica) => replica.role === Role.Leader), 10_000, 20);
    expect(newLeader.leaderSinceMs - lastHeard).to.be.at.least(guardMs);
  });
});
