/** The node-level failure detector quiesced groups rely on (issue 16). */
import { expect } from 'chai';
import { PeerLiveness } from '../../src/node/peer-liveness.js';

describe('node/peer-liveness', () => {
  it('reports a peer silent once past the window, once, and revived when heard first and again', () => {
    const liveness = new PeerLiveness(500, (nodeId) => nodeId.startsWith('n'));
    liveness.heard('n2', 0);
    liveness.heard('n3', 0);
    expect(liveness.isLive('n2', 500)).to.equal(true);
    liveness.heard('n3', 400);
    expect(liveness.changes(501), 'first contact counts as coming back').to.deep.equal({ silent: ['n2'], revived: ['n2', 'n3'] });
    expect(liveness.isLive('n2', 501)).to.equal(false);
    expect(liveness.changes(600), 'reported once').to.deep.equal({ silent: [], revived: [] });
    liveness.heard('n2', 700);
    expect(liveness.changes(901)).to.deep.equal({ silent: ['n3'], revived: ['n2'] });
    expect(liveness.isLive('n2', 901)).to.equal(true);
  });

  it('tracks only nodes of the cluster: a sender naming itself anything cannot grow the table', () => {
    const liveness = new PeerLiveness(500, (nodeId) => nodeId === 'n2');
    for (let i = 0; i < 1000; i++) liveness.heard(`bogus-${i}`, 0);
    expect(liveness.isLive('bogus-1', 0)).to.equal(false);
    expect(liveness.changes(10_000)).to.deep.equal({ silent: [], revived: [] });
  });
});
