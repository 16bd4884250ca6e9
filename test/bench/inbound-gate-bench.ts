/**
 * `node dist/test/bench/inbound-gate-bench.js`: what the inbound gate (`src/node/inbound-gate.ts`)
 * costs per received message on the accepting path, next to what the node already spends on
 * that message: decoding it from its `SendRequest` (`decodeSendRequest`, per message of a
 * batch of 64) and converting it for the core (`fromWireMessage`). Messages as a 3-node
 * group exchanges them: heartbeats, append acks, and appends of 1, 16 and 64 entries of
 * client writes (a session, a 10-byte key, a 100-byte value). Prints ns per message, the
 * median of BENCH_ROUNDS (default 7) rounds of BENCH_MESSAGES (default 200000) each.
 */
import { performance } from 'node:perf_hooks';
import { createSilentLogger } from '../../src/common/index.js';
import type { RaftMessage } from '../../src/gen/kvstore/v1/raft.js';
import { InboundGate } from '../../src/node/inbound-gate.js';
import { CommandOp, encodeCommand } from '../../src/node/kv-command.js';
import { KvStateMachine } from '../../src/node/kv-state-machine.js';
import { fromWireMessage } from '../../src/node/message-codec.js';
import type { Replica } from '../../src/node/replica.js';
import { systemRuntime } from '../../src/node/runtime.js';
import { decodeSendRequest, encodeSendRequest } from '../../src/node/send-request-codec.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 7);
const MESSAGES = Number(process.env['BENCH_MESSAGES'] ?? 200_000);

const machine = KvStateMachine.bootstrap([{ replicaId: 1, nodeId: 'n1' }, { replicaId: 2, nodeId: 'n2' }, { replicaId: 3, nodeId: 'n3' }]);
const replica = { shardId: 0, replicaId: 1, removed: false, machine, rawNode: { term: () => 7, lastIndex: () => 1_000_000 } } as unknown as Replica;
const gate = new InboundGate({
  nodeId: 'n1', logger: createSilentLogger(), runtime: systemRuntime, shardCount: () => 64, replica: () => replica,
});

function message(fields: Partial<RaftMessage>): RaftMessage {
  return { shardId: 0, type: 7, to: 1, from: 2, term: 7, logTerm: 0, index: 0, entries: [], commit: 900_000, reject: false, rejectHint: 0, context: Buffer.alloc(0), ...fields };
}

function append(entries: number): RaftMessage {
  const index = 900_000;
  return message({
    type: 1, logTerm: 7, index,
    entries: Array.from({ length: entries }, (_, i) => ({
      term: 7, index: index + 1 + i, type: 0,
      data: encodeCommand({ op: CommandOp.Put, key: Buffer.from(`key-${i % 100}`.padEnd(10, '.')), value: Buffer.alloc(100, i), session: { clientId: 'client-0123456789', seq: 1_000 + i } }, 1_700_000_000_000),
    })),
  });
}

/** Nanoseconds per call of `body` over `count` calls: the median of the rounds. */
function measure(count: number, body: (i: number) => void): number {
  const rounds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    for (let i = 0; i < count; i++) body(i);
    rounds.push(((performance.now() - started) * 1e6) / count);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(rounds.length / 2)] as number;
}

const cases: [string, RaftMessage][] = [
  ['heartbeat', message({ context: Buffer.alloc(8) })],
  ['append ack', message({ type: 2, index: 900_010 })],
  ['append, 1 entry', append(1)],
  ['append, 16 entries', append(16)],
  ['append, 64 entries', append(64)],
];

console.log('message              gate ns   decode ns   to-core ns   gate / (decode + to-core)');
for (const [name, wire] of cases) {
  if (!gate.admit('n2', wire)) throw new Error(`the bench's ${name} was refused`);
  const perMessageBatch = Math.max(1, Math.floor(64 / Math.max(1, wire.entries.length)));
  const batch = encodeSendRequest({ fromNodeId: 'n2', messages: Array.from({ length: perMessageBatch }, () => wire) });
  const received = decodeSendRequest(batch).messages[0] as RaftMessage;
  const count = Math.max(1_000, Math.floor(MESSAGES / Math.max(1, wire.entries.length / 4)));
  let admitted = 0;
  const gateNs = measure(count, () => {
    if (gate.admit('n2', received)) admitted += 1;
  });
  const decodeNs = measure(Math.max(100, Math.floor(count / perMessageBatch)), () => {
    decodeSendRequest(batch);
  }) / perMessageBatch;
  let sink = 0;
  const convertNs = measure(count, () => {
    sink += fromWireMessage(received).entries.length;
  });
  if (admitted === 0 || sink < 0) throw new Error('nothing measured');
  console.log(`${name.padEnd(20)} ${gateNs.toFixed(0).padStart(7)}   ${decodeNs.toFixed(0).padStart(9)}   ${convertNs.toFixed(0).padStart(10)}   ${(gateNs / (decodeNs + convertNs)).toFixed(2).padStart(6)}`);
}
