/**
 * The manager process's I/O shell: the gRPC ManagerService, the health timer, the
 * metrics endpoint and state persistence around the pure model and scheduler.
 * Control path only: nothing on the data path ever waits on it.
 */
import * as grpc from '@grpc/grpc-js';
import { createSilentLogger, hostPort, type Logger, type MetricsServer, startMetricsServer } from '../common/index.js';
import {
  ManagerServiceService,
  type DrainNodeRequest, type DrainNodeResponse, type GetClusterMapResponse, type HeartbeatRequest, type HeartbeatResponse, type ManagerServiceServer,
  type RegisterRequest, type RegisterResponse,
} from '../gen/kvstore/v1/manager.js';
import { ServerSecurity, type TlsMaterial, type TokenFile } from '../security/index.js';
import { ClusterState, type HealthTransition } from './cluster-state.js';
import { ManagerError } from './errors.js';
import { DEFAULT_DOWN_AFTER_MS, DEFAULT_SUSPECT_AFTER_MS } from './health.js';
import { ManagerMetrics } from './manager-metrics.js';
import { DEFAULT_SCHEDULER_CONFIG, type SchedulerConfig } from './scheduler-context.js';
import { StateStore } from './state-store.js';

/** How to run a manager. */
export interface ManagerOptions {
  /** Interface to listen on (CLI default 127.0.0.1). */
  host: string;
  /** gRPC port; 0 picks a free one (see {@link Manager.port}). */
  port: number;
  /** S: fixed when the cluster is created; must match a saved state. */
  shardCount: number;
  /** K: voters per shard; must match a saved state. */
  replicationFactor: number;
  /** Directory for `state.json`. */
  dataDir: string;
  /** Silence before a node is `down` and its replicas are rebuilt (default 10 s). */
  downAfterMs?: number;
  /** Silence before a node is `suspect` (default 3 s). */
  suspectAfterMs?: number;
  /** The initial placement waits until this many nodes have registered (default K). */
  bootstrapNodes?: number;
  /** Heartbeat interval the manager asks nodes to use (default 1000 ms). */
  heartbeatIntervalMs?: number;
  /** How often health is re-evaluated and the scheduler runs without a heartbeat (default 500 ms). */
  tickIntervalMs?: number;
  /** HTTP metrics port; default gRPC port + 1000, null to disable. A busy port only logs a warning. */
  metricsPort?: number | null;
  /** Root logger; the manager logs through a `component: 'manager'` child. */
  logger?: Logger;
  /** Scheduler knobs (see {@link SchedulerConfig}). */
  scheduler?: Partial<Omit<SchedulerConfig, 'replicationFactor'>>;
  /** Wall clock in ms, injectable for tests. */
  now?: () => number;
  /** The manager's certificate and the cluster CA (`--tls-*`): every caller must present a certificate the CA signed, or a token. */
  tls?: TlsMaterial | undefined;
  /** Bearer tokens (`--auth-token-file`): a call carrying one is admitted. */
  tokens?: TokenFile | undefined;
  /** Serve the metrics endpoint over HTTPS with the manager's certificate (`--metrics-tls`); needs `tls`. */
  metricsTls?: boolean;
}

/** A running manager. Create with {@link Manager.start}; stop with {@link Manager.close}. */
export class Manager {
  /** The bound gRPC port. */
  readonly port: number;
  /** `host:port` nodes and clients use. */
  readonly address: string;
  private readonly log: Logger;
  private readonly state: ClusterState;
  private readonly store: StateStore;
  private readonly server: grpc.Server;
  private readonly config: SchedulerConfig;
  private readonly options: ManagerOptions;
  private readonly now: () => number;
  private readonly metrics: ManagerMetrics;
  private metricsServer: MetricsServer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  /** The last reason the initial placement was refused, so it is logged once, not every step. */
  private refusal: string | null = null;

  private constructor(
    options: ManagerOptions, state: ClusterState, store: StateStore, server: grpc.Server, port: number, log: Logger,
    /** What callers must present; its token file is re-read on SIGHUP. */
    readonly security: ServerSecurity,
  ) {
    this.options = options;
    this.state = state;
    this.store = store;
    this.server = server;
    this.port = port;
    this.address = `${options.host}:${port}`;
    this.log = log;
    this.now = options.now ?? Date.now;
    this.config = { ...DEFAULT_SCHEDULER_CONFIG, ...options.scheduler, replicationFactor: options.replicationFactor };
    this.metrics = new ManagerMetrics(state);
  }

