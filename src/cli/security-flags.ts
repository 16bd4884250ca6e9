/**
 * The TLS and authentication flags (DESIGN.md §6), parsed once for every command that has them:
 * servers (`manager`, `node`, `cluster`) take `--tls-ca --tls-cert --tls-key`, `--auth-token-file`,
 * `--metrics-tls` and `--insecure`; client-side commands take `--tls-ca [--cert --key] [--token]`
 * (or `KVSTORE_TOKEN`).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Command } from 'commander';
import type { ClientTls } from '../client/index.js';
import type { Logger } from '../common/index.js';
import {
  loadServerTls, tokenProblem, TlsConfigError, TokenFile, TokenFileError, type TlsMaterial,
} from '../security/index.js';
import { BadInputError } from './client-util.js';

/** The server-side security flags as commander hands them over. */
export interface ServerSecurityFlags {
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  authTokenFile?: string;
  metricsTls?: boolean;
  insecure?: boolean;
}

/** What a server process was asked to secure itself with: file paths, read by {@link loadServerSecurity}. */
export interface ServerSecuritySettings {
  tlsCa?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  authTokenFile?: string | undefined;
  metricsTls: boolean;
  insecure: boolean;
}

/** Adds the server security flags to `command`. */
export function addServerSecurityOptions(command: Command): Command {
  return command
    .option('--tls-ca <file>', 'cluster CA certificate (PEM): mutual TLS with every process and client')
    .option('--tls-cert <file>', 'this process\'s certificate (PEM), signed by --tls-ca')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--auth-token-file <file>', 'bearer tokens clients may present, one per line (re-read on SIGHUP)')
    .option('--metrics-tls', 'serve /metrics, /healthz and /readyz over HTTPS with --tls-cert')
    .option('--insecure', 'serve plaintext without authentication on purpose (no warning for a non-loopback address)');
}

/** Checks the flags' combination (not the files: {@link loadServerSecurity} reads those). */
export function parseServerSecurityFlags(flags: ServerSecurityFlags): ServerSecuritySettings {
  const tlsGiven = [flags.tlsCa, flags.tlsCert, flags.tlsKey].filter((value) => value !== undefined).length;
  if (tlsGiven !== 0 && tlsGiven !== 3) {
    const missing = [['--tls-ca', flags.tlsCa], ['--tls-cert', flags.tlsCert], ['--tls-key', flags.tlsKey]]
      .filter(([, value]) => value === undefined).map(([flag]) => flag);
    throw new BadInputError(`--tls-ca, --tls-cert and --tls-key go together: missing ${missing.join(', ')}`);
  }
  if (flags.insecure === true && (tlsGiven > 0 || flags.authTokenFile !== undefined)) {
    throw new BadInputError('--insecure cannot be combined with --tls-* or --auth-token-file');
  }
  if (flags.metricsTls === true && tlsGiven === 0) throw new BadInputError('--metrics-tls needs --tls-ca, --tls-cert and --tls-key');
  return {
    tlsCa: flags.tlsCa, tlsCert: flags.tlsCert, tlsKey: flags.tlsKey, authTokenFile: flags.authTokenFile,
    metricsTls: flags.metricsTls === true, insecure: flags.insecure === true,
  };
}

/** A server's security, read from its files. */
export interface LoadedServerSecurity {
  tls: TlsMaterial | undefined;
  tokens: TokenFile | undefined;
  metricsTls: boolean;
}

/**
 * Reads the certificate, key, CA and token files.
 * @throws BadInputError naming the flag, the file and what is wrong.
 */
export function loadServerSecurity(settings: ServerSecuritySettings, logger: Logger): LoadedServerSecurity {
  try {
    const tls = loadServerTls({ ca: settings.tlsCa, cert: settings.tlsCert, key: settings.tlsKey }, (message, fields) => logger.warn(message, fields));
    const tokens = settings.authTokenFile === undefined ? undefined : TokenFile.load(settings.authTokenFile);
    return { tls, tokens, metricsTls: settings.metricsTls };
  } catch (error) {
    if (error instanceof TlsConfigError || error instanceof TokenFileError) throw new BadInputError(error.message);
    throw error;
  }
}

