/**
 * TLS and tokens for a cluster this process launches (`kvstore cluster --tls`, `bench --tls`,
 * `chaos --tls`, the tests): the server flags every child gets, and what this process presents
 * as a client of them (the readiness poll, the bench's and chaos's clients).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientTls } from '../client/index.js';
import { CERT_FILES, createCertificates } from '../security/certificates.js';
import { TokenFile } from '../security/index.js';

/** The security flags of every server child (paths as the children read them). */
export interface ServerSecurityFiles {
  tlsCa?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  authTokenFile?: string | undefined;
  /** `--metrics-tls`: metrics over HTTPS. */
  metricsTls?: boolean | undefined;
  /** `--insecure`: plaintext on a non-loopback address is meant (no warning). */
  insecure?: boolean | undefined;
}

/** What a client of the cluster presents: the `tls` and `token` options of KVClient. */
export interface ClientCredentials {
  tls?: ClientTls;
  token?: string;
}

/** A launched cluster's security: the children's flags and this process's credentials. */
export interface ClusterSecurity {
  server: ServerSecurityFiles;
  client: ClientCredentials;
}

/** The argv a server child gets for `files`. */
export function securityArgs(files: ServerSecurityFiles | undefined): string[] {
  if (files === undefined) return [];
  const args: string[] = [];
  if (files.tlsCa !== undefined) args.push('--tls-ca', files.tlsCa);
  if (files.tlsCert !== undefined) args.push('--tls-cert', files.tlsCert);
  if (files.tlsKey !== undefined) args.push('--tls-key', files.tlsKey);
  if (files.authTokenFile !== undefined) args.push('--auth-token-file', files.authTokenFile);
  if (files.metricsTls === true) args.push('--metrics-tls');
  if (files.insecure === true) args.push('--insecure');
  return args;
}

/** The directory `cluster --tls` keeps its certificates in (DESIGN.md §6). */
export function certsDir(dataDir: string): string {
  return join(dataDir, 'certs');
}

export interface LocalSecurityOptions {
  /** Mutual TLS with certificates in `DATA_DIR/certs/` (made on first start, reused after). */
  tls?: boolean;
  /** Explicit TLS files instead (`--tls-ca --tls-cert --tls-key`); this process presents the server certificate. */
  files?: { tlsCa: string; tlsCert: string; tlsKey: string } | undefined;
  /** `--auth-token-file` for every child; this process sends the file's first token. */
  authTokenFile?: string | undefined;
  /** Extra SANs of a made server certificate (addresses the children listen on beyond loopback). */
  hosts?: readonly string[];
  metricsTls?: boolean;
}

/**
 * The security of a local cluster in `dataDir`: makes `DATA_DIR/certs/` when `tls` asks for it,
 * reads the token file.
 * @throws the certificate or token file's error (CertificateError, TokenFileError).
 */
export async function localClusterSecurity(dataDir: string, options: LocalSecurityOptions): Promise<ClusterSecurity> {
  const server: ServerSecurityFiles = {};
  const client: ClientCredentials = {};
  if (options.files !== undefined) {
    Object.assign(server, options.files);
    client.tls = { ca: readFileSync(options.files.tlsCa), cert: readFileSync(options.files.tlsCert), key: readFileSync(options.files.tlsKey) };
  } else if (options.tls === true) {
    const dir = certsDir(dataDir);
    await createCertificates({ dir, hosts: options.hosts ?? [], ifMissing: true });
    server.tlsCa = join(dir, CERT_FILES.ca);
    server.tlsCert = join(dir, CERT_FILES.serverCert);
    server.tlsKey = join(dir, CERT_FILES.serverKey);
    client.tls = {
      ca: readFileSync(join(dir, CERT_FILES.ca)),
      cert: readFileSync(join(dir, CERT_FILES.clientCert)),
      key: readFileSync(join(dir, CERT_FILES.clientKey)),
    };
  }
  if (options.authTokenFile !== undefined) {
    server.authTokenFile = options.authTokenFile;
    client.token = TokenFile.load(options.authTokenFile).ownToken;
  }
  if (options.metricsTls === true) server.metricsTls = true;
  return { server, client };
}
