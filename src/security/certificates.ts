/**
 * Certificates made easy (`kvstore certs create`, `kvstore cluster --tls`): a cluster CA and, signed by
 * it, one certificate for the servers (manager and nodes, which also present it as clients of each
 * other) and one for clients. The file names are the outside contract (DESIGN.md §6): `ca.crt`,
 * `ca.key`, `server.crt`, `server.key`, `client.crt`, `client.key`.
 *
 * Keys are ECDSA P-256 with SHA-256 signatures: what every TLS stack speaks, small and fast to
 * handshake. The CA is valid ten years; the server and client certificates 825 days (the longest
 * Apple's TLS clients accept for a server certificate), never past the CA's own expiry. The
 * X.509 encoding is @peculiar/x509's over Node's WebCrypto (loaded only when certificates are made,
 * so no other command pays for it); reading certificates uses `node:crypto`'s X509Certificate.
 */
import { X509Certificate, randomBytes, webcrypto } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';

/** The files `certs create` writes into its directory. */
export const CERT_FILES = {
  ca: 'ca.crt',
  caKey: 'ca.key',
  serverCert: 'server.crt',
  serverKey: 'server.key',
  clientCert: 'client.crt',
  clientKey: 'client.key',
} as const;

const DAY_MS = 24 * 60 * 60 * 1000;
/** How long the CA is valid. */
export const CA_LIFETIME_DAYS = 3650;
/** How long the server and client certificates are valid (at most; never past the CA's expiry). */
export const LEAF_LIFETIME_DAYS = 825;
/** Names every server certificate carries, so local clusters and health checks verify. */
const LOCAL_HOSTS = ['localhost', '127.0.0.1', '::1'];
/** A host name as an X.509 DNS SAN may hold it (letters, digits, '-', '.', a leading '*.' wildcard). */
const DNS_NAME = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export class CertificateError extends Error {
  override readonly name = 'CertificateError';
}

export interface CreateCertificatesOptions {
  /** Directory to write into (created if missing). */
  dir: string;
  /** Extra host names or IP addresses the server certificate is valid for. */
  hosts?: readonly string[];
  /** Replace server and client certificates that already exist (the CA is always kept). */
  overwrite?: boolean;
  /** Write nothing, and succeed, when every file is already there (a one-shot container run again). */
  ifMissing?: boolean;
  /**
   * Also copy `ca.crt`, `server.crt` and `server.key` here: what the manager and nodes mount, without
   * the CA's key or the client's (`docker-compose.tls.yml`). Refreshed on every run.
   */
  serverDir?: string;
  /** Also copy `ca.crt`, `client.crt` and `client.key` here: what clients mount. Refreshed on every run. */
  clientDir?: string;
  /** The clock (tests). */
  now?: Date;
}

export interface CreatedCertificates {
  /** Whether the CA was made now (false: an existing `ca.crt`/`ca.key` signed the new certificates). */
  createdCa: boolean;
  /** Paths written, in the order above. */
  written: string[];
  /** The server certificate's subject alternative names. */
  serverNames: string[];
}

/**
 * Validates `--hosts` entries: each a DNS name or an IP address.
 * @throws CertificateError naming the first bad entry.
 */
export function parseHosts(list: string): string[] {
  const hosts = list.split(',').map((host) => host.trim()).filter((host) => host.length > 0);
  for (const host of hosts) {
    if (isIP(host) === 0 && !DNS_NAME.test(host)) {
      throw new CertificateError(`--hosts: "${host}" is neither a host name nor an IP address`);
    }
  }
  return hosts;
}

type X509Module = typeof import('@peculiar/x509');

/** @peculiar/x509 needs the reflect-metadata polyfill loaded before it. */
async function loadX509(): Promise<X509Module> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  return x509;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A positive 128-bit serial number, as RFC 5280 asks (unique, at most 20 bytes). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

async function importKeyPem(pem: string, path: string): Promise<webcrypto.CryptoKey> {
  const body = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, '');
  try {
    return await webcrypto.subtle.importKey('pkcs8', Buffer.from(body, 'base64'), ALGORITHM, true, ['sign']);
  } catch (error) {
    throw new CertificateError(`${path}: not a PKCS#8 ECDSA P-256 private key (${(error as Error).message})`);
  }
}

/** Writes a key readable by its owner only: a new file made 0600, renamed over any old one (never briefly wider). */
async function writeSecret(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o600, flag: 'w' });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

/**
 * Writes a CA (unless `dir` already holds one, which then signs), a server certificate valid for
 * `hosts` plus localhost, and a client certificate.
 * @throws CertificateError when server or client files exist and `overwrite` is not set, or the
 * existing CA cannot be read; nothing is written then.
 */
