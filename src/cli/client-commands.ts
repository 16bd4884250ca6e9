/**
 * `kvstore put|get|del|cas`: one client operation per invocation, through KVClient. Exit codes:
 * 0 ok, 1 not found, 2 bad input, 3 unavailable or timed out, 4 conflict, 5 not authenticated (DESIGN.md §6).
 */
import type { Command } from 'commander';
import { KVClient, type KVValue } from '../client/index.js';
import { isValidUtf8 } from '../common/index.js';
import {
  addManagerOption,
  checkAddress,
  EXIT,
  failWith,
  parseInteger,
  parseSeconds,
  readStdin,
  reportError,
} from './client-util.js';
import { addClientSecurityOptions, clientSecurityFromFlags, type ClientSecurityFlags } from './security-flags.js';

interface ClientFlags extends ClientSecurityFlags {
  manager: string;
  timeout: string;
}

/** Registers put, get, del and cas on the root program. */
export function registerClientCommands(program: Command): void {
  withClientFlags(program.command('put').description('store VALUE under KEY (VALUE "-" reads stdin)'))
    .argument('<key>', 'the key: 1–20 bytes of UTF-8')
    .argument('<value>', 'the value, at most 1024 bytes; "-" reads it from stdin')
    .action(async (key: string, value: string, flags: ClientFlags) => {
      await withClient(flags, async (client, options) => {
        await client.put(key, await valueArgument(value), options);
      });
    });

  withClientFlags(program.command('get').description('print the value of KEY; "not found" and exit 1 when absent'))
    .argument('<key>', 'the key')
    .option('--json', 'print {"key","value","version"}')
    .action(async (key: string, flags: ClientFlags & { json?: boolean }) => {
      await withClient(flags, async (client, options) => {
        const entry = await client.getEntry(key, options);
        if (entry === null) {
          failWith('not found', EXIT.notFound);
          return;
        }
        if (flags.json === true) {
          const text = isValidUtf8(entry.bytes)
            ? { key, value: entry.value, version: entry.version }
            : { key, value: Buffer.from(entry.bytes).toString('base64'), encoding: 'base64', version: entry.version };
          process.stdout.write(`${JSON.stringify(text)}\n`);
        } else {
          process.stdout.write(Buffer.concat([entry.bytes, Buffer.from('\n')]));
        }
      });
    });

  withClientFlags(program.command('del').alias('delete').description('delete KEY (exit 0 whether or not it existed)'))
    .argument('<key>', 'the key')
    .action(async (key: string, flags: ClientFlags) => {
      await withClient(flags, async (client, options) => {
        await client.delete(key, options);
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

async function valueArgument(value: string): Promise<KVValue> {
  return value === '-' ? readStdin() : value;
}
