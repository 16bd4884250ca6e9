/**
 * Bad peers against real nodes over loopback gRPC (issue 15): bytes that are no
 * `SendRequest`, a message no correct peer sends, and snapshot streams whose data the
 * checksum or the decoder refuses. The node answers each, counts it in its metrics, and
 * goes on serving.
 */
import { credentials, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type RaftMessage, RaftServiceClient, type SendSnapshotRequest } from '../../src/gen/kvstore/v1/raft.js';
import { ErrorCode, type PutResponse } from '../../src/gen/kvstore/v1/kvstore.js';
import { snapshotChecksum } from '../../src/node/snapshot-check.js';
import { waitFor } from '../support/wait-for.js';
import { NodeCluster } from './support/node-cluster.js';

/** A client of `RaftService.Send` that writes whatever bytes it is given. */
const RawSendClient = makeGenericClientConstructor({
  send: {
    path: '/kvstore.v1.RaftService/Send',
    requestStream: true,
    responseStream: false,
    requestSerialize: (bytes: Buffer) => bytes,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: () => Buffer.alloc(0),
    responseDeserialize: () => ({}),
  },
}, 'kvstore.v1.RaftService');

function message(fields: Partial<RaftMessage>): RaftMessage {
  return { shardId: 0, type: 7, to: 1, from: 2, term: 1, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: Buffer.alloc(0), ...fields };
}

describe('node: bad peers over gRPC (issue 15)', function () {
  this.timeout(60_000);
  let cluster: NodeCluster | undefined;

  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  it('answers undecodable bytes, bad messages and bad snapshots, counts them, and keeps serving', async () => {
    cluster = await NodeCluster.start({ nodeCount: 3, shardCount: 1 });
    await cluster.waitForLeaders();
    const target = cluster.nodes[1];
    if (target === undefined) throw new Error('no node 1');
    const replicaId = target.host.replica(0)?.replicaId ?? 0;

    // Bytes that are no SendRequest: the stream ends with an error, the node does not.
    const raw = new RawSendClient(target.address, credentials.createInsecure()) as unknown as {
      send(callback: (error: ServiceError | null) => void): { write(bytes: Buffer): boolean; end(): void };
      close(): void;
    };
    const failed = await new Promise<ServiceError | null>((resolve) => {
      const stream = raw.send(resolve);
      stream.write(Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]));
      stream.end();
    });
    raw.close();
    expect(failed?.message).to.match(/INTERNAL|deserializ/i);

    // Messages a correct peer never sends: refused and counted.
    const client = new RaftServiceClient(target.address, credentials.createInsecure());
    await new Promise<void>((resolve, reject) => {
      const stream = client.send((error) => (error === null ? resolve() : reject(error)));
      stream.write({ fromNodeId: 'n1', messages: [message({ to: replicaId, from: 1, term: 0 }), message({ to: replicaId, from: 1, type: 15 })] });
      stream.end();
    });
    await waitFor('the refusals counted', () => (target.host.inbound.stats.rejected.bad_field ?? 0) === 1 && target.host.inbound.stats.rejected.bad_type === 1, 10_000, 20);

    // Snapshot streams: one changed on the way, one whose data is not a KV snapshot. Both are answered not accepted.
    const sendSnapshot = (chunks: SendSnapshotRequest[]): Promise<boolean> => new Promise((resolve, reject) => {
      const stream = client.sendSnapshot((error, response) => (error === null ? resolve(response?.accepted === true) : reject(error)));
      for (const chunk of chunks) stream.write(chunk);
      stream.end();
    });
    const header = message({
      type: 9, to: replicaId, from: 1, term: target.host.replica(0)?.rawNode.term() ?? 1, // replica 1 lives on n1
      snapshot: { metadata: { index: 1_000, term: 1, confState: { voters: [1, 2, 3], learners: [] } }, data: Buffer.alloc(0) },
    });
    const data = Buffer.from('not a snapshot, in two chunks');
    const first = { fromNodeId: 'n1', message: header, chunk: data.subarray(0, 10), last: false, dataCrc32c: snapshotChecksum(data) };
    const changed = Buffer.from(data.subarray(10));
    changed[0] = (changed[0] as number) ^ 1;
    expect(await sendSnapshot([first, { fromNodeId: 'n1', chunk: changed, last: true }])).to.equal(false);
    expect(await sendSnapshot([first, { fromNodeId: 'n1', chunk: data.subarray(10), last: true }])).to.equal(false);
    expect(target.host.inbound.stats.rejected).to.deep.include({ snapshot_checksum: 1, snapshot_data: 1 });
    client.close();

    const metrics = await target.metrics.registry.getSingleMetricAsString('kvstore_node_raft_messages_rejected_total');
    for (const reason of ['bad_field', 'bad_type', 'snapshot_checksum', 'snapshot_data']) expect(metrics).to.include(`{reason="${reason}"} 1`);

    const put = await cluster.call<object, PutResponse>('put', { key: Buffer.from('k'), value: Buffer.from('v'), epoch: 0 });
    expect(put.error?.code ?? ErrorCode.ERROR_CODE_UNSPECIFIED).to.equal(ErrorCode.ERROR_CODE_UNSPECIFIED);
    expect(target.host.isClosed).to.equal(false);
  });
});
