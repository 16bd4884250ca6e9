/**
 * What a server process (manager or node) checks of every call, in one place for all its services.
 *
 * - With TLS (`--tls-ca --tls-cert --tls-key`) the server presents its certificate and asks every
 *   peer for one. It does not end the handshake of a peer without a trusted certificate: the call
 *   is refused as UNAUTHENTICATED instead, so a client learns why (a token may still admit it) and
 *   the refusal is logged with the peer's address, which a failed handshake would hide.
 * - With tokens (`--auth-token-file`), a call carrying `authorization: Bearer TOKEN` with one of
 *   the file's tokens is admitted.
 * - With either, every call must pass one of them: a certificate the cluster CA signed (OpenSSL
 *   checks chain and validity against `--tls-ca` during the handshake) or a valid token. Nodes and
 *   the manager present their certificates (or the token file's first token) to each other, so
 *   Raft traffic, registration and snapshots are refused to anyone else alike.
 * - With neither, nothing is checked (loopback development; `--insecure` says it is meant).
 */
import {
  type Metadata,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
  ServerCredentials,
  ServerInterceptingCall,
  status as GrpcStatus,
} from '@grpc/grpc-js';
import { type Stats, unwatchFile, watchFile } from 'node:fs';
import type { SecureServerOptions } from 'node:http2';
import type { PeerCertificate, TLSSocket, TlsOptions } from 'node:tls';
import { AUTHORIZATION_HEADER } from './channel-security.js';
import type { TokenFile } from './token-file.js';
import type { TlsMaterial } from './tls-files.js';

const BEARER = 'Bearer ';

/**
 * TLS that asks the peer for a certificate but lets the handshake finish without a trusted one, so
 * the refusal happens per call with a reason ({@link ServerSecurity}); `socket.authorized` still
 * says whether OpenSSL verified the peer against the CA, and only then does gRPC hand the
 * certificate to the call.
 */
