/**
 * What a process presents when it calls a server: TLS (the cluster CA to trust, and optionally its
 * own certificate) and a bearer token. Used by the client library (`KVClient({ tls, token })`) and
 * by nodes calling the manager and each other. One object per process, shared by all its channels.
 */
import {
  type ChannelCredentials,
  type Interceptor,
  InterceptingCall,
  credentials as grpcCredentials,
  status as GrpcStatus,
} from '@grpc/grpc-js';
import { connect as tlsConnect, checkServerIdentity, createSecureContext, type ConnectionOptions, type PeerCertificate, type SecureContext } from 'node:tls';
import { isIP } from 'node:net';
import { splitHostPort } from '../common/ports.js';

/** The metadata key a token travels in (lower case, as HTTP/2 sends it). */
export const AUTHORIZATION_HEADER = 'authorization';

/** PEM text or bytes. */
export type Pem = string | Uint8Array;

/** TLS as a client sets it: the CA that signed the servers, and a certificate to authenticate with. */
export interface ClientTls {
  /** The cluster CA certificate (PEM). */
  ca: Pem;
  /** This client's certificate (PEM), signed by the cluster CA; with `key`. */
  cert?: Pem | undefined;
  /** Its private key (PEM). */
  key?: Pem | undefined;
}

function bytes(pem: Pem): Buffer {
  return typeof pem === 'string' ? Buffer.from(pem, 'utf8') : Buffer.from(pem);
}

/** Credentials and interceptors for a process's outgoing channels. */
export class ChannelSecurity {
  /** Plaintext, no token: what every channel used before TLS existed. */
  static readonly NONE = new ChannelSecurity(undefined, undefined);

  private readonly channelCredentials: ChannelCredentials;
  private readonly byIp = new Map<string, ChannelCredentials>();
  /** Interceptors to pass in the client's options; empty without a token. */
  readonly interceptors: Interceptor[];
  /** The bearer token to send, read at every call; undefined without one. */
  readonly token: (() => string | undefined) | undefined;
  private secureContext: SecureContext | undefined;

  /**
   * @param tls undefined for plaintext.
   * @param token the bearer token to send, read at every call (a node's may change on reload).
   * @throws Error when `cert` is given without `key` or the other way round.
   */
  constructor(readonly tls: ClientTls | undefined, token: (() => string | undefined) | undefined) {
    if (tls !== undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
      throw new Error(`tls.cert and tls.key go together: ${tls.cert === undefined ? 'cert' : 'key'} is missing`);
    }
    this.channelCredentials = tls === undefined
      ? grpcCredentials.createInsecure()
      : grpcCredentials.createSsl(bytes(tls.ca), tls.key === undefined ? null : bytes(tls.key), tls.cert === undefined ? null : bytes(tls.cert));
    this.interceptors = token === undefined ? [] : [tokenInterceptor(token)];
    this.token = token;
  }

  /** Whether channels use TLS. */
  get secure(): boolean {
    return this.tls !== undefined;
  }

  /**
   * Credentials and channel options for a client of `address`. A TLS client puts the host name in
   * SNI; an IP address may not go there (RFC 6066, and Node warns), so for an IP the SNI carries a
   * fixed name and the certificate is still checked against the IP.
   */
  forTarget(address: string): { credentials: ChannelCredentials; options: Record<string, string> } {
    if (this.tls === undefined) return { credentials: this.channelCredentials, options: {} };
    const { host } = splitHostPort(address);
    if (isIP(host) === 0) return { credentials: this.channelCredentials, options: {} };
    let credentials = this.byIp.get(host);
    if (credentials === undefined) {
      const tls = this.tls;
      credentials = grpcCredentials.createSsl(bytes(tls.ca), tls.key === undefined ? null : bytes(tls.key), tls.cert === undefined ? null : bytes(tls.cert), {
        checkServerIdentity: (_name: string, certificate: PeerCertificate) => checkServerIdentity(host, certificate),
      });
      this.byIp.set(host, credentials);
    }
    return { credentials, options: { 'grpc.ssl_target_name_override': SNI_FOR_IP } };
  }

