/**
 * Builds the `kvstore` commander program. Subcommands are added by the files that
 * implement them; this file only wires them together.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';

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
    .showHelpAfterError(false)
    .exitOverride();
  program.configureOutput({
    outputError: (message, write) => write(message.split('\n')[0] + '\n'),
  });
  return program;
}
