/**
 * Issue 15, admission control, on real processes: one node (K=1, so it leads every shard) takes
 * a client with 20,000 requests in flight and, at the same time, a client sending garbage at its
 * port — random bytes instead of HTTP/2, and malformed gRPC: random protobuf, length prefixes
 * promising 48 MiB or 4 GiB (and the 48 MiB delivered). The node stays up, its RSS
 * (/proc/<pid>/status, sampled every 50 ms) stays under {@link RSS_BOUND_BYTES}, and a
 * well-behaved client on the same node is still served, each call within
 * {@link WELL_BEHAVED_DEADLINE_MS}.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { KVError } from '../../src/client/index.js';
import { MAX_BATCH_ITEMS } from '../../src/common/index.js';
import { MAX_STREAM_REQUESTS_IN_FLIGHT } from '../../src/node/admission.js';
import { badStreamMix, emptyStats, sendBadStreams, sendRawGarbage } from '../support/garbage-client.js';
import { printTailOnFailure, TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait-for.js';

/** The flood: requests in flight at once from one client. */
const IN_FLIGHT = 20_000;
/**
 * The node's RSS stays under this: 400 MiB. An idle node takes ~90 MiB; the 20,000 requests are
 * ~25 MiB of keys and values; the garbage, taken in, would be hundreds of MiB (12 streams of
 * 48 MiB each round).
 */
const RSS_BOUND_BYTES = 400 * 1024 * 1024;
/** Each call of the well-behaved client ends within this, during the flood. */
const WELL_BEHAVED_DEADLINE_MS = 10_000;

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) sum += Number(line.split(' ').pop());
  return sum;
}

describe('integration: admission control under a flood and garbage', function () {
  this.timeout(300_000);
  let cluster: TestCluster | undefined;

  before(async () => {
    cluster = await TestCluster.start({ nodes: 1, replicas: 1, shards: 8 });
  });
  afterEach(function () {
    printTailOnFailure(this, cluster);
  });
  after(async () => {
    await cluster?.stopAll({ removeDir: true });
  });

  it(`survives ${IN_FLIGHT.toLocaleString('en-US')} requests in flight plus garbage, bounded, still serving others`, async () => {
    const c = cluster!;
    const pid = c.nodePid('n1');
    if (pid === undefined) throw new Error('n1 is not running');
    const port = Number(c.nodeAddress('n1').split(':')[1]);
    const metricsPort = c.nodeMetricsPort('n1');
    const idleRss = rssBytes(pid);

    let maxRss = idleRss;
    const sampler = setInterval(() => {
      try {
        maxRss = Math.max(maxRss, rssBytes(pid));
      } catch {
        // the node is gone: the checks below say so
      }
    }, 50);
    let stop = false;
    // What the node holds of the flood, from its gauge: the heavy client's one Batch stream is
    // read only while under its bound, so never more than that plus one message.
    let maxAdmitted = 0;
    const admittedSampler = (async () => {
      while (!stop) {
        maxAdmitted = Math.max(maxAdmitted, await metric(metricsPort, 'kvstore_node_admitted_requests').catch(() => 0));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const garbage = emptyStats();
    try {
      const heavy = c.client({ timeoutMs: 120_000 });
      const good = c.client({ timeoutMs: WELL_BEHAVED_DEADLINE_MS });
      await Promise.all([heavy.init(), good.init()]);

      // The garbage client: rounds of raw random bytes and malformed gRPC on two connections.
      const garbageLoop = (async () => {
        while (!stop) {
          await Promise.all([
            sendRawGarbage(port, 64 << 10, garbage),
            sendRawGarbage(port, 1 << 20, garbage),
            sendBadStreams(port, badStreamMix(), garbage),
            sendBadStreams(port, badStreamMix(), garbage),
          ]);
        }
      })();

      // The flood: half puts of 1 KiB values, half gets, all issued at once.
      const value = 'v'.repeat(1024);
      const outcomes = new Map<string, number>();
      const count = (outcome: string): void => {
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      };
      const startedMs = Date.now();
      const flood = Promise.all(Array.from({ length: IN_FLIGHT }, async (_unused, i) => {
        try {
          if (i % 2 === 0) await heavy.put(`f${i % 5000}`, value);
          else await heavy.get(`f${i % 5000}`);
          count('ok');
        } catch (error) {
          if (!(error instanceof KVError)) throw error;
          count(error.code);
        }
      }));

      // While it runs, the well-behaved client is served.
      await waitFor('the flood to be under way', () => (outcomes.get('ok') ?? 0) >= 100, 60_000, 20);
      const goodLatencies: number[] = [];
      for (let i = 0; i < 20; i++) {
        const callStarted = Date.now();
        await good.put(`good-${i}`, `value-${i}`);
        expect(await good.get(`good-${i}`)).to.equal(`value-${i}`);
        goodLatencies.push(Date.now() - callStarted);
      }
      const floodStillRunning = [...outcomes.values()].reduce((sum, n) => sum + n, 0) < IN_FLIGHT;

      await flood;
      const floodMs = Date.now() - startedMs;
      stop = true;
      await garbageLoop;
      await admittedSampler;

      const refused = await metric(metricsPort, 'kvstore_node_requests_refused_total');
      const messageRefusals = await metric(metricsPort, 'kvstore_node_requests_refused_total{reason="message_bytes"}');
      process.stdout.write(`      flood of ${IN_FLIGHT}: ${JSON.stringify(Object.fromEntries(outcomes))} in ${floodMs} ms; ` +
        `well-behaved put+get max ${Math.max(...goodLatencies)} ms (flood still running after: ${floodStillRunning}); ` +
        `garbage: ${garbage.rawConnections} raw connections, ${garbage.streams} streams (${(garbage.bytes / 2 ** 20).toFixed(0)} MiB sent), ` +
        `statuses ${JSON.stringify(Object.fromEntries(garbage.statuses))}, ${garbage.resets} resets; node refusals ${refused} ` +
        `(message_bytes ${messageRefusals}); at most ${maxAdmitted} requests held; RSS idle ${(idleRss / 2 ** 20).toFixed(0)} MiB, max ${(maxRss / 2 ** 20).toFixed(0)} MiB\n`);

      expect(c.nodePid('n1'), 'the node is still up').to.equal(pid);
      expect(maxAdmitted, 'requests the node held at once').to.be.at.most(MAX_STREAM_REQUESTS_IN_FLIGHT + MAX_BATCH_ITEMS + 2);
      expect(maxRss, `the node's RSS stayed under ${RSS_BOUND_BYTES / 2 ** 20} MiB`).to.be.below(RSS_BOUND_BYTES);
      // Every request of the flood either succeeded or was told to back off; none was lost.
      expect([...outcomes.keys()].every((outcome) => outcome === 'ok' || outcome === 'RESOURCE_EXHAUSTED'), JSON.stringify(Object.fromEntries(outcomes))).to.equal(true);
      expect(outcomes.get('ok') ?? 0).to.be.greaterThan(IN_FLIGHT / 2);
      expect(floodStillRunning, 'the well-behaved client was served during the flood').to.equal(true);
      expect(Math.max(...goodLatencies)).to.be.below(WELL_BEHAVED_DEADLINE_MS);
      expect(garbage.streams).to.be.greaterThan(0);
      // And it still serves, with nothing left held.
      expect(await good.get('good-3')).to.equal('value-3');
      await waitFor('the node to hold nothing', async () => (await metric(metricsPort, 'kvstore_node_admitted_requests')) === 0, 30_000, 100);
    } finally {
      stop = true;
      clearInterval(sampler);
    }
  });
});
