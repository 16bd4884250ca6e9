import { expect } from 'chai';
import type { RaftMessage } from '../../src/gen/kvstore/v1/raft.js';
import { InboundGate } from '../../src/node/inbound-gate.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import type { RejectReason } from '../../src/node/message-check.js';
import { RateLimitedLog } from '../../src/node/rate-limited-log.js';
import type { Replica } from '../../src/node/replica.js';
import { type NodeRuntime, systemRuntime } from '../../src/node/runtime.js';
import { snapshotChecksum } from '../../src/node/snapshot-check.js';
import { RecordingLog } from '../support/recording-log.js';

/** A clock the test moves. */
class Clock {
  nowMs = 0;
  readonly runtime: NodeRuntime = { ...systemRuntime, monotonicMs: () => this.nowMs };
}

/** Shard 0's replica 1 on this node ("self"), in a group with replica 2 on n2; its log ends at 10, term 3. */
function fakeReplica(): Replica {
  const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'self' }, { replicaId: 2, nodeId: 'n2' }]);
  return { shardId: 0, replicaId: 1, removed: false, machine, rawNode: { term: () => 3, lastIndex: () => 10 } } as unknown as Replica;
}

function heartbeat(fields: Partial<RaftMessage> = {}): RaftMessage {
  return {
    shardId: 0, type: 7, to: 1, from: 2, term: 3, logTerm: 0, index: 0, entries: [], commit: 5, reject: false, rejectHint: 0,
    context: Buffer.alloc(0), ...fields,
  };
}