  /**
   * Loads (or creates) the state in `dataDir`, binds the gRPC server and starts the
   * health timer.
   * @throws ManagerError STATE_MISMATCH when the saved cluster has another S or K,
   *   STATE_CORRUPT for a bad state file, BIND_FAILED when the port cannot be bound.
   */
  static async start(options: ManagerOptions): Promise<Manager> {
    const log = (options.logger ?? createSilentLogger()).child({ component: 'manager' });
    const now = options.now ?? Date.now;
    const store = new StateStore(options.dataDir);
    const saved = store.load();
    if (saved !== null && (saved.shardCount !== options.shardCount || saved.replicationFactor !== options.replicationFactor)) {
      throw new ManagerError('STATE_MISMATCH', `${store.path} holds a cluster with ${saved.shardCount} shards and `
        + `${saved.replicationFactor} replicas, not ${options.shardCount} shards and ${options.replicationFactor} replicas`);
    }
    const state = saved === null
      ? ClusterState.create(options.shardCount, options.replicationFactor, now())
      : ClusterState.fromPersisted(saved, now());
    if (state.dirty) {
      store.save(state.toPersisted());
      state.dirty = false;
    }
    const security = new ServerSecurity({
      tls: options.tls,
      tokens: options.tokens,
      log: (options.logger ?? createSilentLogger()).child({ component: 'auth' }),
      // Registration and heartbeats come from nodes only: a client's certificate or token does not make a node.
      peerMethods: (path) => path !== '/kvstore.v1.ManagerService/GetClusterMap',
    });
    const server = new grpc.Server({ interceptors: security.interceptors() });
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(hostPort(options.host, options.port), security.credentials(), (error, bound) => {
        if (error === null) resolve(bound);
        else reject(new ManagerError('BIND_FAILED', `cannot listen on ${options.host}:${options.port}: ${bindFailure(error)}`, { cause: error }));
      });
    }).catch((error: unknown) => {
      security.close(); // stop watching the token file of a manager that never started
      throw error;
    });
    const manager = new Manager(options, state, store, server, port, log, security);
    server.addService(ManagerServiceService, manager.serviceImplementation());
    manager.timer = setInterval(() => { manager.guard(() => { manager.step(); }); }, options.tickIntervalMs ?? 500);
    manager.timer.unref();
    await manager.startMetrics();
    log.info('manager listening', {
      address: manager.address, shards: options.shardCount, replicas: options.replicationFactor,
      restored: saved !== null, bootstrapped: state.isBootstrapped,
    });
    return manager;
  }

  /** The bound metrics port (the requested one, or the free one picked for 0); 0 when disabled or not started. */
  get metricsPort(): number {
    return this.metricsServer?.port ?? 0;
  }

  /** The cluster map as GetClusterMap returns it. */
  clusterMap(): GetClusterMapResponse {
    return {
      shardCount: this.state.shardCount,
      replicationFactor: this.state.replicationFactor,
      nodes: this.state.nodeInfos(),
      shards: this.state.shardInfos(),
    };
  }

  /** Stops serving, stops the timer and saves the state. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => { this.server.forceShutdown(); resolve(); }, 2000);
      force.unref();
      this.server.tryShutdown(() => { clearTimeout(force); resolve(); });
    });
    await this.metricsServer?.close();
    this.security.close();
    this.store.save(this.state.toPersisted());
    this.state.dirty = false;
    this.log.info('manager stopped', { address: this.address });
  }

  private async startMetrics(): Promise<void> {
    const metricsPort = this.options.metricsPort === undefined ? this.port + 1000 : this.options.metricsPort;
    if (metricsPort === null) return;
    try {
      this.metricsServer = await startMetricsServer({
        host: this.options.host, port: metricsPort, registry: this.metrics.registry, readiness: () => this.metrics.readiness(),
        ...(this.options.metricsTls === true && this.options.tls !== undefined ? { tls: this.options.tls } : {}),
      });
    } catch (error) {
      this.log.warn('metrics server not started', { port: metricsPort, error: String(error) });
    }
  }

  /** Re-evaluates health, places shards once enough nodes are here, schedules, saves. */
  private step(): void {
    const nowMs = this.now();
    const transitions = this.state.updateHealth(
      nowMs, this.options.suspectAfterMs ?? DEFAULT_SUSPECT_AFTER_MS, this.options.downAfterMs ?? DEFAULT_DOWN_AFTER_MS,
    );
    for (const transition of transitions) this.logTransition(transition);
    const bootstrap = this.state.maybeBootstrap(this.options.bootstrapNodes ?? this.options.replicationFactor);
    if (bootstrap.placed) this.log.info('initial placement', { shards: this.state.shardCount, replicas: this.state.replicationFactor });
    if (bootstrap.refused !== undefined && bootstrap.refused !== this.refusal) {
      this.log.error('initial placement refused', { why: bootstrap.refused });
    }
    this.refusal = bootstrap.refused ?? null;
    for (const event of this.state.runScheduler(nowMs, this.config)) {
      this.log.log(event.level, event.message, { shard: event.shardId, ...event.fields });
    }
    this.metrics.observeMoves(this.state.moveTasks());
    if (this.state.dirty) {
      this.store.save(this.state.toPersisted());
      this.state.dirty = false;
    }
  }

  private logTransition(transition: HealthTransition): void {
    this.metrics.healthChanged(transition);
    this.log.info(`node ${transition.to}`, { node: transition.nodeId, was: transition.from });
  }

  /**
   * Runs a timer-driven step. A failure (e.g. the state file cannot be written) is
   * logged; the state stays dirty, so the next step tries to save it again.
   */
  private guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.log.error('manager step failed', { error: String(error) });
    }
  }

  private serviceImplementation(): ManagerServiceServer {
    return {
      register: (call: grpc.ServerUnaryCall<RegisterRequest, RegisterResponse>, callback: grpc.sendUnaryData<RegisterResponse>) => {
        const { nodeId, address, metricsPort } = call.request;
        if (nodeId === '' || address === '') {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: 'register needs node_id and address' });
          return;
        }
        this.respond(callback, () => {
          const known = this.state.knows(nodeId);
          const transition = this.state.register(nodeId, address, metricsPort, this.now());
          if (!known) this.log.info('node registered', { node: nodeId, address });
          if (transition !== null) this.logTransition(transition);
          this.step();
          return {
            shardCount: this.state.shardCount,
            replicationFactor: this.state.replicationFactor,
            heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 1000,
          };
        });
      },
      heartbeat: (call: grpc.ServerUnaryCall<HeartbeatRequest, HeartbeatResponse>, callback: grpc.sendUnaryData<HeartbeatResponse>) => {
        this.respond(callback, () => {
          const request = call.request;
          if (!this.state.knows(request.nodeId)) {
            this.log.debug('heartbeat from unknown node', { node: request.nodeId });
            return { commands: [], nodes: this.state.nodeInfos(), reregister: true, fullReport: true };
          }
          const transition = this.state.heartbeat(request, this.now());
          if (transition !== null) this.logTransition(transition);
          // A step at once when the heartbeat brought news, so its answer carries the commands
          // that follow from it; an idle node's heartbeat (nothing changed) waits for the timer's.
          if (transition !== null || !request.partial || request.replicas.length > 0 || request.removedShardIds.length > 0) this.step();
          const commands = this.state.takeCommands(request.nodeId);
          if (commands.length > 0) this.log.debug('commands sent', { node: request.nodeId, count: commands.length });
          return { commands, nodes: this.state.nodeInfos(), reregister: false, fullReport: !this.state.hasFullReport(request.nodeId) };
        });
      },
      getClusterMap: (_call: grpc.ServerUnaryCall<unknown, GetClusterMapResponse>, callback: grpc.sendUnaryData<GetClusterMapResponse>) => {
        this.respond(callback, () => this.clusterMap());
      },
      drainNode: (call: grpc.ServerUnaryCall<DrainNodeRequest, DrainNodeResponse>, callback: grpc.sendUnaryData<DrainNodeResponse>) => {
        const { nodeId, cancel } = call.request;
        const refusal = this.state.setDraining(nodeId, !cancel);
        if (refusal !== undefined) {
          this.log.warn('drain refused', { node: nodeId, reason: refusal.message });
          callback({ code: refusal.refused === 'unknown' ? grpc.status.NOT_FOUND : grpc.status.FAILED_PRECONDITION, details: refusal.message });
          return;
        }
        this.log.info(cancel ? 'drain cancelled' : 'drain started', { node: nodeId });
        this.respond(callback, () => {
          this.step();
          const info = this.state.nodeInfos().find((node) => node.nodeId === nodeId);
          return { replicaCount: info?.replicaCount ?? 0, leaderCount: info?.leaderCount ?? 0 };
        });
      },
    };
  }

  private respond<T>(callback: grpc.sendUnaryData<T>, work: () => T): void {
    let response: T;
    try {
      response = work();
    } catch (error) {
      this.log.error('request failed', { error: String(error) });
      callback({ code: grpc.status.INTERNAL, details: 'manager failed to handle the request' });
      return;
    }
    callback(null, response);
  }
}

/** The useful part of a grpc-js bind error: "address already in use" rather than its resolver summary. */
function bindFailure(error: Error): string {
  if (error.message.includes('EADDRINUSE')) return 'address already in use';
  if (error.message.includes('EACCES')) return 'permission denied';
  if (error.message.includes('EADDRNOTAVAIL')) return 'address not available on this host';
  return error.message;
}