  /**
   * Options for a TLS connection of its own to `address` (the Raft message stream,
   * `tcp-peer-links.ts`), checked as {@link forTarget}'s are; undefined without TLS.
   */
  tlsConnectOptions(address: string): ConnectionOptions | undefined {
    const tls = this.tls;
    if (tls === undefined) return undefined;
    // One context for every connection: the PEM files are parsed once.
    this.secureContext ??= createSecureContext({
      ca: bytes(tls.ca),
      ...(tls.cert === undefined ? {} : { cert: bytes(tls.cert) }),
      ...(tls.key === undefined ? {} : { key: bytes(tls.key) }),
      minVersion: 'TLSv1.2',
    });
    const { host } = splitHostPort(address);
    return {
      secureContext: this.secureContext,
      servername: isIP(host) === 0 ? host : SNI_FOR_IP,
      checkServerIdentity: (_name: string, certificate: PeerCertificate) => checkServerIdentity(host, certificate),
    };
  }
}

/** The SNI name sent when the target is an IP address (servers here ignore SNI). */
const SNI_FOR_IP = 'kvstore';

/** Adds `authorization: Bearer TOKEN` to every call's metadata. */
function tokenInterceptor(token: () => string | undefined): Interceptor {
  return (options, nextCall) => new InterceptingCall(nextCall(options), {
    start: (metadata, listener, next) => {
      const value = token();
      if (value !== undefined) metadata.set(AUTHORIZATION_HEADER, `Bearer ${value}`);
      next(metadata, listener);
    },
  });
}

/**
 * A failed call's gRPC status explained as a security problem, or undefined when it is not one.
 * UNAUTHENTICATED comes from the server (no or wrong credentials); TLS handshake failures reach the
 * client as UNAVAILABLE with OpenSSL's words, and retrying them only hangs until the deadline.
 */
export function securityFailure(code: number | undefined, details: string, secure: boolean, address: string): string | undefined {
  if (code === GrpcStatus.UNAUTHENTICATED) return `${address} refused the credentials: ${details}`;
  if (code !== GrpcStatus.UNAVAILABLE || !secure) return undefined;
  if (/wrong version number|packet length too long|unknown protocol|record layer failure/i.test(details)) {
    return `${address} does not speak TLS (it is a plaintext server): drop --tls-ca, or check the address`;
  }
  if (/self[- ]signed certificate|unable to (get local issuer|verify the first) certificate|certificate signature failure/i.test(details)) {
    return `${address} presented a certificate not signed by the CA given (--tls-ca): ${grpcLastError(details)}`;
  }
  if (/certificate has expired|certificate is not yet valid/i.test(details)) return `${address}: ${grpcLastError(details)}`;
  if (/does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/i.test(details)) {
    return `${address}: the server's certificate is not valid for this address (create it with --hosts naming it): ${grpcLastError(details)}`;
  }
  return undefined;
}

/** grpc-js "No connection established. Last error: Error: X. Resolution note: …" → X. */
export function grpcLastError(details: string): string {
  const last = /Last error: (?:Error: )?(.*?)(?:\.?\s*Resolution note:.*)?$/s.exec(details);
  return (last?.[1] ?? details).trim();
}

/**
 * Whether a TLS server answers at `address` (a TLS handshake completes, certificate unchecked). A
 * plaintext client that cannot connect asks this once, to say "the server speaks TLS" instead of
 * retrying until its deadline.
 */
export function speaksTls(address: string, timeoutMs = 1000): Promise<boolean> {
  const { host, port } = splitHostPort(address);
  if (!Number.isInteger(port)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'],
      ...(isIP(host) === 0 ? { servername: host } : {}),
    });
    const done = (answer: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** What a plaintext client says when {@link speaksTls} found TLS at `address`. */
export function plaintextToTls(address: string): string {
  return `${address} speaks TLS and this client does not: pass --tls-ca (and --cert/--key or --token), or { tls: { ca } } to KVClient`;
}