export async function createCertificates(options: CreateCertificatesOptions): Promise<CreatedCertificates> {
  const { dir } = options;
  const path = (name: string): string => join(dir, name);
  const leaves = [CERT_FILES.serverCert, CERT_FILES.serverKey, CERT_FILES.clientCert, CERT_FILES.clientKey];
  const existing = leaves.filter((name) => existsSync(path(name)));
  if (options.ifMissing === true && existing.length === leaves.length && existsSync(path(CERT_FILES.ca))) {
    return { createdCa: false, written: await exportSets(dir, options), serverNames: [] };
  }
  if (existing.length > 0 && options.overwrite !== true) {
    throw new CertificateError(`${dir} already holds ${existing.join(', ')}; pass --overwrite to replace them (the CA is kept)`);
  }
  const hasCa = existsSync(path(CERT_FILES.ca));
  const hasCaKey = existsSync(path(CERT_FILES.caKey));
  if (hasCa !== hasCaKey) {
    throw new CertificateError(`${dir} holds ${hasCa ? CERT_FILES.ca : CERT_FILES.caKey} without ${hasCa ? CERT_FILES.caKey : CERT_FILES.ca}; `
      + 'move it away or restore its pair');
  }
  const x509 = await loadX509();
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - 60_000); // a minute of slack for clocks slightly behind
  await mkdir(dir, { recursive: true, mode: 0o700 });

  let ca: InstanceType<X509Module['X509Certificate']>;
  let caKey: webcrypto.CryptoKey;
  const written: string[] = [];
  if (hasCa) {
    const caPem = await readFile(path(CERT_FILES.ca), 'utf8');
    try {
      ca = new x509.X509Certificate(caPem);
    } catch (error) {
      throw new CertificateError(`${path(CERT_FILES.ca)}: not a PEM certificate (${(error as Error).message})`);
    }
    caKey = await importKeyPem(await readFile(path(CERT_FILES.caKey), 'utf8'), path(CERT_FILES.caKey));
    if (ca.notAfter.getTime() <= now.getTime()) {
      throw new CertificateError(`the CA in ${dir} expired on ${ca.notAfter.toISOString()}: move ca.crt and ca.key away to make a new one (and new certificates for every process)`);
    }
  } else {
    const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
    ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name: 'CN=kvstore CA,O=kvstore',
      notBefore,
      notAfter: new Date(now.getTime() + CA_LIFETIME_DAYS * DAY_MS),
      signingAlgorithm: ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    caKey = keys.privateKey;
    await writeSecret(path(CERT_FILES.caKey), await exportKeyPem(caKey));
    await writeFile(path(CERT_FILES.ca), ca.toString('pem') + '\n');
    written.push(path(CERT_FILES.ca), path(CERT_FILES.caKey));
  }

  const serverNames = [...new Set([...(options.hosts ?? []), ...LOCAL_HOSTS])];
  const leaf = async (subject: string, usages: string[], names: string[]): Promise<{ cert: string; key: string }> => {
    const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
    const extensions: InstanceType<X509Module['Extension']>[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension(usages, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
    ];
    if (names.length > 0) {
      extensions.push(new x509.SubjectAlternativeNameExtension(
        names.map((name) => ({ type: isIP(name) === 0 ? 'dns' as const : 'ip' as const, value: name })), false));
    }
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: subject,
      issuer: ca.subject,
      notBefore,
      notAfter: new Date(Math.min(now.getTime() + LEAF_LIFETIME_DAYS * DAY_MS, ca.notAfter.getTime())),
      signingAlgorithm: ALGORITHM,
      publicKey: keys.publicKey,
      signingKey: caKey,
      extensions,
    });
    return { cert: cert.toString('pem') + '\n', key: await exportKeyPem(keys.privateKey) };
  };
  // Servers are clients of each other too (node → manager, node → node), so serverAuth and clientAuth.
  const server = await leaf('CN=kvstore server,O=kvstore', [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], serverNames);
  const client = await leaf('CN=kvstore client,O=kvstore', [x509.ExtendedKeyUsage.clientAuth], []);
  await writeFile(path(CERT_FILES.serverCert), server.cert);
  await writeSecret(path(CERT_FILES.serverKey), server.key);
  await writeFile(path(CERT_FILES.clientCert), client.cert);
  await writeSecret(path(CERT_FILES.clientKey), client.key);
  written.push(path(CERT_FILES.serverCert), path(CERT_FILES.serverKey), path(CERT_FILES.clientCert), path(CERT_FILES.clientKey));
  written.push(...await exportSets(dir, options));
  return { createdCa: !hasCa, written, serverNames };
}

/** Copies the servers' and the clients' sets out of `dir` (see {@link CreateCertificatesOptions.serverDir}). */
async function exportSets(dir: string, options: CreateCertificatesOptions): Promise<string[]> {
  const written: string[] = [];
  const sets: [string | undefined, string, string][] = [
    [options.serverDir, CERT_FILES.serverCert, CERT_FILES.serverKey],
    [options.clientDir, CERT_FILES.clientCert, CERT_FILES.clientKey],
  ];
  for (const [target, cert, key] of sets) {
    if (target === undefined) continue;
    await mkdir(target, { recursive: true, mode: 0o700 });
    for (const name of [CERT_FILES.ca, cert]) {
      await copyFile(join(dir, name), join(target, name));
      written.push(join(target, name));
    }
    await writeSecret(join(target, key), await readFile(join(dir, key), 'utf8'));
    written.push(join(target, key));
  }
  return written;
}

/** What `kvstore certs show` prints of a certificate. */
export interface CertificateSummary {
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  /** Whole days until it expires (negative once expired). */
  expiresInDays: number;
  subjectAltNames: string[];
  isCa: boolean;
  fingerprint256: string;
}

/**
 * Reads a PEM certificate file.
 * @throws CertificateError when the file is missing or holds no certificate.
 */
export async function describeCertificate(file: string, now: Date = new Date()): Promise<CertificateSummary> {
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (error) {
    throw new CertificateError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    throw new CertificateError(`${file}: not a PEM certificate`);
  }
  const notAfter = new Date(cert.validTo);
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    serialNumber: cert.serialNumber,
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: notAfter.toISOString(),
    expiresInDays: Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS),
    subjectAltNames: (cert.subjectAltName ?? '').split(',').map((name) => name.trim()).filter((name) => name.length > 0),
    isCa: cert.ca,
    fingerprint256: cert.fingerprint256,
  };
}
