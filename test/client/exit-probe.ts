/**
 * Child process for the "no open handles" test: uses a client against the fake cluster at argv[2],
 * finalizes it, and must then exit on its own (the parent fails the test if it has to kill it).
 */
import { KVClient } from '../../src/index.js';

process.on('unhandledRejection', (reason) => {
  process.stderr.write(`unhandled rejection: ${String(reason)}\n`);
  process.exitCode = 1;
});
const manager = process.argv[2] ?? '';
const kv = new KVClient({ manager, timeoutMs: 3000 });
await kv.init();
await Promise.all(Array.from({ length: 20 }, (_unused, i) => kv.put(`probe-${i}`, 'v')));
await kv.get('probe-1');
await kv.update('probe-counter', (current) => String(Number(current ?? '0') + 1));
await kv.get('probe-absent', { timeoutMs: 100 }).catch(() => undefined);
await kv.finalize();
process.stdout.write('probe done\n');
