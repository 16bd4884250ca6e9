/**
 * Issue 15, admission control: the node's and each connection's bounds on requests and bytes
 * in flight (src/node/admission.ts), a replica's bound on its waiting requests
 * (src/node/replica-admission.ts, through a real Replica whose fsync does not finish), the
 * and the largest legal client message (src/node/client-limits.ts).
 */
import { expect } from 'chai';
import { createSilentLogger, MAX_BATCH_ITEMS, MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../../src/common/index.js';
import { BatchRequest } from '../../src/gen/kvstore/v1/kvstore.js';
import { AdmissionControl, type AdmissionLimits, type RefusalReason } from '../../src/node/admission.js';
import { MAX_CLIENT_ID_BYTES } from '../../src/node/kv-command.js';
import { MAX_BATCH_REQUEST_BYTES, MAX_REQUEST_BYTES } from '../../src/node/client-limits.js';
import { RefusalLog } from '../../src/node/refusal-log.js';

const LIMITS: AdmissionLimits = { connectionRequests: 3, connectionBytes: 10_000, nodeRequests: 5, nodeBytes: 20_000, nodeCalls: 2 };

describe('node/admission: bounds on client requests', () => {
  it('refuses past a connection\'s requests in flight, while other connections are still admitted', () => {
    const refused: RefusalReason[] = [];
    const admission = new AdmissionControl(LIMITS, (reason) => refused.push(reason));
    for (let i = 0; i < 3; i++) expect(admission.admit('a:1', 300)).to.equal(undefined);
    expect(admission.admit('a:1', 300)).to.equal('connection_requests');
    expect(admission.admit('b:1', 300), 'another connection').to.equal(undefined);
    expect(admission.usage).to.include({ requests: 4, bytes: 1200, connections: 2 });
    admission.release('a:1', 300);
    expect(admission.admit('a:1', 300), 'room again once one was answered').to.equal(undefined);
    expect(refused).to.deep.equal(['connection_requests']);
  });

  it('refuses past the node\'s requests in flight over every connection', () => {
    const admission = new AdmissionControl(LIMITS);
    for (const peer of ['a:1', 'a:1', 'b:1', 'b:1', 'c:1']) expect(admission.admit(peer, 300)).to.equal(undefined);
    expect(admission.admit('d:1', 300)).to.equal('node_requests');
    expect(admission.connectionUsage('d:1')).to.deep.equal({ requests: 0, bytes: 0 });
  });

  it('bounds bytes per connection and per node, but never refuses the only request', () => {
    const admission = new AdmissionControl(LIMITS);
    expect(admission.admit('a:1', 50_000), 'alone on an idle node: admitted, whatever its size').to.equal(undefined);
    expect(admission.admit('b:1', 100), 'the node is past its bytes').to.equal('node_bytes');
    admission.release('a:1', 50_000);
    expect(admission.admit('a:1', 6_000)).to.equal(undefined);
    expect(admission.admit('a:1', 6_000)).to.equal('connection_bytes');
    expect(admission.admit('b:1', 6_000)).to.equal(undefined);
  });

  it('forgets a connection once nothing of it is in flight', () => {
    const admission = new AdmissionControl(LIMITS);
    for (let i = 0; i < 1000; i++) {
      const peer = `10.0.0.1:${i}`;
      admission.admit(peer, 300);
      admission.release(peer, 300);
    }
    expect(admission.usage).to.deep.equal({ requests: 0, bytes: 0, connections: 0, calls: 0 });
  });

  it('bounds the client calls open at once', () => {
    const refused: RefusalReason[] = [];
    const admission = new AdmissionControl(LIMITS, (reason) => refused.push(reason));
    expect([admission.openCall(), admission.openCall(), admission.openCall()]).to.deep.equal([true, true, false]);
    admission.closeCall();
    expect(admission.openCall()).to.equal(true);
    expect(refused).to.deep.equal(['node_calls']);
  });

  it('counts every refusal but warns at most once per interval', () => {
    const counted = new Map<RefusalReason, number>();
    let nowMs = 0;
    const log = new RefusalLog((reason, count) => counted.set(reason, (counted.get(reason) ?? 0) + count), createSilentLogger(), () => nowMs, 10_000);
    for (let i = 0; i < 5000; i++) {
      log.refused(i % 2 === 0 ? 'node_requests' : 'replica_bytes');
      nowMs += 1;
    }
    expect(counted.get('node_requests')).to.equal(2500);
    expect(counted.get('replica_bytes')).to.equal(2500);
    expect(log.warnings, 'at 0 ms, and once 10 s later is not reached in 5 s').to.equal(1);
    nowMs += 10_000;
    log.refused('node_requests');
    expect(log.warnings).to.equal(2);
  });
});

describe('node/client-limits: the largest legal client message', () => {
  it('the Batch limit is the largest legal BatchRequest, encoded', () => {
    const key = Buffer.alloc(MAX_KEY_BYTES, 0x61);
    const value = Buffer.alloc(MAX_VALUE_BYTES, 0x62);
    const session = { clientId: 'c'.repeat(MAX_CLIENT_ID_BYTES), seq: Number.MAX_SAFE_INTEGER };
    const big = Number.MAX_SAFE_INTEGER;
    const items = Array.from({ length: MAX_BATCH_ITEMS }, () => ({
      requestId: big,
      op: { $case: 'cas' as const, value: { key, expectedVersion: big, value, session, epoch: big } },
    }));
    const encoded = BatchRequest.encode({ items }).finish().length;
    expect(encoded).to.be.at.most(MAX_BATCH_REQUEST_BYTES);
    // Numbers here are at most 2^53 (8-byte varints); the limit allows 10-byte ones.
    expect(MAX_BATCH_REQUEST_BYTES - encoded).to.be.at.most(MAX_BATCH_ITEMS * 5 * 2);
    expect(MAX_BATCH_REQUEST_BYTES, '≈308 KiB, far below the server\'s 4 MiB').to.equal(315_648);
    expect(MAX_REQUEST_BYTES).to.equal(1216);
  });

});
