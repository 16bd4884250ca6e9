/**
 * The leader wait (`src/node/leader-wait.ts`): requests at a follower whose shard has no usable
 * leader are held until one is known, then answered with it (or served), instead of being
 * pointed at a dead node or told "no leader" — which sent clients into backoff for longer than
 * the election took.
 */
import { expect } from 'chai';
import { ErrorCode, type PutResponse } from '../../src/gen/kvstore/v1/kvstore.js';
import { LeaderWait } from '../../src/node/leader-wait.js';
import type { NodeRuntime } from '../../src/node/runtime.js';
import { Role } from '../../src/raft/index.js';
import { waitFor } from '../support/wait-for.js';
import { NodeCluster } from './support/node-cluster.js';

/** A runtime whose timers run only when the test advances its clock. */
class StepClock implements NodeRuntime {
  nowMs = 0;
  private timers: { atMs: number; task: () => void; cancelled: boolean }[] = [];
  monotonicMs(): number {
    return this.nowMs;
  }
  wallClockMs(): number {
    return this.nowMs;
  }
  runSoon(task: () => void): void {
    this.runAfter(0, task);
  }
  runAfter(delayMs: number, task: () => void): () => void {
    const timer = { atMs: this.nowMs + delayMs, task, cancelled: false };
    this.timers.push(timer);
    return () => { timer.cancelled = true; };
  }
  runEvery(): () => void {
    throw new Error('not used');
  }
  randomSeed(): number {
    return 1;
  }
  advance(ms: number): void {
    this.nowMs += ms;
    const due = this.timers.filter((timer) => timer.atMs <= this.nowMs);
    this.timers = this.timers.filter((timer) => timer.atMs > this.nowMs);
    for (const timer of due) if (!timer.cancelled) timer.task();
  }
}

describe('node/leader wait', () => {
  it('runs a held request once: when its shard learns a leader, or after the longest wait', () => {
    const clock = new StepClock();
    const wait = new LeaderWait(clock, { maxWaitMs: 500, maxWaiting: 10 });
    const runs: string[] = [];
    expect(wait.park(1, () => runs.push('a'))).to.equal(true);
    expect(wait.park(2, () => runs.push('b'))).to.equal(true);
    expect(wait.size).to.equal(2);
    wait.wake(1);
    expect(runs, 'not inside the caller (a turn)').to.deep.equal([]);
    clock.advance(0);
    expect(runs).to.deep.equal(['a']);
    expect(wait.size).to.equal(1);
    clock.advance(499);
    expect(runs).to.deep.equal(['a']);
    clock.advance(1);
    expect(runs, 'b after 500 ms').to.deep.equal(['a', 'b']);
    wait.wake(1);
    wait.wake(2);
    wait.wakeAll();
    clock.advance(1_000);
    expect(runs, 'each once').to.deep.equal(['a', 'b']);
    expect(wait.size).to.equal(0);
  });

  it('holds at most maxWaiting requests; the rest are answered at once', () => {
    const clock = new StepClock();
    const wait = new LeaderWait(clock, { maxWaitMs: 500, maxWaiting: 2 });
    let runs = 0;
    expect(wait.park(1, () => runs++)).to.equal(true);
    expect(wait.park(1, () => runs++)).to.equal(true);
    expect(wait.park(2, () => runs++), 'full').to.equal(false);
    wait.wakeAll();
    clock.advance(0);
    expect(runs).to.equal(2);
    expect(wait.park(2, () => runs++), 'room again').to.equal(true);
  });
});

describe('node/leader wait on in-process nodes', function () {
  this.timeout(60_000);
  let cluster: NodeCluster | undefined;

  afterEach(async () => {
    await cluster?.close();
    cluster = undefined;
  });

  it('a put at a survivor of a dead leader is answered with the new leader (or served), not pointed at the dead one', async () => {
    const c = await NodeCluster.start({ nodeCount: 3, shardCount: 1 });
    cluster = c;
    await c.waitForLeaders();
    const oldLeader = await waitFor('leader', () => c.leaderOf(0), 10_000, 20);
    const oldNode = c.nodes[oldLeader];
    const survivors = c.nodes.flatMap((node, index) => (node === undefined || index === oldLeader ? [] : [node]));
    expect(survivors).to.have.length(2);
    // The leader's node goes silent and its streams break, as after a kill -9.
    await oldNode?.host.transport.close();
    for (const node of survivors) node.host.reportPeerFailed(oldNode?.host.nodeId ?? '');
    const asked = survivors[0];
    const startedMs = performance.now();
    const response = await new Promise<PutResponse>((resolve, reject) => {
      c.client(asked?.address ?? '').put({ key: Buffer.from('k'), value: Buffer.from('v'), epoch: 0, ttlMs: 0 }, (error, answer) => {
        if (error !== null) reject(error);
        else resolve(answer);
      });
    });
    const answeredAfterMs = performance.now() - startedMs;
    const context = `answered after ${Math.round(answeredAfterMs)} ms: ${response.error?.message ?? 'served'}`;
    expect(response.error?.leaderAddress ?? '', `never pointed at the dead node (${context})`).to.not.equal(oldNode?.address);
    const newLeader = survivors.find((node) => node.host.replica(0)?.role === Role.Leader);
    if (response.error === undefined) {
      expect(newLeader, `served by the new leader (${context})`).to.equal(asked);
    } else if (response.error.code === ErrorCode.ERROR_CODE_NOT_LEADER) {
      expect(response.error.leaderAddress, `the new leader (${context})`).to.equal(newLeader?.address);
    } else {
      // The election outlasted the wait (a loaded machine): held the whole election timeout, then told so.
      expect(response.error.code, context).to.equal(ErrorCode.ERROR_CODE_UNAVAILABLE);
      expect(answeredAfterMs, `held for the wait (${context})`).to.be.at.least(450);
    }
  });
});
