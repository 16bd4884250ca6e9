/**
 * Issue 15: a replica's bound on its waiting writes and reads (src/node/replica-admission.ts),
 * on its own and through a real Replica whose fsync does not finish: past the bound a request
 * is refused at once, and the room comes back as the stalled requests are answered.
 */
import { expect } from 'chai';
import { createSilentLogger } from '../../src/common/index.js';
import { requestBytes } from '../../src/node/admission.js';
import { CommandOp } from '../../src/node/kv-command.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import { ReplicaAdmission } from '../../src/node/replica-admission.js';
import { Replica } from '../../src/node/replica.js';
import type { ReadOutcome, WriteOutcome } from '../../src/node/replica-requests.js';
import { MemoryStorage, type Ready, Role, SeededRandom } from '../../src/raft/index.js';

describe('node/replica-admission: a replica\'s waiting requests', () => {
  it('admits up to its bounds; the callback it hands on gives the room back once', () => {
    const admission = new ReplicaAdmission(2, 1000);
    const answered: string[] = [];
    const first = admission.admit(400, (outcome: string) => answered.push(outcome));
    const second = admission.admit(400, (outcome: string) => answered.push(outcome));
    expect(typeof first).to.equal('function');
    expect(admission.admit(1, () => undefined)).to.equal('replica_requests');
    if (typeof first !== 'function' || typeof second !== 'function') throw new Error('not admitted');
    first('a');
    first('again');
    expect(admission.requests).to.equal(1);
    expect(admission.admit(700, () => undefined), '400 + 700 > 1000 bytes').to.equal('replica_bytes');
    second('b');
    expect(answered).to.deep.equal(['a', 'again', 'b']);
    expect(admission.admit(5000, () => undefined), 'nothing waits: admitted whatever its size').to.not.be.a('string');
  });

  /** A one-voter leader whose fsync never finishes: what it proposes stays waiting. */
  function stalledLeader(admission: ReplicaAdmission): { replica: Replica; stall: () => Ready | undefined; finish: (ready: Ready) => void } {
    const replica = new Replica({
      shardId: 0,
      replicaId: 1,
      storage: new MemoryStorage({ confState: { voters: [1], learners: [] } }),
      machine: KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }]),
      logger: createSilentLogger(),
      snapshotIntervalEntries: 10_000,
      retainedEntries: 1_000,
      raft: { electionTick: 10, heartbeatTick: 2, preVote: true, checkQuorum: true, random: new SeededRandom(1) },
      admission,
    });
    const finish = (ready: Ready): void => {
      replica.applyDurable(ready);
      replica.handleReady(ready, { route: () => undefined });
    };
    replica.control({ kind: 'campaign' });
    for (let i = 0; i < 5; i++) {
      replica.step();
      const ready = replica.collectReady();
      if (ready !== undefined) finish(ready);
    }
    expect(replica.role).to.equal(Role.Leader);
    const stall = (): Ready | undefined => {
      replica.step();
      return replica.collectReady();
    };
    return { replica, stall, finish };
  }

  it('refuses writes and reads past its bound while an fsync stalls, and admits again once it finishes', () => {
    const { replica, stall, finish } = stalledLeader(new ReplicaAdmission(8, 1 << 20));
    const outcomes: (WriteOutcome | ReadOutcome)[] = [];
    const put = (i: number): void =>
      replica.write({ op: CommandOp.Put, key: Buffer.from(`k${i}`), value: Buffer.alloc(100) }, (outcome) => outcomes.push(outcome));
    for (let i = 0; i < 6; i++) put(i);
    const pending = stall(); // proposed and written, never synced: the writes wait
    expect(pending?.entries.length).to.equal(6);
    for (let i = 6; i < 10; i++) put(i);
    replica.read('k1', (outcome) => outcomes.push(outcome));
    replica.read('k2', (outcome) => outcomes.push(outcome));
    const refused = outcomes.filter((outcome) => !outcome.ok).map((outcome) => (outcome.ok ? '' : outcome.reason));
    expect(refused, '8 waiting: the 9th and later requests are refused at once').to.deep.equal(['REPLICA_REQUESTS_FULL', 'REPLICA_REQUESTS_FULL', 'REPLICA_REQUESTS_FULL', 'REPLICA_REQUESTS_FULL']);
    expect(replica.admitted.requests).to.equal(8);
    // The fsync completes: the six writes apply and the room comes back.
    finish(pending as Ready);
    for (let i = 0; i < 3; i++) {
      const ready = stall();
      if (ready !== undefined) finish(ready);
    }
    expect(outcomes.filter((outcome) => outcome.ok)).to.have.length(8);
    expect(replica.admitted).to.deep.equal({ requests: 0, bytes: 0 });
    put(99);
    expect(replica.admitted.requests).to.equal(1);
  });

  it('bounds the bytes waiting too', () => {
    const { replica, stall } = stalledLeader(new ReplicaAdmission(1000, 4 * requestBytes(2, 1024)));
    const refused: string[] = [];
    for (let i = 0; i < 6; i++) {
      replica.write({ op: CommandOp.Put, key: Buffer.from(`k${i}`), value: Buffer.alloc(1024) }, (outcome) => {
        if (!outcome.ok) refused.push(outcome.reason);
      });
    }
    stall();
    expect(refused).to.deep.equal(['REPLICA_BYTES_FULL', 'REPLICA_BYTES_FULL']);
  });
});
