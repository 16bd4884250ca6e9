/** The node's small state file (issue 16: thousands of replicas created at once write it once). */
import { expect } from 'chai';
import type { TextFileStore } from '../../src/common/index.js';
import { NodeStateFile } from '../../src/node/node-state.js';

/** Files in memory that count whole-file writes. */
function countingFiles(): TextFileStore & { writes: number; files: Map<string, string> } {
  const files = new Map<string, string>();
  const store = {
    writes: 0,
    files,
    readIfExists: (path: string) => files.get(path),
    writeAtomic: (path: string, text: string) => {
      store.writes += 1;
      files.set(path, text);
    },
  };
  return store;
}

describe('node/node-state', () => {
  it('saves once for a batch of created replicas, and the saved file holds them all', () => {
    const files = countingFiles();
    const state = new NodeStateFile('/data', files);
    state.batch(() => {
      for (let shardId = 0; shardId < 1000; shardId++) state.setReplica(shardId, { replicaId: shardId + 1, bootstrapMembers: [] });
      expect(files.writes, 'nothing written inside the batch').to.equal(0);
    });
    expect(files.writes).to.equal(1);
    const reopened = new NodeStateFile('/data', files);
    expect(reopened.replicas()).to.have.length(1000);
  });

  it('saves a removal at once, even inside a batch, and a replica set outside a batch at once', () => {
    const files = countingFiles();
    const state = new NodeStateFile('/data', files);
    state.setReplica(1, { replicaId: 1, bootstrapMembers: [] });
    expect(files.writes).to.equal(1);
    state.batch(() => {
      state.setReplica(2, { replicaId: 2, bootstrapMembers: [] });
      state.deleteReplica(1);
      expect(files.writes, 'the removal is durable before the batch ends').to.equal(2);
      expect(new NodeStateFile('/data', files).replica(1)).to.equal(undefined);
    });
    expect(new NodeStateFile('/data', files).replica(2)?.replicaId).to.equal(2);
  });
});
