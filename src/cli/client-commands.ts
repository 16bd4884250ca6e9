/**
 * `kvstore put|get|del|cas|txn`: one client operation per invocation, through KVClient. Exit codes:
 * 0 ok, 1 not found, 2 bad input, 3 unavailable or timed out, 4 conflict, 5 not authenticated (DESIGN.md §6).
 */
import type { Command } from 'commander';
import { KVClient, type KVEntry, type KVValue } from '../client/index.js';
import { isValidUtf8 } from '../common/index.js';
import {
  addManagerOption,
  checkAddress,
  EXIT,
  exitCodeFor,
  failWith,
  oneLine,
  parseDuration,
  parseInteger,
  parseSeconds,
  readStdin,
  reportError,
} from './client-util.js';
import { addClientSecurityOptions, clientSecurityFromFlags, type ClientSecurityFlags } from './security-flags.js';
import { parseTxnDocument, readTxnDocument, txnResultJson } from './txn-command.js';

interface ClientFlags extends ClientSecurityFlags {
  manager: string;
  timeout: string;
}

/** Registers put, get, del, cas and txn on the root program. */
export function registerClientCommands(program: Command): void {
  withClientFlags(program.command('put').description('store VALUE under KEY (VALUE "-" reads stdin)'))
    .argument('<key>', 'the key: 1–20 bytes of UTF-8')
    .argument('<value>', 'the value, at most 1024 bytes; "-" reads it from stdin')
    .option('--ttl <duration>', 'the key expires this long after the put (500ms, 30s, 10m, 2h, 7d; at most 365 days)')
    .action(async (key: string, value: string, flags: ClientFlags & { ttl?: string }) => {
      await withClient(flags, async (client, options) => {
        const ttl = flags.ttl === undefined ? {} : { ttlMs: parseDuration(flags.ttl, '--ttl') };
        await client.put(key, await valueArgument(value), { ...options, ...ttl });
      });
    });

  withClientFlags(program.command('get').description('print the value of KEY; "not found" and exit 1 when absent. Several keys: KEY<TAB>VALUE lines, read in one batch per node'))
    .argument('<keys...>', 'the key (or several)')
    .option('--json', 'print {"key","value","version"} (several keys: an array)')
    .action(async (keys: string[], flags: ClientFlags & { json?: boolean }) => {
      await withClient(flags, async (client, options) => {
        if (keys.length > 1) {
          await getSeveral(client, keys, flags.json === true, options);
          return;
        }
        const key = keys[0] ?? '';
        const entry = await client.getEntry(key, options);
        if (entry === null) {
          failWith('not found', EXIT.notFound);
          return;
        }
        if (flags.json === true) {
          process.stdout.write(`${JSON.stringify(entryJson(key, entry))}\n`);
        } else {
          process.stdout.write(Buffer.concat([entry.bytes, Buffer.from('\n')]));
        }
      });
    });

  withClientFlags(program.command('del').alias('delete').description('delete KEY, or several in one batch per node (exit 0 whether or not they existed)'))
    .argument('<keys...>', 'the key (or several)')
    .action(async (keys: string[], flags: ClientFlags) => {
      await withClient(flags, async (client, options) => {
        if (keys.length === 1) {
          await client.delete(keys[0] ?? '', options);
          return;
        }
        const failed = (await client.deleteMany(keys, options)).filter((result) => !result.ok);
        for (const result of failed) process.stderr.write(`${result.key}: error: ${oneLine(result.error.message)}\n`);
        const first = failed[0];
        if (first !== undefined) process.exitCode = exitCodeFor(first.error);
      });
    });

  withClientFlags(
    program.command('cas').description('write VALUE only if KEY is at VERSION (0 = absent); prints the new version, exit 4 on conflict'),
  )
    .argument('<key>', 'the key')
    .argument('<version>', 'the expected version; 0 means the key must not exist')
    .argument('<value>', 'the new value; "-" reads it from stdin')
    .action(async (key: string, version: string, value: string, flags: ClientFlags) => {
      await withClient(flags, async (client, options) => {
        const expected = parseInteger(version, 'VERSION', 0);
        const written = await client.cas(key, expected, await valueArgument(value), options);
        process.stdout.write(`${written}\n`);
      });
    });

  withClientFlags(
    program.command('txn').description(
      'run one transaction on keys of one shard from a JSON document (stdin, or --file): ' +
      '{"compare":[…],"success":[…],"failure":[…]}; prints {"succeeded",…,"results":[…]}; exit 4 when the compares failed',
    ),
  )
    .option('--file <path>', 'read the document from this file instead of stdin')
    .action(async (flags: ClientFlags & { file?: string }) => {
      await withClient(flags, async (client, options) => {
        const txn = parseTxnDocument(await readTxnDocument(flags.file, readStdin));
        const result = await client.txn(txn, options);
        process.stdout.write(`${JSON.stringify(txnResultJson(result))}\n`);
        if (!result.succeeded) process.exitCode = EXIT.conflict;
      });
    });
}