describe('node/inbound-gate', () => {
  let log: RecordingLog;
  let clock: Clock;
  let rejections: [RejectReason, string][];
  let gate: InboundGate;
  const replica = fakeReplica();

  beforeEach(() => {
    log = new RecordingLog();
    clock = new Clock();
    rejections = [];
    gate = new InboundGate({
      nodeId: 'self', logger: log.logger, runtime: clock.runtime, shardCount: () => 4,
      replica: (shardId) => (shardId === 0 ? replica : undefined),
      events: { messageRejected: (reason, detail) => rejections.push([reason, detail]) },
    });
  });

  /** Admits `wire` from `from` and returns the refusal's reason, or 'ok'. */
  function verdict(from: string, wire: RaftMessage): RejectReason | 'ok' {
    const before = rejections.length;
    const admitted = gate.admit(from, wire);
    expect(rejections.length - before).to.equal(admitted ? 0 : 1);
    return admitted ? 'ok' : (rejections[rejections.length - 1] as [RejectReason, string])[0];
  }

  it('lets a correct message through, silently', () => {
    expect(verdict('n2', heartbeat())).to.equal('ok');
    expect(log.lines).to.deep.equal([]);
  });

  it('checks the sender, the shard, the replica, where `from` lives and a heartbeat\'s commit', () => {
    expect(verdict('', heartbeat())).to.equal('bad_sender');
    expect(verdict('self', heartbeat())).to.equal('bad_sender');
    expect(verdict('x'.repeat(65), heartbeat())).to.equal('bad_sender');
    expect(verdict('n2', heartbeat({ shardId: 4 }))).to.equal('unknown_shard');
    expect(verdict('n2', heartbeat({ shardId: 1 }))).to.equal('unknown_replica');
    expect(verdict('n2', heartbeat({ to: 3, from: 2 }))).to.equal('unknown_replica');
    expect(verdict('n3', heartbeat())).to.equal('wrong_node');
    expect(verdict('n3', heartbeat({ from: 7 }))).to.equal('ok'); // not a member yet: a leader adding this replica
    expect(verdict('n3', heartbeat({ type: 13, commit: 0 }))).to.equal('ok'); // a TransferLeader's `from` is the transferee
    expect(verdict('n2', heartbeat({ commit: 11 }))).to.equal('commit_beyond_log');
    expect(verdict('n2', heartbeat({ commit: 11, term: 2 }))).to.equal('ok'); // stale: the core answers it with its term
    expect(verdict('n2', heartbeat({ term: 0 }))).to.equal('bad_field');
  });

  it('lets messages reach a replica that applied its own removal: it may still have to vote until destroyed', () => {
    const removed = Object.assign(Object.create(replica) as Replica, { removed: true });
    const removedGate = new InboundGate({ nodeId: 'self', logger: log.logger, runtime: clock.runtime, shardCount: () => 4, replica: () => removed });
    expect(removedGate.admit('n2', heartbeat({ type: 3, commit: 0, index: 10, logTerm: 3 }))).to.equal(true); // a Vote
    expect(log.lines).to.deep.equal([]);
  });

  it('writes one warn line per refusal naming the peer and why; routine ones at debug', () => {
    gate.admit('n2', heartbeat({ term: 0 }));
    expect(log.lines).to.have.length(1);
    expect(log.lines[0]).to.deep.include({ level: 'warn', message: 'raft message from peer refused' });
    expect(log.lines[0]?.fields).to.include({ peer: 'n2', reason: 'bad_field', detail: 'term 0 on a Heartbeat', type: 'Heartbeat', shard: 0 });
    gate.admit('n2', heartbeat({ shardId: 1 }));
    expect(log.lines[1]?.level).to.equal('debug');
    expect(gate.stats.rejected).to.deep.equal({ bad_field: 1, unknown_replica: 1 });
  });

  it('counts and logs a snapshot stream that made no whole snapshot', () => {
    gate.refuseStream('n2', 'snapshot stream ended without its last chunk');
    expect(rejections).to.deep.equal([['bad_snapshot', 'snapshot stream ended without its last chunk']]);
    expect(log.lines.map((line) => [line.level, line.message, line.fields])).to.deep.equal([
      ['warn', 'raft message from peer refused', { peer: 'n2', reason: 'bad_snapshot', detail: 'snapshot stream ended without its last chunk' }],
    ]);
  });

  it('lets a Snapshot through only from the snapshot stream, its data checked first, and only once', () => {
    const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'self' }]);
    machine.applyEmpty(1);
    const data = machine.encodeSnapshot();
    const header = heartbeat({ type: 9, commit: 0, snapshot: { metadata: { index: 1, term: 3, confState: { voters: [1, 2], learners: [] } }, data: Buffer.alloc(0) } });
    expect(verdict('n2', header)).to.equal('bad_snapshot'); // on the message stream
    expect(gate.admit('n2', header, data)).to.equal(false); // data the gate did not check
    expect(gate.admitSnapshot('n2', heartbeat(), data, snapshotChecksum(data))).to.equal(false); // not a Snapshot
    expect(gate.admitSnapshot('n2', header, data, snapshotChecksum(data) ^ 1)).to.equal(false);
    expect(gate.admitSnapshot('n2', header, data, snapshotChecksum(data))).to.equal(true);
    expect(gate.admit('n2', header, data)).to.equal(true);
    expect(gate.admit('n2', header, data)).to.equal(false); // replayed
    expect(gate.stats.rejected).to.deep.equal({ bad_snapshot: 4, snapshot_checksum: 1 });
  });
});

describe('node/rate-limited-log', () => {
  it('writes one line per key per window and at most the window\'s budget, and tells what it held back', () => {
    const log = new RecordingLog();
    let nowMs = 0;
    const limited = new RateLimitedLog(log.logger, () => nowMs, { windowMs: 1_000, maxLinesPerWindow: 3 });
    expect(limited.write('warn', 'e', 'a', () => ({ n: 1 }))).to.equal(true);
    expect(limited.write('warn', 'e', 'a', () => ({ n: 2 }))).to.equal(false);
    expect(limited.write('warn', 'e', 'b', () => ({ n: 3 }))).to.equal(true);
    expect(limited.write('warn', 'e', 'c', () => ({ n: 4 }))).to.equal(true);
    expect(limited.write('warn', 'e', 'd', () => ({ n: 5 }))).to.equal(false); // the budget is spent
    nowMs = 999;
    expect(limited.write('warn', 'e', 'a', () => ({ n: 6 }))).to.equal(false);
    nowMs = 1_000;
    expect(limited.write('warn', 'e', 'a', () => ({ n: 7 }))).to.equal(true);
    expect(log.lines.map((line) => line.fields)).to.deep.equal([{ n: 1 }, { n: 3, suppressed: 1 }, { n: 4 }, { n: 7, suppressed: 2 }]);
    expect(limited.stats).to.deep.equal({ written: 4, suppressed: 3 });
  });
});
