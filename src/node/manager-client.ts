/**
 * The node's side of the manager protocol: Register (retried with backoff until the
 * manager answers), then Heartbeat every interval with the state of every replica,
 * handing the manager's answer (peer addresses, placement commands) to the node.
 * The manager is never on the data path: while it is unreachable the node keeps
 * serving its replicas, and this loop keeps retrying.
 *
 * {@link ManagerClient.nudge} sends the next heartbeat early (at most one per
 * {@link NUDGE_MIN_GAP_MS}), so news such as a new shard leader reaches the manager's
 * map in milliseconds rather than up to an interval later (as TiKV's region heartbeat does
 * on a leader change).
 * @internal
 */
import { type ClientUnaryCall, Metadata, type ServiceError } from '@grpc/grpc-js';
import { ChannelSecurity, securityFailure } from '../security/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/index.js';
import {
  type HeartbeatRequest,
  type HeartbeatResponse,
  ManagerServiceClient,
  type RegisterRequest,
  type RegisterResponse,
} from '../gen/kvstore/v1/manager.js';

/** What the manager client needs from the node. */
export interface ManagerClientOptions {
  managerAddress: string;
  /** What the node presents to the manager (its certificate, a token); plaintext by default. */
  security?: ChannelSecurity;
  registration: RegisterRequest;
  logger: Logger;
  /** Called after every successful Register. */
  onRegistered(response: RegisterResponse): void;
  /** The heartbeat to send now. */
  heartbeat(): HeartbeatRequest;
  /** Called with every heartbeat answer. */
  onHeartbeatResponse(response: HeartbeatResponse): void;
}

const RPC_TIMEOUT_MS = 2_000;
const INITIAL_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5_000;
const DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000;
/** Nudged heartbeats come no closer than this to the previous one: a failover's many leader changes share one. */
export const NUDGE_MIN_GAP_MS = 100;

/** Registers with the manager and heartbeats until closed. */
export class ManagerClient {
  private readonly client: ManagerServiceClient;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private heartbeatIntervalMs = DEFAULT_HEARTBEAT_INTERVAL_MS;
  /** The call in flight, cancelled by {@link close}. */
  private inFlight: ClientUnaryCall | undefined;
  /** When the last heartbeat was taken (monotonic ms). */
  private lastHeartbeatMs = 0;
  /** Something changed since the last heartbeat was taken: send the next one early. */
  private nudged = false;
  /** Ends the current wait between heartbeats early, so it re-reads when the next one is due. */
  private wake: (() => void) | undefined;
  /** True between a successful Register and a `reregister` answer. */
  registered = false;

  constructor(private readonly options: ManagerClientOptions) {
    const security = options.security ?? ChannelSecurity.NONE;
    const target = security.forTarget(options.managerAddress);
    this.client = new ManagerServiceClient(options.managerAddress, target.credentials, { ...target.options, interceptors: security.interceptors });
  }

  /** Starts the register/heartbeat loop in the background. */
  start(): void {
    this.loop ??= this.run().catch((error: unknown) => {
      if (!this.abort.signal.aborted) this.options.logger.error('manager loop failed', { error: String(error) });
    });
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let backoffMs = INITIAL_BACKOFF_MS;
    let reportedUnreachable = false;
    let lastSecurityFailure: string | undefined;
    while (!signal.aborted) {
      try {
        if (!this.registered) {
          const response = await this.register();
          this.registered = true;
          reportedUnreachable = false;
          lastSecurityFailure = undefined;
          backoffMs = INITIAL_BACKOFF_MS;
          if (response.heartbeatIntervalMs > 0) this.heartbeatIntervalMs = response.heartbeatIntervalMs;
          this.options.logger.info('registered with manager', {
            manager: this.options.managerAddress, shardCount: response.shardCount, heartbeatIntervalMs: this.heartbeatIntervalMs,
          });
          this.options.onRegistered(response);
          continue;
        }
        this.nudged = false;
        this.lastHeartbeatMs = performance.now();
        const response = await this.sendHeartbeat(this.options.heartbeat());
        reportedUnreachable = false;
        lastSecurityFailure = undefined;
        if (response.reregister) {
          this.options.logger.info('manager asked to register again', { manager: this.options.managerAddress });
          this.registered = false;
        }
        this.options.onHeartbeatResponse(response);
        await this.waitForNextHeartbeat(signal);
      } catch (error) {
        if (signal.aborted) return;
        const message = (error as ServiceError).details ?? String(error);
        const security = securityFailure((error as ServiceError).code, message, (this.options.security ?? ChannelSecurity.NONE).secure, `manager ${this.options.managerAddress}`);
        if (security !== undefined && lastSecurityFailure !== security) {
          // Retried all the same (the manager's CA or token file may be fixed), but said as what it is.
          this.options.logger.error('cannot talk to the manager: TLS or credentials refused; retrying', { manager: this.options.managerAddress, error: security });
          lastSecurityFailure = security;
          reportedUnreachable = true;
        } else if (!reportedUnreachable) {
          this.options.logger.warn('manager unreachable; retrying', { manager: this.options.managerAddress, error: message });
          reportedUnreachable = true;
        }
        const delayMs = this.registered ? this.heartbeatIntervalMs : backoffMs;
        backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
        try {
          await sleep(delayMs, undefined, { signal });
        } catch {
          return;
        }
      }
    }
  }

  /**
   * Asks for the next heartbeat now rather than at the end of the interval (no sooner than
   * {@link NUDGE_MIN_GAP_MS} after the previous one). Nudges before registration, or while
   * the manager is unreachable, change nothing: the next heartbeat carries the news anyway.
   */
  nudge(): void {
    if (!this.registered) return;
    this.nudged = true;
    this.wake?.();
  }

  /** Waits until the interval since the last heartbeat has passed, or the gap after it once nudged. */
  private async waitForNextHeartbeat(signal: AbortSignal): Promise<void> {
    for (;;) {
      const gapMs = this.nudged ? Math.min(NUDGE_MIN_GAP_MS, this.heartbeatIntervalMs) : this.heartbeatIntervalMs;
      const delayMs = this.lastHeartbeatMs + gapMs - performance.now();
      if (delayMs <= 0 || signal.aborted) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          this.wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, delayMs);
        signal.addEventListener('abort', done, { once: true });
        this.wake = done;
      });
    }
  }

  private register(): Promise<RegisterResponse> {
    return new Promise((resolve, reject) => {
      this.inFlight = this.client.register(this.options.registration, new Metadata(), { deadline: rpcDeadline() }, (error, response) => {
        if (error !== null) reject(error);
        else resolve(response);
      });
    });
  }

  private sendHeartbeat(request: HeartbeatRequest): Promise<HeartbeatResponse> {
    return new Promise((resolve, reject) => {
      this.inFlight = this.client.heartbeat(request, new Metadata(), { deadline: rpcDeadline() }, (error, response) => {
        if (error !== null) reject(error);
        else resolve(response);
      });
    });
  }

  /** Stops the loop and closes the channel. */
  async close(): Promise<void> {
    this.abort.abort();
    this.inFlight?.cancel();
    await this.loop;
    this.client.close();
  }
}

function rpcDeadline(): Date {
  return new Date(Date.now() + RPC_TIMEOUT_MS);
}
