/**
 * src/cluster's process control and readiness poll, on tiny `node -e` children and a fake manager:
 * stop is SIGTERM then SIGKILL after the grace; exits we did not ask for are reported; a member
 * can be paused, killed and restarted; the poll tells ready, timeout and aborted apart.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Launcher, shardsWithLeader, waitForLeaders } from '../../src/cluster/index.js';
import { FakeManager } from '../client/fake-servers.js';
import { freePort } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';

/** A child that says `ready` once it ignores SIGTERM, then idles. */
const STUBBORN = "process.on('SIGTERM', () => undefined); console.log('ready', process.env.KVSTORE_PARENT_WATCH); setInterval(() => undefined, 1000);";
/** A child that idles until signalled. */
const IDLE = "console.log('ready'); setInterval(() => undefined, 1000);";

describe('cluster/launcher', function () {
  this.timeout(20_000);
  let dir: string;
  let launcher: Launcher | undefined;
  const exits: string[] = [];
  const logOf = (name: string): string => {
    try {
      return readFileSync(join(dir, `${name}.log`), 'utf8');
    } catch {
      return '';
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvstore-launcher-'));
    exits.length = 0;
    launcher = new Launcher({
      logFile: (name) => join(dir, `${name}.log`),
      onUnexpectedExit: (name, code, signal) => exits.push(`${name} ${code ?? signal ?? '?'}`),
    });
  });
  afterEach(async () => {
    await launcher?.stop(100);
    rmSync(dir, { recursive: true, force: true });
  });

  it('stops with SIGTERM, and SIGKILLs what is still running after the grace; those exits are expected', async () => {
    const polite = launcher!.start({ name: 'polite', args: ['-e', IDLE] });
    const stubborn = launcher!.start({ name: 'stubborn', args: ['-e', STUBBORN] });
    await waitFor('both children ready', () => logOf('polite').includes('ready') && logOf('stubborn').includes('ready'), 10_000, 20);
    expect(logOf('stubborn')).to.include('ready 1'); // the parent watch is on
    const startedMs = Date.now();
    await launcher!.stop(500);
    expect(Date.now() - startedMs).to.be.at.least(450);
    expect([polite.running, stubborn.running]).to.deep.equal([false, false]);
    expect(exits).to.deep.equal([]);
  });

  it('reports an exit nobody asked for', async () => {
    launcher!.start({ name: 'crasher', args: ['-e', 'process.exit(3)'] });
    await waitFor('the exit report', () => exits.length > 0, 10_000, 20);
    expect(exits).to.deep.equal(['crasher 3']);
  });

  it('pauses, resumes, kills and restarts one member with the same argv', async () => {
    const member = launcher!.start({ name: 'member', args: ['-e', IDLE] });
    const firstPid = member.pid;
    expect(() => member.start()).to.throw(/still running/);
    member.pause();
    expect(member.isPaused).to.equal(true);
    member.resume();
    expect(member.isPaused).to.equal(false);
    member.pause();
    await member.kill('SIGTERM'); // resumed first, or a stopped process would never act on it
    expect(member.running).to.equal(false);
    member.start();
    expect(member.pid).to.be.a('number').and.not.equal(firstPid);
    await member.kill();
    expect(member.lastPid).to.not.equal(firstPid);
    expect(exits).to.deep.equal([]);
  });
});

describe('cluster/waitForLeaders', function () {
  this.timeout(20_000);
  let manager: FakeManager;
  const nodes = [{ id: 'n1', address: '127.0.0.1:1' }];

  beforeEach(async () => {
    manager = new FakeManager();
    await manager.start();
  });
  afterEach(() => manager.stop());

  it('is ready once every shard has a leader', async () => {
    manager.setMap(4, nodes, (shard) => (shard === 3 ? '' : 'n1'));
    const waiting = waitForLeaders({ address: manager.address }, { timeoutMs: 5000, pollIntervalMs: 10 });
    await waitFor('a few polls', () => manager.mapCalls >= 3, 5000, 10);
    manager.setMap(4, nodes, () => 'n1');
    const outcome = await waiting;
    expect(outcome.ready && shardsWithLeader(outcome.map)).to.equal(4);
  });

  it('times out with the last map when a shard stays leaderless', async () => {
    manager.setMap(4, nodes, (shard) => (shard === 0 ? '' : 'n1'));
    const outcome = await waitForLeaders({ address: manager.address }, { timeoutMs: 300, pollIntervalMs: 10 });
    expect(outcome.ready).to.equal(false);
    if (outcome.ready) return;
    expect(outcome.reason).to.equal('timeout');
    expect(outcome.lastMap === undefined ? -1 : shardsWithLeader(outcome.lastMap)).to.equal(3);
  });

  it('retries an unreachable manager until the timeout, and keeps its last error', async () => {
    const outcome = await waitForLeaders({ address: `127.0.0.1:${await freePort()}` }, { timeoutMs: 500, pollIntervalMs: 10 });
    expect(outcome.ready).to.equal(false);
    if (outcome.ready) return;
    expect(outcome.reason).to.equal('timeout');
    expect(outcome.lastMap).to.equal(undefined);
    expect(outcome.lastError?.message).to.match(/unreachable/);
  });

  it('stops when its signal aborts, and when beforePoll throws', async () => {
    manager.setMap(4, nodes, () => '');
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    const outcome = await waitForLeaders({ address: manager.address }, { signal: abort.signal, pollIntervalMs: 10 });
    expect(outcome.ready === false && outcome.reason).to.equal('aborted');
    let polls = 0;
    const failing = waitForLeaders({ address: manager.address }, {
      pollIntervalMs: 10,
      beforePoll: () => {
        if (++polls === 3) throw new Error('a child exited');
      },
    });
    let error: unknown;
    await failing.catch((caught: unknown) => (error = caught));
    expect(error).to.be.instanceOf(Error).with.property('message', 'a child exited');
  });
});
