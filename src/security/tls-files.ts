/**
 * The TLS files a process is started with (`--tls-ca --tls-cert --tls-key`), read and checked once at
 * start-up so a wrong file is one clear line then, not a failed handshake later: the three go
 * together, each parses, the key is the certificate's, the CA signed the certificate, and it is
 * valid now.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

const DAY_MS = 24 * 60 * 60 * 1000;
/** A certificate this close to expiry gets a warning at start-up. */
export const EXPIRY_WARNING_DAYS = 30;

export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
}

/** The paths given on the command line (or the client options); all or none. */
export interface TlsPaths {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** A process's own certificate and the cluster CA, read and checked. */
export interface TlsMaterial {
  /** The cluster CA, PEM. */
  readonly ca: Buffer;
  /** This process's certificate, PEM. */
  readonly cert: Buffer;
  /** Its private key, PEM. */
  readonly key: Buffer;
  readonly caCertificate: X509Certificate;
  readonly certificate: X509Certificate;
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new TlsConfigError(`${flag} ${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

function parseCertificate(pem: Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch {
    throw new TlsConfigError(`${what}: not a PEM certificate`);
  }
}

/**
 * Whether `certificate` was signed by `ca` and is valid at `now`; the reason when not.
 * Only certificates the CA signed directly are accepted (no intermediates), as `certs create` makes them.
 */
export function certificateProblem(certificate: X509Certificate, ca: X509Certificate, now: number): string | undefined {
  if (now > Date.parse(ca.validTo)) return `the cluster CA expired on ${new Date(ca.validTo).toISOString()}`;
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) {
    return `certificate "${certificate.subject.replace(/\n/g, ', ')}" is not signed by the cluster CA "${ca.subject.replace(/\n/g, ', ')}"`;
  }
  if (now < Date.parse(certificate.validFrom)) return `certificate is not valid before ${new Date(certificate.validFrom).toISOString()}`;
  if (now > Date.parse(certificate.validTo)) return `certificate expired on ${new Date(certificate.validTo).toISOString()}`;
  return undefined;
}

/**
 * Reads and checks a server process's TLS files; undefined when none were given.
 * @param warn told when the certificate expires within {@link EXPIRY_WARNING_DAYS}.
 * @throws TlsConfigError naming the flag and what is wrong.
 */
export function loadServerTls(paths: TlsPaths, warn: (message: string, fields: Record<string, unknown>) => void, now = Date.now()): TlsMaterial | undefined {
  const given = [paths.ca, paths.cert, paths.key].filter((path) => path !== undefined).length;
  if (given === 0) return undefined;
  if (given !== 3) {
    const missing = [paths.ca === undefined ? '--tls-ca' : '', paths.cert === undefined ? '--tls-cert' : '', paths.key === undefined ? '--tls-key' : '']
      .filter((flag) => flag !== '');
    throw new TlsConfigError(`--tls-ca, --tls-cert and --tls-key go together: missing ${missing.join(', ')}`);
  }
  const material = loadTls(paths.ca as string, paths.cert as string, paths.key as string, '--tls-ca', '--tls-cert', '--tls-key', now);
  for (const [file, certificate, what] of [[paths.cert, material.certificate, 'TLS certificate'], [paths.ca, material.caCertificate, 'cluster CA']] as const) {
    const days = Math.floor((Date.parse(certificate.validTo) - now) / DAY_MS);
    if (days < EXPIRY_WARNING_DAYS) warn(`${what} expires soon`, { file, expires: new Date(certificate.validTo).toISOString(), days });
  }
  return material;
}

/**
 * Reads a CA, a certificate and its key, and checks that they belong together.
 * @throws TlsConfigError naming the flag and what is wrong.
 */
export function loadTls(caPath: string, certPath: string, keyPath: string, caFlag: string, certFlag: string, keyFlag: string, now = Date.now()): TlsMaterial {
  const ca = readPem(caPath, caFlag);
  const cert = readPem(certPath, certFlag);
  const key = readPem(keyPath, keyFlag);
  const caCertificate = parseCertificate(ca, `${caFlag} ${caPath}`);
  if (!caCertificate.ca) throw new TlsConfigError(`${caFlag} ${caPath}: not a CA certificate (basicConstraints CA:FALSE)`);
  const certificate = parseCertificate(cert, `${certFlag} ${certPath}`);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new TlsConfigError(`${keyFlag} ${keyPath}: not a PEM private key`);
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new TlsConfigError(`${keyFlag} ${keyPath} is not the key of ${certFlag} ${certPath}`);
  const problem = certificateProblem(certificate, caCertificate, now);
  if (problem !== undefined) throw new TlsConfigError(`${certFlag} ${certPath}: ${problem}`);
  return { ca, cert, key, caCertificate, certificate };
}