function withClientFlags(command: Command): Command {
  return addClientSecurityOptions(addManagerOption(command).option('--timeout <seconds>', 'give up after this many seconds', '5'));
}

/** Runs one command body with a client, reporting errors as one line and always finalizing. */
async function withClient(flags: ClientFlags, body: (client: KVClient, options: { timeoutMs: number }) => Promise<void>): Promise<void> {
  let client: KVClient | undefined;
  try {
    const manager = checkAddress(flags.manager, '--manager');
    const timeoutMs = parseSeconds(flags.timeout, '--timeout') * 1000;
    client = new KVClient({ manager, timeoutMs, ...clientSecurityFromFlags(flags) });
    await body(client, { timeoutMs });
  } catch (error) {
    reportError(error);
  } finally {
    await client?.finalize();
  }
}

/** `get --json` of one entry: the value as text, or base64 when it is not UTF-8; a key with a TTL adds its expiry. */
function entryJson(key: string, entry: KVEntry): Record<string, unknown> {
  const expiry = entry.expiresAtMs === undefined ? {} : { expiresAtMs: entry.expiresAtMs, expiresInMs: entry.expiresInMs };
  return isValidUtf8(entry.bytes)
    ? { key, value: entry.value, version: entry.version, ...expiry }
    : { key, value: Buffer.from(entry.bytes).toString('base64'), encoding: 'base64', version: entry.version, ...expiry };
}

/**
 * `get K1 K2 …`: `KEY<TAB>VALUE` per key found, in order; `KEY: not found` on stderr for each absent
 * one (exit 1), `KEY: error: …` for each that failed (exit by the first error's code, which wins
 * over not found). `--json`: one array, `{ key, found: false }` or `{ key, error: { code, message } }`
 * for those.
 */
async function getSeveral(client: KVClient, keys: string[], json: boolean, options: { timeoutMs: number }): Promise<void> {
  const results = await client.getMany(keys, options);
  let exitCode: number = EXIT.ok;
  const lines: Record<string, unknown>[] = [];
  for (const result of results) {
    if (!result.ok) {
      if (json) lines.push({ key: result.key, error: { code: result.error.code, message: result.error.message } });
      else process.stderr.write(`${result.key}: error: ${oneLine(result.error.message)}\n`);
      if (exitCode === EXIT.ok || exitCode === EXIT.notFound) exitCode = exitCodeFor(result.error);
    } else if (result.entry === null) {
      if (json) lines.push({ key: result.key, found: false });
      else process.stderr.write(`${result.key}: not found\n`);
      if (exitCode === EXIT.ok) exitCode = EXIT.notFound;
    } else if (json) {
      lines.push(entryJson(result.key, result.entry));
    } else {
      process.stdout.write(Buffer.concat([Buffer.from(`${result.key}\t`), result.entry.bytes, Buffer.from('\n')]));
    }
  }
  if (json) process.stdout.write(`${JSON.stringify(lines)}\n`);
  process.exitCode = exitCode;
}

async function valueArgument(value: string): Promise<KVValue> {
  return value === '-' ? readStdin() : value;
}
