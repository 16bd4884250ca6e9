/**
 * Issue 17: certificates, token files and the per-call check, on a real gRPC server in this process
 * (a one-method echo service), with the same credentials the manager and nodes use.
 */
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KVClient, KVError } from '../../src/client/index.js';
import { createCertificates, CertificateError, describeCertificate, parseHosts } from '../../src/security/certificates.js';
import {
  ChannelSecurity, loadServerTls, ServerSecurity, TlsConfigError, TokenFile, TokenFileError, parseTokens, peerHost,
} from '../../src/security/index.js';
import { waitFor } from '../support/wait-for.js';

const ECHO = {
  echo: {
    path: '/test.Echo/Echo', requestStream: false, responseStream: false,
    requestSerialize: (value: Buffer) => value, requestDeserialize: (value: Buffer) => value,
    responseSerialize: (value: Buffer) => value, responseDeserialize: (value: Buffer) => value,
  },
} as const;
const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');
type EchoStub = grpc.Client & { echo: (request: Buffer, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: Buffer) => void) => void };

interface Logged { level: string; message: string; fields: Record<string, unknown> }

function recordingLog(): { lines: Logged[]; info: (m: string, f: Record<string, unknown>) => void; warn: (m: string, f: Record<string, unknown>) => void; error: (m: string, f: Record<string, unknown>) => void } {
  const lines: Logged[] = [];
  return {
    lines,
    info: (message, fields) => lines.push({ level: 'info', message, fields }),
    warn: (message, fields) => lines.push({ level: 'warn', message, fields }),
    error: (message, fields) => lines.push({ level: 'error', message, fields }),
  };
}

async function serve(security: ServerSecurity): Promise<{ server: grpc.Server; address: string }> {
  const server = new grpc.Server({ interceptors: security.interceptors() });
  server.addService(ECHO, { echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request) });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', security.credentials(), (error, bound) => (error === null ? resolve(bound) : reject(error)));
  });
  return { server, address: `127.0.0.1:${port}` };
}

async function call(address: string, security: ChannelSecurity): Promise<{ ok: true } | { ok: false; code: number; details: string }> {
  const target = security.forTarget(address);
  const client = new EchoClient(address, target.credentials, { ...target.options, interceptors: security.interceptors }) as unknown as EchoStub;
  try {
    return await new Promise((resolve) => {
      client.echo(Buffer.from('hi'), { deadline: Date.now() + 5000 }, (error) => {
        resolve(error === null ? { ok: true } : { ok: false, code: error.code, details: error.details });
      });
    });
  } finally {
    client.close();
  }
}

