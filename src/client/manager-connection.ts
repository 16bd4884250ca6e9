/**
 * The client side of the manager's service: only GetClusterMap. The manager is never on the data
 * path, so a client needs it at init and when its cached map goes stale.
 */
import { Metadata, status as GrpcStatus, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { ManagerServiceClient, type DrainNodeResponse, type GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';
import { ChannelSecurity, grpcLastError, plaintextToTls, securityFailure, speaksTls } from '../security/channel-security.js';
import { CHANNEL_OPTIONS } from './channel-options.js';

/**
 * A failed GetClusterMap: the manager was unreachable, too slow, or the call was aborted; or (with
 * `grpcCode` UNAUTHENTICATED) it refused this client's credentials, or TLS is on at one end only.
 */
export class ManagerUnreachableError extends Error {
  /** The gRPC status code, when the call reached the transport. */
  readonly grpcCode: number | undefined;
  constructor(message: string, grpcCode?: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ManagerUnreachableError';
    this.grpcCode = grpcCode;
  }
}

/**
 * One channel to the manager, reused for every map fetch. `close()` cancels calls still in flight,
 * so nothing keeps the process alive after it.
 */
/** The manager understood the request and refused it (NOT_FOUND, FAILED_PRECONDITION); `message` says why. */
export class ManagerRefusedError extends Error {
  constructor(message: string, readonly grpcCode: number) {
    super(message);
    this.name = 'ManagerRefusedError';
  }
}

export class ManagerConnection {
  /** The manager's `host:port`. */
  readonly address: string;
  private readonly client: ManagerServiceClient;
  private readonly inFlight = new Set<ClientUnaryCall>();
  private closed = false;
  /** A failed plaintext connection's check for a TLS server; kept once it found one. */
  private probed: Promise<boolean> | undefined;

  constructor(address: string, private readonly security: ChannelSecurity = ChannelSecurity.NONE) {
    this.address = address;
    const target = security.forTarget(address);
    this.client = new ManagerServiceClient(address, target.credentials, { ...CHANNEL_OPTIONS, ...target.options, interceptors: security.interceptors });
  }

  /**
   * Fetches the cluster map, failing after `timeoutMs` or when `signal` aborts. Fails fast (well before
   * the timeout) when nothing listens at the address.
   */
  getClusterMap(timeoutMs: number, signal?: AbortSignal): Promise<GetClusterMapResponse> {
    return this.unary((callback, options) => this.client.getClusterMap({}, new Metadata(), options, callback), timeoutMs, signal);
  }

  /**
   * Starts draining a node (`cancel`: stops): resolves with what it still holds, rejects with
   * {@link ManagerRefusedError} when the manager refuses (unknown node, too few nodes left).
   */
  drainNode(nodeId: string, cancel: boolean, timeoutMs: number): Promise<DrainNodeResponse> {
    return this.unary((callback, options) => this.client.drainNode({ nodeId, cancel }, new Metadata(), options, callback), timeoutMs);
  }

  private unary<T>(
    start: (callback: (error: ServiceError | null, response: T) => void, options: { deadline: Date }) => ClientUnaryCall,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new ManagerUnreachableError('manager connection is closed'));
    if (signal?.aborted === true) return Promise.reject(new ManagerUnreachableError('aborted'));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = start(
        (error: ServiceError | null, response: T) => {
          this.inFlight.delete(call);
          signal?.removeEventListener('abort', onAbort);
          if (error === null) {
            resolve(response);
            return;
          }
          if (error.code === GrpcStatus.NOT_FOUND || error.code === GrpcStatus.FAILED_PRECONDITION) {
            reject(new ManagerRefusedError(error.details, error.code));
            return;
          }
          void this.explain(error, timeoutMs).then(reject);
        },
        { deadline: new Date(Date.now() + timeoutMs) },
      );
      this.inFlight.add(call);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** The error a failed call rejects with; a security problem is said as one, with UNAUTHENTICATED. */
  private async explain(error: ServiceError, timeoutMs: number): Promise<ManagerUnreachableError> {
    const security = securityFailure(error.code, error.details || error.message, this.security.secure, `manager ${this.address}`);
    if (security !== undefined) return new ManagerUnreachableError(security, GrpcStatus.UNAUTHENTICATED, error);
    if (error.code === GrpcStatus.UNAVAILABLE && !this.security.secure && !this.closed) {
      this.probed ??= speaksTls(this.address);
      const tls = await this.probed;
      if (!tls) this.probed = undefined; // nothing listened, perhaps: ask again on the next failure
      if (tls) return new ManagerUnreachableError(`manager ${plaintextToTls(this.address)}`, GrpcStatus.UNAUTHENTICATED, error);
    }
    const why = error.code === GrpcStatus.DEADLINE_EXCEEDED ? `no answer within ${timeoutMs} ms` : conciseReason(error);
    return new ManagerUnreachableError(`manager ${this.address} unreachable: ${why}`, error.code, error);
  }

  /** Cancels calls in flight and closes the channel. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const call of this.inFlight) call.cancel();
    this.inFlight.clear();
    this.client.close();
  }
}

/** grpc-js details such as "No connection established. Last error: Error: connect ECONNREFUSED …. Resolution note:" cut to the cause. */
function conciseReason(error: ServiceError): string {
  return grpcLastError(error.details || error.message);
}
