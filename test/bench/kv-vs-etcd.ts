/**
 * Closed-loop load against kvstore or etcd with the same workload, for
 * scripts/bench-vs-etcd.sh: C requests in flight from this one Node process,
 * a get/put mix over N keys with fixed-size values. The loop, key names, values and
 * histograms are the ones `kvstore bench` uses (src/bench), so both stores see exactly
 * what the bench workers send; only the store adapter differs.
 *
 * Usage: node dist/test/bench/kv-vs-etcd.js --target kvstore|etcd --endpoints A[,B…]
 *        [--concurrency 64] [--keys 10000] [--key-bytes 16] [--value-bytes 1024] [--mix 50] [--duration 15] [--seed 1]
 * Prints one JSON line: { target, opsPerSec, ops, errors, get: { p50, p90, p99, p999 }, put: { … } } (ms).
 */
import { Etcd3 } from 'etcd3';
import { benchKeys, benchValue, checkWorkload, percentilesOf, preloadKeys, runClosedLoop, type LoadTarget } from '../../src/bench/index.js';
import { SeededRandom } from '../../src/common/index.js';
import { KVClient } from '../../src/index.js';

interface Store extends LoadTarget {
  close(): Promise<void>;
}

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? process.argv[at + 1] : undefined;
  return value ?? fallback;
}

async function openStore(target: string, endpoints: string[]): Promise<Store> {
  if (target === 'kvstore') {
    const manager = endpoints[0];
    if (manager === undefined) throw new Error('--endpoints needs the manager address');
    const client = new KVClient({ manager });
    await client.init();
    return { get: (key) => client.getBytes(key), put: (key, value) => client.put(key, value), close: () => client.finalize() };
  }
  if (target === 'etcd') {
    const client = new Etcd3({ hosts: endpoints.map((e) => `http://${e}`) });
    return {
      get: (key) => client.get(key).buffer(),
      put: (key, value) => client.put(key).value(Buffer.from(value)).exec(),
      close: () => { client.close(); return Promise.resolve(); },
    };
  }
  throw new Error(`--target must be kvstore or etcd, got ${target}`);
}

async function main(): Promise<void> {
  const target = flag('target', 'kvstore');
  const endpoints = flag('endpoints', '127.0.0.1:7000').split(',');
  const concurrency = Number(flag('concurrency', '64'));
  const workload = {
    keys: Number(flag('keys', '10000')),
    keyBytes: Number(flag('key-bytes', '16')),
    valueBytes: Number(flag('value-bytes', '1024')),
    getPercent: Number(flag('mix', '50')),
  };
  checkWorkload(workload);
  const durationMs = Number(flag('duration', '15')) * 1000;
  const store = await openStore(target, endpoints);
  const keys = benchKeys(workload);
  const value = benchValue(workload.valueBytes);

  const preloadFailed = await preloadKeys(store, keys, value, concurrency);
  const result = await runClosedLoop(store, {
    keys, concurrency, getPercent: workload.getPercent, value, durationMs, random: new SeededRandom(Number(flag('seed', '1'))),
  });
  await store.close();
  const elapsedSeconds = result.elapsedMs / 1000;
  const brief = (h: typeof result.get): Record<string, number> => {
    const p = percentilesOf(h);
    return { p50: p.p50, p90: p.p90, p99: p.p99, p999: p.p999 };
  };
  process.stdout.write(JSON.stringify({
    target, concurrency, keys: workload.keys, keyBytes: workload.keyBytes, valueBytes: workload.valueBytes, mix: workload.getPercent,
    seconds: Math.round(elapsedSeconds * 10) / 10, ops: result.ops, errors: result.errors, preloadFailed,
    opsPerSec: Math.round(result.ops / elapsedSeconds),
    get: brief(result.get),
    put: brief(result.put),
  }) + '\n');
}

await main();
