/**
 * The simulator checker's log matching across restarts: a restarted replica no longer holds
 * the entries of terms above the one its WAL recovered, so it may write that term again; any
 * other entry keeps its record, and a synced term must come back. Also what the storage wrapper
 * (`checked-storage.ts`) reports: recovered logs and hard states, and the terms a sync covered.
 */
import { expect } from 'chai';
import { RaftMessage, RaftMessageType } from '../../src/gen/kvstore/v1/raft.js';
import { MemoryStorageProvider } from '../../src/node/replica-storage.js';
import { type Entry, EntryType } from '../../src/raft/index.js';
import { checkedStorage } from './checked-storage.js';
import { SimChecker, SimViolation } from './sim-checker.js';

const SHARD = 0;

/** A normal entry at `index` of `term` whose data is `text`. */
function entry(index: number, term: number, text: string): Entry {
  return { index, term, type: EntryType.Normal, data: new TextEncoder().encode(text) };
}

describe('SimChecker log matching', () => {
  it('refuses a second entry at an index and term, from the same node or another', () => {
    const checker = new SimChecker();
    checker.onAppend(SHARD, 'n1', [entry(72, 3, 'a')], 3);
    expect(() => checker.onAppend(SHARD, 'n1', [entry(72, 3, 'b')], 3)).to.throw(SimViolation, /index 72 term 3.*n1 held one/);
    expect(() => checker.onAppend(SHARD, 'n2', [entry(72, 3, 'a')], 2)).to.throw(SimViolation, /previous term 2/);
  });

  it('lets a restarted replica write again in a term its WAL did not keep (seed 29,083,968)', () => {
    const checker = new SimChecker();
    checker.onAppend(SHARD, 'n1', [entry(71, 3, ''), entry(72, 3, 'a')], 2);
    // Power lost before the sync: the WAL recovered term 2 and the log up to 70.
    checker.onRecovered(SHARD, 'n1', 2, [entry(70, 2, 'x')], 2);
    expect(() => checker.onAppend(SHARD, 'n1', [entry(71, 3, ''), entry(72, 3, 'b')], 2)).not.to.throw();
    // The new entry is held now: writing yet another one is refused.
    expect(() => checker.onAppend(SHARD, 'n1', [entry(72, 3, 'c')], 3)).to.throw(SimViolation);
  });

  it('keeps what a restarted replica held in the terms it recovered, even entries its log lost', () => {
    const checker = new SimChecker();
    checker.onAppend(SHARD, 'n1', [entry(72, 3, 'a')], 3);
    checker.onRecovered(SHARD, 'n1', 3, [], 3);
    expect(() => checker.onAppend(SHARD, 'n1', [entry(72, 3, 'b')], 3)).to.throw(SimViolation, /n1 held one/);
  });

  it('keeps an entry another node holds when its writer restarts without it', () => {
    const checker = new SimChecker();
    checker.onAppend(SHARD, 'n1', [entry(72, 3, 'a')], 3);
    checker.onAppend(SHARD, 'n2', [entry(72, 3, 'a')], 3);
    checker.onRecovered(SHARD, 'n1', 2, [], 2);
    expect(() => checker.onAppend(SHARD, 'n1', [entry(72, 3, 'b')], 3)).to.throw(SimViolation, /n2 held one/);
  });

  it('forgets only the restarted node\'s entries of its shard', () => {
    const checker = new SimChecker();
    checker.onAppend(1, 'n1', [entry(5, 4, 'x')], 4);
    checker.onAppend(SHARD, 'n1', [entry(5, 4, 'y')], 4);
    checker.onAppend(SHARD, 'n2', [entry(6, 4, 'w')], 4);
    checker.onRecovered(SHARD, 'n1', 3, [], 3);
    expect(() => checker.onAppend(1, 'n1', [entry(5, 4, 'z')], 4)).to.throw(SimViolation, /shard 1/);
    expect(() => checker.onAppend(SHARD, 'n3', [entry(6, 4, 'v')], 4)).to.throw(SimViolation, /n2 held one/);
    expect(() => checker.onAppend(SHARD, 'n1', [entry(5, 4, 'z')], 4)).not.to.throw();
  });

  it('fails a restart that recovers a term below one a completed sync covered', () => {
    const checker = new SimChecker();
    checker.onDurableTerm('n1', SHARD, 3);
    expect(() => checker.onRecovered(SHARD, 'n1', 2, [], 2)).to.throw(SimViolation, /durability: shard 0 n1 recovered term 2, below the term 3/);
    expect(() => checker.onRecovered(SHARD, 'n1', 3, [], 3)).not.to.throw();
    // A replica created anew has nothing durable yet.
    checker.onReplicaReset('n1', SHARD);
    expect(() => checker.onRecovered(SHARD, 'n1', 0, [], 0)).not.to.throw();
  });
});

