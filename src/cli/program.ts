/**
 * Builds the `kvstore` commander program. Each subcommand lives in its own file
 * and registers itself here.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { registerBackupCommands } from './backup-command.js';
import { registerBenchCommand } from './bench-command.js';
import { registerCertsCommand } from './certs-command.js';
import { registerChaosCommand } from './chaos-command.js';
import { registerClientCommands } from './client-commands.js';
import { registerClusterCommand } from './cluster-command.js';
import { registerDriverCommand } from './driver-command.js';
import { registerManagerCommand } from './manager-command.js';
import { registerNodeCommand } from './node-command.js';
import { registerStatusCommand } from './status-command.js';

/** The package version, read from package.json next to the build output. */
export function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url);
  const parsed: unknown = JSON.parse(readFileSync(url, 'utf8'));
  if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string') {
    return parsed.version;
  }
  return 'unknown';
}

/** The whole CLI. */
export function buildProgram(): Command {
  const program = new Command('kvstore')
    .description('A distributed, sharded, Raft-replicated key-value store')
    .version(packageVersion(), '-V, --version')
    // Options belong to the command they follow (`kvstore node drain ID --manager M` is drain's
    // --manager, not node's); the root has only --version and --help.
    .enablePositionalOptions()
    .exitOverride();
  program.configureOutput({
    outputError: (message, write) => write(message.split('\n')[0] + '\n'),
  });
  registerClusterCommand(program);
  registerManagerCommand(program);
  registerNodeCommand(program);
  registerClientCommands(program);
  registerStatusCommand(program);
  registerDriverCommand(program);
  registerBenchCommand(program);
  registerChaosCommand(program);
  registerCertsCommand(program);
  registerBackupCommands(program);
  return program;
}