/** Whether `host` is a loopback interface (only this machine can connect). */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost' || bare === '::1') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

/**
 * The start-up warning etcd also gives: a server reachable from other machines with neither TLS nor
 * `--insecure` serves every key to anyone who can connect, in the clear.
 */
export function warnIfExposed(logger: Logger, host: string, security: LoadedServerSecurity, insecure: boolean): void {
  if (isLoopback(host) || security.tls !== undefined || insecure) return;
  logger.warn(security.tokens === undefined
    ? 'serving plaintext without authentication on a non-loopback address: anyone who can connect can read and write every key; '
      + 'pass --tls-ca/--tls-cert/--tls-key (see kvstore certs create), or --insecure if this is meant'
    : 'serving plaintext on a non-loopback address: tokens and data cross the network in the clear; pass --tls-ca/--tls-cert/--tls-key', { host });
}

/**
 * Re-reads the token file on SIGHUP (the documented way to rotate tokens without a restart).
 * @returns the function that stops listening.
 */
export function reloadOnSighup(logger: Logger, reload: () => number | undefined): () => void {
  const onHup = (): void => {
    try {
      const count = reload();
      if (count === undefined) logger.info('SIGHUP: no --auth-token-file to reload');
      else logger.info('auth tokens reloaded', { tokens: count });
    } catch (error) {
      logger.error('auth tokens not reloaded: the tokens in use stay', { error: (error as Error).message });
    }
  };
  process.on('SIGHUP', onHup);
  return () => { process.off('SIGHUP', onHup); };
}

/** The client-side security flags as commander hands them over. */
export interface ClientSecurityFlags {
  tlsCa?: string;
  cert?: string;
  key?: string;
  token?: string;
}

/** Adds `--tls-ca`, `--cert`, `--key` and `--token` to a client-side command. */
export function addClientSecurityOptions(command: Command): Command {
  return command
    .option('--tls-ca <file>', 'the cluster CA certificate (PEM): talk TLS, and trust servers it signed')
    .option('--cert <file>', 'client certificate (PEM) signed by the cluster CA, to authenticate with (with --key)')
    .option('--key <file>', 'the private key of --cert (PEM)')
    .option('--token <token>', 'bearer token to authenticate with (env KVSTORE_TOKEN)');
}

/** What a client presents: the options of `KVClient` (`tls`, `token`). */
export interface ClientSecurity {
  tls?: ClientTls;
  token?: string;
}

/**
 * Reads the client's files and token (`--token`, else `KVSTORE_TOKEN`).
 * @throws BadInputError naming the flag and what is wrong.
 */
export function clientSecurityFromFlags(flags: ClientSecurityFlags, env: NodeJS.ProcessEnv = process.env): ClientSecurity {
  const security: ClientSecurity = {};
  const fromEnv = env['KVSTORE_TOKEN'];
  const token = flags.token ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined);
  if (token !== undefined) {
    const problem = tokenProblem(token);
    if (problem !== undefined) throw new BadInputError(`${flags.token === undefined ? 'KVSTORE_TOKEN' : '--token'}: the token ${problem}`);
    security.token = token;
  }
  if ((flags.cert === undefined) !== (flags.key === undefined)) {
    throw new BadInputError(`--cert and --key go together: missing ${flags.cert === undefined ? '--cert' : '--key'}`);
  }
  if (flags.tlsCa === undefined) {
    if (flags.cert !== undefined) throw new BadInputError('--cert and --key need --tls-ca (the CA that signed the servers)');
    return security;
  }
  const read = (path: string, flag: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new BadInputError(`${flag} ${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  };
  security.tls = { ca: read(flags.tlsCa, '--tls-ca') };
  if (flags.cert !== undefined && flags.key !== undefined) {
    security.tls.cert = read(flags.cert, '--cert');
    security.tls.key = read(flags.key, '--key');
  }
  return security;
}