class RequestingServerCredentials extends ServerCredentials {
  constructor(material: TlsMaterial) {
    const options: SecureServerOptions = { requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' };
    super(options, { ca: material.ca, cert: [material.cert], key: [material.key] });
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

/** Where a server's refusals (a line per peer and reason, not per call) and token reloads are logged. */
export interface SecurityLog {
  info(message: string, fields: Record<string, unknown>): void;
  warn(message: string, fields: Record<string, unknown>): void;
  error(message: string, fields: Record<string, unknown>): void;
}

/** How often the token file's modification time is looked at. */
export const TOKEN_FILE_POLL_MS = 1000;

/** Distinct (peer host, reason) pairs remembered so each is logged once; bounded. */
const MAX_REMEMBERED_REFUSALS = 4096;

export interface ServerSecurityOptions {
  tls?: TlsMaterial | undefined;
  tokens?: TokenFile | undefined;
  /** The process's logger; refusals are logged once per peer address and reason. */
  log: SecurityLog;
  /** Re-read the token file when it changes (default true; SIGHUP re-reads it in any case). */
  watchTokenFile?: boolean;
  /**
   * The methods only cluster processes call (Raft traffic, node registration and heartbeats). With
   * TLS they need a certificate made for a server (extended key usage serverAuth, stated): a client
   * certificate or a token admits a client, not a peer.
   */
  peerMethods?: (path: string) => boolean;
}

/** The extended key usage OID of TLS server certificates. */
const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';

/** How a refused Raft message stream is named in the log, beside the gRPC methods. */
const PEER_STREAM_METHOD = 'raft message stream';

/** Why a cluster method refuses a peer with `certificate` (verified against the CA, or none). */
function certificateRefusal(certificate: PeerCertificate | undefined): string | undefined {
  if (certificate === undefined) return 'a cluster method: needs a server certificate signed by the cluster CA';
  const usages = (certificate as { ext_key_usage?: string[] }).ext_key_usage;
  if (usages?.includes(SERVER_AUTH_OID) !== true) {
    return 'a cluster method: the certificate is not a server certificate (extended key usage lacks serverAuth)';
  }
  return undefined;
}

/** A server process's credentials and its authentication check. */
export class ServerSecurity {
  readonly tls: TlsMaterial | undefined;
  readonly tokens: TokenFile | undefined;
  private readonly log: SecurityLog;
  private readonly peerMethods: (path: string) => boolean;
  private readonly logged = new Set<string>();
  private refusedCalls = 0;
  private watching: ((current: Stats, previous: Stats) => void) | undefined;

  constructor(options: ServerSecurityOptions) {
    this.tls = options.tls;
    this.tokens = options.tokens;
    this.log = options.log;
    this.peerMethods = options.peerMethods ?? (() => false);
    const tokens = this.tokens;
    if (tokens !== undefined && options.watchTokenFile !== false) {
      // Editing the file is a reload the user triggers without a signal: what a container with a
      // mounted secret, or `kvstore cluster` (whose SIGHUP means stop), can do.
      this.watching = (current, previous) => {
        // A file swapped in whole (`cp -p`, a Kubernetes secret's symlink flip) may keep mtime and size.
        if (current.mtimeMs === previous.mtimeMs && current.size === previous.size && current.ino === previous.ino && current.ctimeMs === previous.ctimeMs) return;
        try {
          this.log.info('auth tokens reloaded: the file changed', { file: tokens.path, tokens: this.reload() });
        } catch (error) {
          this.log.error('auth tokens not reloaded: the tokens in use stay', { file: tokens.path, error: (error as Error).message });
        }
      };
      watchFile(tokens.path, { interval: TOKEN_FILE_POLL_MS, persistent: false }, this.watching);
    }
  }

  /** Stops watching the token file. */
  close(): void {
    if (this.watching !== undefined && this.tokens !== undefined) unwatchFile(this.tokens.path, this.watching);
    this.watching = undefined;
  }

  /** Whether calls are checked at all. */
  get enabled(): boolean {
    return this.tls !== undefined || this.tokens !== undefined;
  }

  /** Calls refused since start (for tests and metrics). */
  get refused(): number {
    return this.refusedCalls;
  }

  /** What the gRPC server binds with. */
  credentials(): ServerCredentials {
    return this.tls === undefined ? ServerCredentials.createInsecure() : new RequestingServerCredentials(this.tls);
  }

  /** The interceptors that enforce it (none when nothing is checked, so an open server pays nothing). */
  interceptors(): ServerInterceptor[] {
    if (!this.enabled) return [];
    const interceptor = (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface): ServerInterceptingCall =>
      new ServerInterceptingCall(call, {
        start: (next) => {
          next({
            onReceiveMetadata: (metadata, pass) => {
              const refusal = this.refusal(method.path, call, metadata);
              if (refusal === undefined) {
                pass(metadata);
                return;
              }
              this.refuse(call.getPeer(), method.path, refusal);
              call.sendStatus({ code: GrpcStatus.UNAUTHENTICATED, details: refusal });
            },
          });
        },
      });
    return [interceptor as ServerInterceptor];
  }

  /**
   * TLS options for a connection this server secures itself (the Raft message stream,
   * `peer-listener.ts`): what the gRPC server binds with. Undefined without TLS.
   */
  tlsServerOptions(): TlsOptions | undefined {
    const tls = this.tls;
    if (tls === undefined) return undefined;
    return { ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' };
  }

  /**
   * Why a Raft message stream is refused, or undefined when it is admitted: the rule of the
   * cluster methods. With TLS, `socket` must have presented a server certificate the CA signed;
   * without TLS but with tokens, `token` must be valid.
   */
  peerStreamRefusal(socket: TLSSocket | undefined, token: string | undefined): string | undefined {
    if (this.tls !== undefined) {
      // As grpc-js reads it: a certificate only from a peer OpenSSL verified in this handshake.
      const certificate = socket?.authorized === true ? socket.getPeerCertificate() : undefined;
      return certificateRefusal(certificate?.raw === undefined ? undefined : certificate);
    }
    if (this.tokens === undefined) return undefined;
    if (token === undefined) return 'no token (this cluster requires one: --token or KVSTORE_TOKEN)';
    return this.tokens.accepts(token) ? undefined : 'the token is not valid';
  }

  /** Counts and logs (once per peer host and reason) a refused Raft message stream. */
  refusePeerStream(peer: string, reason: string): void {
    this.refuse(peer, PEER_STREAM_METHOD, reason);
  }

  /** Why the call is refused, or undefined when it is admitted. */
  private refusal(path: string, call: ServerInterceptingCallInterface, metadata: Metadata): string | undefined {
    if (this.tls !== undefined && this.peerMethods(path)) {
      // Only ever `sslPeerCertificate`: grpc-js sets it only for a peer OpenSSL verified against the
      // CA in this handshake. (`socket.authorized` alone can be true for a resumed TLS 1.3 session
      // that presented no certificate.)
      return certificateRefusal(call.getAuthContext().sslPeerCertificate);
    }
    let tokenProblem: string | undefined;
    if (this.tokens !== undefined) {
      const header = metadata.get(AUTHORIZATION_HEADER)[0];
      if (typeof header === 'string' && header.startsWith(BEARER)) {
        if (this.tokens.accepts(header.slice(BEARER.length))) return undefined;
        tokenProblem = 'the token is not valid';
      }
    }
    if (this.tls !== undefined && call.getAuthContext().sslPeerCertificate !== undefined) return undefined;
    if (tokenProblem !== undefined) return tokenProblem;
    if (this.tls !== undefined && this.tokens !== undefined) return 'no client certificate signed by the cluster CA, and no token';
    if (this.tls !== undefined) return 'no client certificate signed by the cluster CA';
    return 'no token (this cluster requires one: --token or KVSTORE_TOKEN)';
  }

  private refuse(peer: string, path: string, reason: string): void {
    this.refusedCalls++;
    const host = peerHost(peer);
    const key = `${host}\u0000${reason}`;
    if (this.logged.has(key)) return;
    if (this.logged.size >= MAX_REMEMBERED_REFUSALS) this.logged.clear();
    this.logged.add(key);
    this.log.warn('refused an unauthenticated call', { peer, method: path, reason });
  }

  /**
   * Re-reads the token file (SIGHUP). Refusals are logged anew afterwards, so a client still using
   * a removed token shows up once more.
   * @returns how many tokens are valid now, or undefined without a token file.
   * @throws the file's error; the tokens in use stay.
   */
  reload(): number | undefined {
    if (this.tokens === undefined) return undefined;
    const count = this.tokens.reload();
    this.logged.clear();
    return count;
  }
}

/** `ipv4:1.2.3.4:5678` / `ipv6:[::1]:5678` / `1.2.3.4:5678` → the host part. */
export function peerHost(peer: string): string {
  const address = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\]/.exec(address);
  if (bracket !== null) return bracket[1] as string;
  const colon = address.lastIndexOf(':');
  return colon > 0 && address.indexOf(':') === colon ? address.slice(0, colon) : address;
}
