/**
 * The netns test's client container: run inside the client's network namespace as
 * `node netns-client.js MANAGER write|read COUNT TAG`, it writes or reads keys
 * `ops-0…` (value `TAG-i`) through KVClient, resolving node names via that
 * namespace's /etc/hosts as a container resolves service names. Prints one JSON line:
 * `{ "ok": n, "failed": ["ops-3: …"] }`; exits 0 when nothing failed.
 */
import { KVClient } from '../../../src/client/index.js';

async function main(): Promise<number> {
  const [manager, mode, countText, tag] = process.argv.slice(2);
  const count = Number(countText);
  if (manager === undefined || (mode !== 'write' && mode !== 'read') || !Number.isInteger(count) || tag === undefined) {
    process.stderr.write('usage: netns-client MANAGER write|read COUNT TAG\n');
    return 2;
  }
  const kv = new KVClient({ manager, timeoutMs: 20_000 });
  const failed: string[] = [];
  let ok = 0;
  try {
    await kv.init();
    const work = Array.from({ length: count }, async (_, i) => {
      const key = `ops-${i}`;
      try {
        if (mode === 'write') {
          await kv.put(key, `${tag}-${i}`);
          ok += 1;
        } else {
          const value = await kv.get(key);
          if (value === `${tag}-${i}`) ok += 1;
          else failed.push(`${key}: read ${JSON.stringify(value)}`);
        }
      } catch (error) {
        failed.push(`${key}: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
    await Promise.all(work);
  } finally {
    await kv.finalize();
  }
  process.stdout.write(`${JSON.stringify({ ok, failed })}\n`);
  return failed.length === 0 ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (error: unknown) => {
  process.stderr.write(`netns-client: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 3;
});
