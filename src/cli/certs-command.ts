/**
 * `kvstore certs create --dir DIR [--hosts H1,H2] [--overwrite]`: a cluster CA and the server and
 * client certificates it signs (DESIGN.md §6); an existing CA in DIR is reused, so certificates for
 * new hosts still join the cluster. `kvstore certs show FILE [--json]`: subject, SANs and expiry.
 */
import type { Command } from 'commander';
import { CertificateError, createCertificates, describeCertificate, parseHosts } from '../security/certificates.js';
import { BadInputError, EXIT, failWith } from './client-util.js';

/** Registers `certs create` and `certs show` on the root program. */
export function registerCertsCommand(program: Command): void {
  const certs = program.command('certs').description('make and inspect the TLS certificates of a cluster');
  certs
    .command('create')
    .description('write ca.crt/ca.key (kept if DIR has them), server.crt/.key (manager and nodes) and client.crt/.key into DIR')
    .requiredOption('--dir <dir>', 'directory to write the certificates into (created if missing)')
    .option('--hosts <list>', 'comma-separated host names and IP addresses the servers are reached at (localhost and 127.0.0.1 are always in)', '')
    .option('--overwrite', 'replace existing server and client certificates')
    .option('--if-missing', 'do nothing (exit 0) when DIR already holds every file: for a one-shot container run on every start')
    .option('--server-dir <dir>', 'also copy ca.crt, server.crt and server.key here (what servers mount: no CA key, no client key)')
    .option('--client-dir <dir>', 'also copy ca.crt, client.crt and client.key here (what clients mount)')
    .action(async (flags: { dir: string; hosts: string; overwrite?: boolean; ifMissing?: boolean; serverDir?: string; clientDir?: string }) => {
      try {
        if (flags.dir.trim() === '') throw new BadInputError('--dir wants a directory');
        if (flags.overwrite === true && flags.ifMissing === true) throw new BadInputError('--overwrite and --if-missing contradict each other');
        const created = await createCertificates({
          dir: flags.dir, hosts: parseHosts(flags.hosts), overwrite: flags.overwrite === true, ifMissing: flags.ifMissing === true,
          ...(flags.serverDir === undefined ? {} : { serverDir: flags.serverDir }),
          ...(flags.clientDir === undefined ? {} : { clientDir: flags.clientDir }),
        });
        if (created.serverNames.length === 0) {
          process.stdout.write(`${flags.dir} already holds every certificate; nothing new made\n`);
          for (const path of created.written) process.stdout.write(`copied ${path}\n`);
          return;
        }
        process.stdout.write(`${created.createdCa ? 'created a new CA' : 'signed with the existing CA'} in ${flags.dir}\n`);
        for (const path of created.written) process.stdout.write(`wrote ${path}\n`);
        process.stdout.write(`server certificate valid for: ${created.serverNames.join(', ')}\n`);
      } catch (error) {
        if (error instanceof CertificateError || error instanceof BadInputError) failWith(`error: ${error.message}`, EXIT.badInput);
        else throw error;
      }
    });
  certs
    .command('show')
    .description('print a certificate\'s subject, issuer, SANs and expiry')
    .argument('<file>', 'a PEM certificate (e.g. DIR/server.crt)')
    .option('--json', 'print one JSON object')
    .action(async (file: string, flags: { json?: boolean }) => {
      try {
        const summary = await describeCertificate(file);
        if (flags.json === true) {
          process.stdout.write(`${JSON.stringify(summary)}\n`);
          return;
        }
        const expiry = summary.expiresInDays < 0 ? `EXPIRED ${-summary.expiresInDays} days ago` : `in ${summary.expiresInDays} days`;
        const lines = [
          `subject:     ${summary.subject}`,
          `issuer:      ${summary.issuer}`,
          `serial:      ${summary.serialNumber}`,
          `valid from:  ${summary.notBefore}`,
          `expires:     ${summary.notAfter} (${expiry})`,
          `SANs:        ${summary.subjectAltNames.length === 0 ? '(none)' : summary.subjectAltNames.join(', ')}`,
          `CA:          ${summary.isCa ? 'yes' : 'no'}`,
          `fingerprint: SHA-256 ${summary.fingerprint256}`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      } catch (error) {
        if (error instanceof CertificateError) failWith(`error: ${error.message}`, EXIT.badInput);
        else throw error;
      }
    });
}
