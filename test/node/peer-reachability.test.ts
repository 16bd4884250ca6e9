/**
 * Issue 19 "unreachable peers are invisible": a node that cannot connect to a peer says so once
 * per change (warn when lost, with the last error; info when back), and knows the list it reports
 * to the manager — from the real gRPC channel's connectivity, against a port nothing listens on
 * and then a server that starts there.
 */
import { expect } from 'chai';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { ChannelSecurity } from '../../src/security/index.js';
import { GrpcPeerLinks, RAFT_SERVICE } from '../../src/node/grpc-peer-links.js';
import { PeerReachability } from '../../src/node/peer-reachability.js';
import { freePort } from '../support/cluster.js';
import { RecordingLog } from '../support/recording-log.js';
import { waitFor } from '../support/wait-for.js';

describe('node/peer reachability', function () {
  this.timeout(30_000);

  it('warns once when a peer cannot be reached, reports it, and says when it is back', async () => {
    const log = new RecordingLog();
    const reachability = new PeerReachability(log.logger);
    const links = new GrpcPeerLinks('n1', ChannelSecurity.NONE, 1024, 1000, reachability);
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    let server: Server | undefined;
    try {
      const stream = links.openStream('n2', address, { onDrain: () => undefined, onEnd: () => undefined });
      stream.write({ fromNodeId: 'n1', messages: [] });
      await waitFor('n2 to count as unreachable', () => reachability.peers().includes('n2'), 20_000, 50);
      expect(reachability.peers()).to.deep.equal(['n2']);
      // Another attempt fails too (its stream ends): still one line.
      await new Promise<void>((resolve) => {
        const second = links.openStream('n2', address, { onDrain: () => undefined, onEnd: () => resolve() });
        second.write({ fromNodeId: 'n1', messages: [] });
      });
      const warnings = log.lines.filter((line) => line.message === 'peer unreachable');
      expect(warnings).to.have.length(1);
      expect(warnings[0]?.fields).to.include({ peer: 'n2', address });

      server = new Server();
      server.addService(RAFT_SERVICE, {
        send: (call: { on: (event: string, handler: () => void) => void }, callback: (error: null, response: object) => void) => {
          call.on('data', () => undefined);
          call.on('end', () => callback(null, {}));
        },
        sendSnapshot: () => undefined,
      });
      await new Promise<void>((resolve, reject) => {
        server?.bindAsync(address, ServerCredentials.createInsecure(), (error) => (error === null ? resolve() : reject(error)));
      });
      const third = links.openStream('n2', address, { onDrain: () => undefined, onEnd: () => undefined });
      third.write({ fromNodeId: 'n1', messages: [] });
      await waitFor('n2 to be reachable again', () => reachability.peers().length === 0, 20_000, 50);
      expect(log.lines.filter((line) => line.message === 'peer reachable again').map((line) => line.fields['peer'])).to.deep.equal(['n2']);
    } finally {
      links.close();
      server?.forceShutdown();
    }
  });
});
