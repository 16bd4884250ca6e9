/**
 * `kvstore backup --out DIR`, `kvstore backup verify DIR`, `kvstore restore --from DIR [--force]`
 * (DESIGN.md §6; `src/backup/`). Exit codes: 0 done; 2 bad input, a backup that fails its
 * checks (the message names the file) or an --out that already holds one; 3 the cluster could
 * not be read or written in time; 4 restore refused because the cluster is not empty; 5 not
 * authenticated.
 */
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { runBackup } from '../backup/backup.js';
import { BackupError, verifyBackup } from '../backup/format.js';
import { RestoreRefusedError, runRestore } from '../backup/restore.js';
import { clientChannelSecurity, KVClient, ManagerUnreachableError, type ManagerConnection } from '../client/index.js';
import { connectManager } from '../cluster/index.js';
import { addManagerOption, BadInputError, checkAddress, EXIT, exitForManagerError, failWith, reportError } from './client-util.js';
import { addClientSecurityOptions, clientSecurityFromFlags, type ClientSecurityFlags } from './security-flags.js';

interface BackupFlags extends ClientSecurityFlags {
  manager: string;
  out?: string;
}

interface RestoreFlags extends ClientSecurityFlags {
  manager: string;
  from?: string;
  force?: boolean;
}

/** A bar on stderr when it is a terminal; nothing otherwise. */
function progressBar(label: string, unit: string): { update(value: number, total: number): void; stop(): void } {
  if (process.stderr.isTTY !== true) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {value}/{total} ${unit}`, stream: process.stderr, clearOnComplete: true }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(value, total) {
      if (!started) bar.start(total, 0);
      started = true;
      bar.setTotal(total);
      bar.update(value);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** The failure of a backup command as one line and its exit code. */
function reportBackupError(error: unknown): void {
  if (error instanceof BackupError) failWith(`error: ${error.message}`, EXIT.badInput);
  else if (error instanceof RestoreRefusedError) failWith(`error: ${error.message}`, EXIT.conflict);
  else if (error instanceof ManagerUnreachableError) failWith(`error: ${error.message}`, exitForManagerError(error));
  else if (error instanceof Error && !(error instanceof BadInputError) && error.name === 'Error') failWith(`error: ${error.message}`, EXIT.unavailable);
  else reportError(error);
}

/** Registers `backup` (and `backup verify`) and `restore`. */
export function registerBackupCommands(program: Command): void {
  const backup = addClientSecurityOptions(addManagerOption(program.command('backup')
    .description('write every shard\'s data, each cut at one linearizable point, with a manifest and checksums, to --out DIR (or: backup verify DIR)')))
    .option('--out <dir>', 'the directory to write (required; must not hold a backup yet)')
    .action(async (flags: BackupFlags) => {
      const bar = progressBar('backup', 'shards');
      try {
        if (flags.out === undefined) throw new BadInputError('backup needs --out DIR');
        const manager = checkAddress(flags.manager, '--manager');
        const security = clientChannelSecurity(clientSecurityFromFlags(flags));
        const manifest = await runBackup({ manager, security, out: flags.out, onShard: (done, total) => bar.update(done, total) });
        bar.stop();
        process.stdout.write(`backup: ${manifest.shardCount} shards, ${manifest.totalKeys} keys, ${manifest.totalBytes} bytes in ${flags.out}\n`);
      } catch (error) {
        bar.stop();
        reportBackupError(error);
      }
    });
  backup.command('verify')
    .description('check a backup: the manifest, every file\'s checksum, and that every file reads to the end with the counts the manifest says')
    .argument('<dir>', 'the backup directory')
    .action(async (dir: string) => {
      try {
        const { manifest } = await verifyBackup(dir);
        process.stdout.write(`backup ok: ${manifest.shardCount} shards, ${manifest.totalKeys} keys, ${manifest.totalBytes} bytes, taken ${manifest.createdAt}\n`);
      } catch (error) {
        reportBackupError(error);
      }
    });

  addClientSecurityOptions(addManagerOption(program.command('restore')
    .description('load a backup into a running, empty cluster of any size (verified first; refused when the cluster holds keys, unless --force)')))
    .option('--from <dir>', 'the backup directory (required)')
    .option('--force', 'write into a cluster that holds keys')
    .action(async (flags: RestoreFlags) => {
      let client: KVClient | undefined;
      let connection: ManagerConnection | undefined;
      const bar = progressBar('restore', 'keys');
      try {
        if (flags.from === undefined) throw new BadInputError('restore needs --from DIR');
        const manager = checkAddress(flags.manager, '--manager');
        const credentials = clientSecurityFromFlags(flags);
        connection = connectManager({ address: manager, credentials });
        client = new KVClient({ manager, timeoutMs: 30_000, ...credentials });
        const { restored, manifest } = await runRestore({
          from: flags.from, client, manager: connection, force: flags.force === true, onProgress: (written, total) => bar.update(written, total),
        });
        bar.stop();
        process.stdout.write(`restored ${restored} keys (manifest: ${manifest.totalKeys})\n`);
      } catch (error) {
        bar.stop();
        reportBackupError(error);
      } finally {
        connection?.close();
        await client?.finalize();
      }
    });
}