describe('security: certificates, tokens and the per-call check', function () {
  this.timeout(30_000);
  let root: string;
  let cluster: string;
  let other: string;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'kvstore-security-'));
    cluster = join(root, 'cluster');
    other = join(root, 'other');
    await createCertificates({ dir: cluster, hosts: ['kv.example', '10.1.2.3'] });
    await createCertificates({ dir: other });
  });

  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  const material = (dir: string) => loadServerTls({ ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') }, () => undefined);
  const clientTls = (caDir: string, certDir?: string) => ({
    ca: readFileSync(join(caDir, 'ca.crt')),
    ...(certDir === undefined ? {} : { cert: readFileSync(join(certDir, 'client.crt')), key: readFileSync(join(certDir, 'client.key')) }),
  });

  describe('certs create / show', () => {
    it('makes a CA and server/client certificates the CA signed, with the hosts and localhost as SANs', async () => {
      const server = await describeCertificate(join(cluster, 'server.crt'));
      expect(server.subjectAltNames).to.include.members(['DNS:kv.example', 'IP Address:10.1.2.3', 'DNS:localhost', 'IP Address:127.0.0.1']);
      expect(server.isCa).to.equal(false);
      expect(server.expiresInDays).to.be.within(820, 825);
      const ca = await describeCertificate(join(cluster, 'ca.crt'));
      expect(ca.isCa).to.equal(true);
      expect(server.issuer).to.equal(ca.subject);
      expect(readFileSync(join(cluster, 'ca.key')).toString()).to.contain('PRIVATE KEY');
    });

    it('keeps an existing CA, refuses to overwrite certificates unless asked, and --if-missing writes nothing', async () => {
      const ca = readFileSync(join(cluster, 'ca.crt'), 'utf8');
      let refused: unknown;
      try {
        await createCertificates({ dir: cluster });
      } catch (error) {
        refused = error;
      }
      expect(refused).to.be.instanceOf(CertificateError);
      expect((refused as Error).message).to.match(/already holds .*--overwrite/);
      const skipped = await createCertificates({ dir: cluster, ifMissing: true });
      expect(skipped.written).to.deep.equal([]);
      const again = await createCertificates({ dir: cluster, hosts: ['kv.example', '10.1.2.3'], overwrite: true });
      expect(again.createdCa).to.equal(false);
      expect(readFileSync(join(cluster, 'ca.crt'), 'utf8')).to.equal(ca);
      expect(material(cluster)?.certificate.checkIssued(material(cluster)?.caCertificate as never)).to.equal(true);
    });

    it('never issues a certificate that outlives its CA, warns before the CA expires, and refuses an expired CA', async () => {
      const day = 24 * 60 * 60 * 1000;
      const aging = join(root, 'aging');
      await createCertificates({ dir: aging, now: new Date(Date.now() - 3620 * day) }); // the CA has ~30 days left
      await createCertificates({ dir: aging, overwrite: true });
      const ca = await describeCertificate(join(aging, 'ca.crt'));
      const server = await describeCertificate(join(aging, 'server.crt'));
      expect(server.notAfter <= ca.notAfter, `${server.notAfter} after the CA's ${ca.notAfter}`).to.equal(true);
      const warnings: string[] = [];
      loadServerTls({ ca: join(aging, 'ca.crt'), cert: join(aging, 'server.crt'), key: join(aging, 'server.key') }, (message) => warnings.push(message));
      expect(warnings).to.include('cluster CA expires soon');

      const expired = join(root, 'expired');
      await createCertificates({ dir: expired, now: new Date(Date.now() - 3700 * day) });
      let refused: unknown;
      try {
        await createCertificates({ dir: expired, overwrite: true });
      } catch (error) {
        refused = error;
      }
      expect((refused as Error | undefined)?.message).to.match(/the CA in .* expired on/);
      expect(() => loadServerTls({ ca: join(expired, 'ca.crt'), cert: join(expired, 'server.crt'), key: join(expired, 'server.key') }, () => undefined))
        .to.throw(TlsConfigError, /the cluster CA expired on/);
    });

    it('rejects a --hosts entry that is neither a name nor an address', () => {
      expect(parseHosts('a.example, 10.0.0.1 ,,b')).to.deep.equal(['a.example', '10.0.0.1', 'b']);
      expect(() => parseHosts('good,bad host')).to.throw(CertificateError, /"bad host"/);
    });
  });

  describe('loading TLS files', () => {
    it('needs all three flags, the key of the certificate, and a certificate the CA signed', () => {
      expect(loadServerTls({}, () => undefined)).to.equal(undefined);
      expect(() => loadServerTls({ ca: join(cluster, 'ca.crt') }, () => undefined)).to.throw(TlsConfigError, /missing --tls-cert, --tls-key/);
      expect(() => loadServerTls({ ca: join(cluster, 'ca.crt'), cert: join(cluster, 'server.crt'), key: join(cluster, 'client.key') }, () => undefined))
        .to.throw(TlsConfigError, /is not the key of/);
      expect(() => loadServerTls({ ca: join(cluster, 'ca.crt'), cert: join(other, 'server.crt'), key: join(other, 'server.key') }, () => undefined))
        .to.throw(TlsConfigError, /not signed by the cluster CA/);
      expect(() => loadServerTls({ ca: join(cluster, 'server.crt'), cert: join(cluster, 'server.crt'), key: join(cluster, 'server.key') }, () => undefined))
        .to.throw(TlsConfigError, /not a CA certificate/);
      expect(() => loadServerTls({ ca: join(root, 'missing.crt'), cert: join(cluster, 'server.crt'), key: join(cluster, 'server.key') }, () => undefined))
        .to.throw(TlsConfigError, /--tls-ca .*missing\.crt: cannot read \(ENOENT\)/);
    });
  });

  describe('token files', () => {
    it('takes one token per line, skipping blanks and comments, and names the line that breaks a rule', () => {
      expect(parseTokens('# rotate monthly\n\n  abcdefghijklmnop  \nqrstuvwxyz0123456789\n', 'f')).to.deep.equal(['abcdefghijklmnop', 'qrstuvwxyz0123456789']);
      expect(() => parseTokens('abcdefghijklmnop\nshort\n', 'f')).to.throw(TokenFileError, /f line 2: the token is 5 characters; at least 16/);
      expect(() => parseTokens('# nothing\n', 'f')).to.throw(TokenFileError, /holds no token/);
      expect(() => parseTokens('abcdefgh ijklmnopq\n', 'f')).to.throw(TokenFileError, /spaces/);
    });

    it('accepts exactly its tokens, and a failed reload keeps the tokens in use', () => {
      const path = join(root, 'tokens');
      writeFileSync(path, 'token-one-0123456789\ntoken-two-0123456789\n');
      const tokens = TokenFile.load(path);
      expect(tokens.accepts('token-one-0123456789')).to.equal(true);
      expect(tokens.accepts('token-two-0123456789')).to.equal(true);
      expect(tokens.accepts('token-one-012345678')).to.equal(false);
      expect(tokens.ownToken).to.equal('token-one-0123456789');
      writeFileSync(path, 'short\n');
      expect(() => tokens.reload()).to.throw(TokenFileError);
      expect(tokens.accepts('token-one-0123456789')).to.equal(true);
      writeFileSync(path, 'token-three-0123456789\n');
      expect(tokens.reload()).to.equal(1);
      expect(tokens.accepts('token-one-0123456789')).to.equal(false);
      expect(tokens.accepts('token-three-0123456789')).to.equal(true);
    });
  });

  describe('per-call authentication on a gRPC server', () => {
    const servers: grpc.Server[] = [];
    const securities: ServerSecurity[] = [];
    afterEach(() => {
      for (const server of servers.splice(0)) server.forceShutdown();
      for (const security of securities.splice(0)) security.close();
    });

    it('with TLS: admits a client certificate the CA signed; refuses none or another CA\'s as UNAUTHENTICATED, logged once per peer and reason', async () => {
      const log = recordingLog();
      const security = new ServerSecurity({ tls: material(cluster), log });
      securities.push(security);
      const { server, address } = await serve(security);
      servers.push(server);
      expect(await call(address, new ChannelSecurity(clientTls(cluster, cluster), undefined))).to.deep.equal({ ok: true });
      for (let i = 0; i < 3; i++) {
        const none = await call(address, new ChannelSecurity(clientTls(cluster), undefined));
        expect(none).to.deep.include({ ok: false, code: grpc.status.UNAUTHENTICATED });
      }
      const foreign = await call(address, new ChannelSecurity(clientTls(cluster, other), undefined));
      expect(foreign).to.deep.include({ ok: false, code: grpc.status.UNAUTHENTICATED, details: 'no client certificate signed by the cluster CA' });
      expect(security.refused).to.equal(4);
      const refusals = log.lines.filter((line) => line.message === 'refused an unauthenticated call');
      expect(refusals, 'one line for the same peer host and reason').to.have.length(1);
      expect(refusals[0]?.fields['peer']).to.match(/^127\.0\.0\.1:\d+$/);
      expect(refusals[0]?.fields['method']).to.equal('/test.Echo/Echo');
    });

    it('says what is wrong when only one end speaks TLS, or the server is not the CA\'s', async () => {
      const tlsSecurity = new ServerSecurity({ tls: material(cluster), log: recordingLog() });
      const plainSecurity = new ServerSecurity({ log: recordingLog() });
      securities.push(tlsSecurity, plainSecurity);
      const tls = await serve(tlsSecurity);
      const plain = await serve(plainSecurity);
      servers.push(tls.server, plain.server);
      const { securityFailure, speaksTls } = await import('../../src/security/channel-security.js');
      expect(await speaksTls(tls.address)).to.equal(true);
      expect(await speaksTls(plain.address)).to.equal(false);
      const toPlain = await call(plain.address, new ChannelSecurity(clientTls(cluster, cluster), undefined));
      expect(toPlain.ok).to.equal(false);
      if (!toPlain.ok) expect(securityFailure(toPlain.code, toPlain.details, true, plain.address)).to.match(/does not speak TLS/);
      const wrongCa = await call(tls.address, new ChannelSecurity(clientTls(other, other), undefined));
      expect(wrongCa.ok).to.equal(false);
      if (!wrongCa.ok) expect(securityFailure(wrongCa.code, wrongCa.details, true, tls.address)).to.match(/not signed by the CA given/);
    });

    it('with tokens: admits a listed token, refuses a missing or wrong one, and picks up an edited file without a restart', async () => {
      const path = join(root, 'rotating-tokens');
      writeFileSync(path, 'first-token-0123456789\n');
      const log = recordingLog();
      const security = new ServerSecurity({ tokens: TokenFile.load(path), log });
      securities.push(security);
      const { server, address } = await serve(security);
      servers.push(server);
      const withToken = (token: string) => new ChannelSecurity(undefined, () => token);
      expect(await call(address, withToken('first-token-0123456789'))).to.deep.equal({ ok: true });
      expect(await call(address, ChannelSecurity.NONE)).to.deep.include({ ok: false, code: grpc.status.UNAUTHENTICATED });
      expect(await call(address, withToken('wrong-token-0123456789'))).to.deep.include({ ok: false, code: grpc.status.UNAUTHENTICATED, details: 'the token is not valid' });

      writeFileSync(path, 'second-token-0123456789\n');
      utimesSync(path, new Date(), new Date(Date.now() + 5000)); // a changed mtime even on coarse clocks
      await waitFor('the edited token file to take effect', async () => (await call(address, withToken('second-token-0123456789'))).ok, 10_000);
      expect(await call(address, withToken('first-token-0123456789'))).to.deep.include({ ok: false, code: grpc.status.UNAUTHENTICATED });
      expect(log.lines.some((line) => line.message.startsWith('auth tokens reloaded'))).to.equal(true);
    });

    it('cluster methods need a server certificate: a client certificate or a token admits clients, not peers', async () => {
      const path = join(root, 'peer-tokens');
      writeFileSync(path, 'peer-token-0123456789\n');
      const security = new ServerSecurity({ tls: material(cluster), tokens: TokenFile.load(path), log: recordingLog(), peerMethods: (method) => method === '/test.Echo/Echo' });
      securities.push(security);
      const { server, address } = await serve(security);
      servers.push(server);
      const asServer = { ca: readFileSync(join(cluster, 'ca.crt')), cert: readFileSync(join(cluster, 'server.crt')), key: readFileSync(join(cluster, 'server.key')) };
      expect(await call(address, new ChannelSecurity(asServer, undefined))).to.deep.equal({ ok: true });
      expect(await call(address, new ChannelSecurity(clientTls(cluster, cluster), undefined)))
        .to.deep.include({ ok: false, code: grpc.status.UNAUTHENTICATED, details: 'a cluster method: the certificate is not a server certificate (extended key usage lacks serverAuth)' });
      expect(await call(address, new ChannelSecurity(clientTls(cluster), () => 'peer-token-0123456789')))
        .to.deep.include({ ok: false, code: grpc.status.UNAUTHENTICATED, details: 'a cluster method: needs a server certificate signed by the cluster CA' });
    });

    it('with both: a trusted certificate or a valid token is enough', async () => {
      const path = join(root, 'both-tokens');
      writeFileSync(path, 'both-token-0123456789\n');
      const security = new ServerSecurity({ tls: material(cluster), tokens: TokenFile.load(path), log: recordingLog() });
      securities.push(security);
      const { server, address } = await serve(security);
      servers.push(server);
      expect(await call(address, new ChannelSecurity(clientTls(cluster, cluster), undefined))).to.deep.equal({ ok: true });
      expect(await call(address, new ChannelSecurity(clientTls(cluster), () => 'both-token-0123456789'))).to.deep.equal({ ok: true });
      expect(await call(address, new ChannelSecurity(clientTls(cluster), undefined)))
        .to.deep.include({ ok: false, details: 'no client certificate signed by the cluster CA, and no token' });
    });
  });

  describe('KVClient options', () => {
    it('rejects a bad token, a certificate without its key, and a CA that is not PEM, before connecting', () => {
      const bad = (options: ConstructorParameters<typeof KVClient>[0]): KVError => {
        try {
          new KVClient(options);
        } catch (error) {
          return error as KVError;
        }
        throw new Error('accepted');
      };
      expect(bad({ manager: '127.0.0.1:1', token: 'short' })).to.deep.include({ code: 'INVALID_ARGUMENT', message: 'token is 5 characters; at least 16 are needed' });
      expect(bad({ manager: '127.0.0.1:1', tls: { ca: readFileSync(join(cluster, 'ca.crt')), cert: readFileSync(join(cluster, 'client.crt')) } }).message)
        .to.match(/tls\.cert and tls\.key go together/);
      expect(bad({ manager: '127.0.0.1:1', tls: { ca: 'not a certificate' } }).code).to.equal('INVALID_ARGUMENT');
    });
  });

  it('peerHost strips the port and the scheme of a gRPC peer', () => {
    expect(peerHost('ipv4:10.0.0.1:4567')).to.equal('10.0.0.1');
    expect(peerHost('ipv6:[::1]:4567')).to.equal('::1');
    expect(peerHost('127.0.0.1:80')).to.equal('127.0.0.1');
  });
});