/** Memory storage whose syncs complete only when the test says so (a power cut may come first). */
class ManualSyncProvider extends MemoryStorageProvider {
  readonly pending: (() => void)[] = [];

  override async sync(): Promise<void> {
    await new Promise<void>((resolve) => this.pending.push(resolve));
  }

  complete(): void {
    const resolve = this.pending.shift();
    if (resolve === undefined) throw new Error('no sync is pending');
    resolve();
  }
}

describe('SimChecker sends', () => {
  const message = (type: RaftMessageType, term: number): RaftMessage => RaftMessage.fromPartial({ shardId: SHARD, type, term });

  it('refuses a message whose term its sender has not made durable, but for pre-votes and term 0', () => {
    const checker = new SimChecker();
    expect(() => checker.onSend('n1', message(RaftMessageType.RAFT_MESSAGE_TYPE_HEARTBEAT_RESPONSE, 2)))
      .to.throw(SimViolation, /n1 sent a message of type 8 for shard 0 carrying term 2, above its durable term 0/);
    checker.onSend('n1', message(RaftMessageType.RAFT_MESSAGE_TYPE_PRE_VOTE, 2));
    checker.onSend('n1', message(RaftMessageType.RAFT_MESSAGE_TYPE_READ_INDEX, 0));
    checker.onDurableTerm('n1', SHARD, 2);
    checker.onSend('n1', message(RaftMessageType.RAFT_MESSAGE_TYPE_APPEND, 2));
    expect(() => checker.onSend('n1', message(RaftMessageType.RAFT_MESSAGE_TYPE_VOTE, 3))).to.throw(SimViolation);
    expect(() => checker.onSend('n2', message(RaftMessageType.RAFT_MESSAGE_TYPE_APPEND, 2)), 'another node').to.throw(SimViolation);
  });

  it('holds a replica created anew to its own durable terms, not its predecessor\'s', () => {
    const checker = new SimChecker();
    checker.onDurableTerm('n2', SHARD, 4);
    checker.onReplicaReset('n2', SHARD);
    expect(() => checker.onSend('n2', message(RaftMessageType.RAFT_MESSAGE_TYPE_APPEND_RESPONSE, 4))).to.throw(SimViolation);
  });

  it('exempts granted pre-vote answers, not refusals', () => {
    const checker = new SimChecker();
    checker.onSend('n1', RaftMessage.fromPartial({ shardId: SHARD, type: RaftMessageType.RAFT_MESSAGE_TYPE_PRE_VOTE_RESPONSE, term: 3 }));
    const refusal = RaftMessage.fromPartial({ shardId: SHARD, type: RaftMessageType.RAFT_MESSAGE_TYPE_PRE_VOTE_RESPONSE, term: 3, reject: true });
    expect(() => checker.onSend('n1', refusal)).to.throw(SimViolation);
  });

  it('counts what a restart recovered as durable', () => {
    const checker = new SimChecker();
    checker.onRecovered(SHARD, 'n1', 4, [], 4);
    checker.onSend('n1', message(RaftMessageType.RAFT_MESSAGE_TYPE_HEARTBEAT, 4));
    expect(() => checker.onSend('n1', message(RaftMessageType.RAFT_MESSAGE_TYPE_HEARTBEAT, 5))).to.throw(SimViolation);
  });
});

describe('checkedStorage', () => {
  it('credits a sync only once it completes', async () => {
    const provider = new ManualSyncProvider();
    const wrapped = checkedStorage(provider, new SimChecker(), 'n1');
    wrapped.create(SHARD, { voters: [1], learners: [] }).setHardState({ term: 5, vote: 1, commit: 0 });
    const sync = wrapped.sync();
    // The power is cut before the sync completes: term 0 comes back, and that is allowed.
    provider.recovered(SHARD)?.setHardState({ term: 0, vote: 0, commit: 0 });
    expect(() => wrapped.recovered(SHARD)).not.to.throw();
    provider.complete();
    await sync;
    expect(() => wrapped.recovered(SHARD)).to.throw(SimViolation, /durability/);
  });

  it('forgets a replica\'s unsynced hard states when it is dropped or created anew', async () => {
    const provider = new ManualSyncProvider();
    const wrapped = checkedStorage(provider, new SimChecker(), 'n1');
    wrapped.create(SHARD, { voters: [1], learners: [] }).setHardState({ term: 5, vote: 1, commit: 0 });
    wrapped.drop(SHARD);
    wrapped.create(SHARD);
    const sync = wrapped.sync();
    provider.complete();
    await sync;
    expect(() => wrapped.recovered(SHARD)).not.to.throw();
  });

  it('fails a restart whose WAL lost a group a completed sync covered, not one it dropped', async () => {
    const provider = new MemoryStorageProvider();
    const wrapped = checkedStorage(provider, new SimChecker(), 'n1');
    wrapped.create(SHARD, { voters: [1], learners: [] }).setHardState({ term: 2, vote: 1, commit: 0 });
    await wrapped.sync();
    provider.drop(SHARD); // behind the wrapper's back: the WAL lost it
    expect(() => wrapped.recovered(SHARD)).to.throw(SimViolation, /recovered no group, though a completed sync covered its term 2/);
    wrapped.drop(SHARD);
    expect(wrapped.recovered(SHARD)).to.equal(undefined);
  });

  it('reports what a restart recovered: the log, held again, and the hard state, against what syncs covered', async () => {
    const provider = new MemoryStorageProvider();
    const before = checkedStorage(provider, new SimChecker(), 'n1');
    const storage = before.create(SHARD, { voters: [1], learners: [] });
    storage.setHardState({ term: 3, vote: 1, commit: 0 });
    storage.append([entry(1, 3, 'a')]);
    await before.sync();

    // A restart, seen by a checker that knows only what the sync covered.
    const checker = new SimChecker();
    checker.onDurableTerm('n1', SHARD, 3);
    checkedStorage(provider, checker, 'n1').recovered(SHARD);
    expect(() => checker.onAppend(SHARD, 'n2', [entry(1, 3, 'b')], 0)).to.throw(SimViolation, /n1 held one after term 0/);

    // A WAL that lost the synced term fails the restart.
    const lossy = new SimChecker();
    const after = checkedStorage(provider, lossy, 'n1');
    after.recovered(SHARD)?.setHardState({ term: 3, vote: 1, commit: 0 });
    await after.sync();
    provider.recovered(SHARD)?.setHardState({ term: 2, vote: 1, commit: 0 });
    expect(() => after.recovered(SHARD)).to.throw(SimViolation, /durability/);
  });

  it('credits a sync only to the replica that was there when it began', async () => {
    const provider = new MemoryStorageProvider();
    const checker = new SimChecker();
    const wrapped = checkedStorage(provider, checker, 'n1');
    wrapped.create(SHARD, { voters: [1], learners: [] }).setHardState({ term: 5, vote: 1, commit: 0 });
    const sync = wrapped.sync();
    // The replica is dropped and a new one created before the sync ends.
    wrapped.drop(SHARD);
    wrapped.create(SHARD);
    await sync;
    expect(() => wrapped.recovered(SHARD)).not.to.throw();
    // Without a drop, a sync is credited: a restart at term 0 fails.
    wrapped.recovered(SHARD)?.setHardState({ term: 5, vote: 1, commit: 0 });
    await wrapped.sync();
    provider.recovered(SHARD)?.setHardState({ term: 0, vote: 0, commit: 0 });
    expect(() => wrapped.recovered(SHARD)).to.throw(SimViolation, /durability/);
  });
});
