/**
 * A storage node: one gRPC server (KvService + RaftService), the multi-Raft host
 * with its WAL and transport, the manager client and the metrics endpoint, wired
 * together and closed in order.
 */
import { Server } from '@grpc/grpc-js';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostPort, loadHasher, type Logger, type MetricsServer, startMetricsServer } from '../common/index.js';
import { ChannelSecurity, ServerSecurity, type TlsMaterial, type TokenFile } from '../security/index.js';
import type { HeartbeatRequest, HeartbeatResponse, PlacementCommand } from '../gen/kvstore/v1/manager.js';
import { AdmissionControl, DEFAULT_ADMISSION_LIMITS, type RefusalReason } from './admission.js';
import { clientCallInterceptor, KV_SERVICE } from './client-limits.js';
import { HeartbeatReporter } from './heartbeat-report.js';
import { kvGrpcService } from './kv-grpc-service.js';
import { KvRequestExecutor } from './kv-service.js';
import { ManagerClient } from './manager-client.js';
import { NodeMetrics, nodeReadiness, type RaftHostEvents } from './node-metrics.js';
import { NodeStateFile } from './node-state.js';
import { PeerDirectory } from './peer-directory.js';
import { PeerReachability } from './peer-reachability.js';
import { type CreateReplicaSpec, RaftHost } from './raft-host.js';
import { PeerListener } from './peer-listener.js';
import { TcpPeerLinks } from './tcp-peer-links.js';
import { GrpcPeerLinks, RAFT_CHANNEL_OPTIONS, RAFT_SERVICE, raftService } from './grpc-peer-links.js';
import { RefusalLog } from './refusal-log.js';
import { MemoryStorageProvider, type ReplicaStorageProvider, WalStorageProvider } from './replica-storage.js';
import { SERVER_MAX_RECEIVE_MESSAGE_BYTES } from './server-limits.js';
import { SnapshotSpool } from './snapshot-spool.js';

/** How to run a storage node. */
export interface StorageNodeOptions {
  /** This node's id (`--id`). */
  nodeId: string;
  /** Interface the gRPC server listens on. Default 127.0.0.1. */
  host?: string;
  /** gRPC port; 0 picks a free one (see {@link StorageNode.port}). */
  port: number;
  /** `host:port` peers and clients use; default `host:port` as bound. */
  advertise?: string;
  /** The manager's `host:port`; omitted, the node runs without one (tests bootstrap replicas directly). */
  managerAddress?: string;
  /** Data directory (`wal/`, `snap/`, `peers.json`, `node.json`); omitted, state is kept in memory (tests). */
  dataDir?: string;
  /** HTTP metrics port; undefined disables the endpoint. */
  metricsPort?: number;
  /** The shard count when there is no manager to tell it (tests). */
  shardCount?: number;
  /** Raft timing; defaults: tick 50 ms, election 10 ticks, heartbeat 2 ticks. */
  tickIntervalMs?: number;
  electionTick?: number;
  heartbeatTick?: number;
  /** Snapshot every this many applied entries. Default 10,000. */
  snapshotIntervalEntries?: number;
  logger: Logger;
  /** Called when the node cannot go on (WAL failure); the CLI logs and exits non-zero. */
  onFatal?: (error: unknown) => void;
  /** TEST ONLY (`--unsafe-stale-reads`): leaders read without ReadIndex, so stale reads are possible. */
  unsafeStaleReads?: boolean;
  /** Leaders answer reads under a lease (default true); false: a ReadIndex round for every read batch. */
  leaseReads?: boolean;
  /** Export per-shard series on /metrics (`--metrics-per-shard`); default: node totals only. */
  metricsPerShard?: boolean;
  /** The node's certificate and the cluster CA (`--tls-*`): mutual TLS for every call in and out. */
  tls?: TlsMaterial | undefined;
  /** Bearer tokens (`--auth-token-file`): calls in must carry one (or a trusted certificate); calls out carry the first. */
  tokens?: TokenFile | undefined;
  /** Serve the metrics endpoint over HTTPS with the node's certificate (`--metrics-tls`); needs `tls`. */
  metricsTls?: boolean;
}

/** A running storage node. */
export class StorageNode {
  /** The multi-Raft host (exposed for tests and the metrics endpoint). */
  readonly host: RaftHost;
  /** Prometheus registry, request metrics and event counters (exposed for tests). */
  readonly metrics: NodeMetrics;
  /** Client requests and calls in flight against their bounds (`admission.ts`; exposed for tests). */
  readonly admission: AdmissionControl;
  private manager: ManagerClient | undefined;
  /** The replica part of heartbeats: only what changed since the manager's last answer (`heartbeat-report.ts`). */
  private readonly reports = new HeartbeatReporter();
  private metricsServer: MetricsServer | undefined;
  /** What this node presents when it calls the manager and its peers. */
  private readonly channelSecurity: ChannelSecurity;
  /** Which peers this node cannot connect to (logged, counted, reported to the manager). */
  readonly reachability: PeerReachability;
  /** The Raft message streams to peers (counted in the metrics). */
  private readonly links: TcpPeerLinks;
  private closing = false;
  private closed: Promise<void> | undefined;

  /** The snapshot spool of a node without a data dir: removed on close. */
  private scratchDir: string | undefined;

  private constructor(
    private readonly options: StorageNodeOptions,
    private readonly server: Server,
    /** The node's listening socket, shared by gRPC and the Raft message streams (exposed for tests). */
    readonly listener: PeerListener,
    private readonly state: NodeStateFile,
    private readonly peers: PeerDirectory,
    storage: ReplicaStorageProvider,
    admission: AdmissionControl,
    /** The bound gRPC port. */
    readonly port: number,
    /** The address peers and clients use. */
    readonly address: string,
    /** What calls in must present; `reloadTokens` re-reads its token file. */
    readonly security: ServerSecurity,
  ) {
    this.channelSecurity = outgoingSecurity(options);
    this.reachability = new PeerReachability(options.logger.child({ component: 'transport', node: options.nodeId }));
    const logger = options.logger.child({ component: 'node', node: options.nodeId });
    this.metrics = new NodeMetrics({ perShard: options.metricsPerShard === true });
    this.admission = admission;
    this.links = new TcpPeerLinks({
      localNodeId: options.nodeId,
      security: this.channelSecurity,
      grpc: new GrpcPeerLinks(options.nodeId, this.channelSecurity, undefined, undefined, this.reachability),
      logger: options.logger.child({ component: 'transport', node: options.nodeId }),
      reachability: this.reachability,
    });
    this.host = new RaftHost({
      nodeId: options.nodeId,
      logger,
      storage,
      peers,
      state,
      ...(options.tickIntervalMs === undefined ? {} : { tickIntervalMs: options.tickIntervalMs }),
      ...(options.electionTick === undefined ? {} : { electionTick: options.electionTick }),
      ...(options.heartbeatTick === undefined ? {} : { heartbeatTick: options.heartbeatTick }),
      ...(options.snapshotIntervalEntries === undefined ? {} : { snapshotIntervalEntries: options.snapshotIntervalEntries }),
      ...(options.unsafeStaleReads === true ? { unsafeStaleReads: true } : {}),
      ...(options.leaseReads === false ? { leaseReads: false } : {}),
      links: this.links,
      events: this.hostEvents(),
      onFatal: (error) => {
        logger.error('node stopped: fatal error', { error: error instanceof Error ? error.message : String(error) });
        (options.onFatal ?? ((e: unknown) => { throw e; }))(error);
      },
    });
  }

  /** The host's events: counted in the metrics; a new leader also sends the manager a heartbeat early. */
  private hostEvents(): RaftHostEvents {
    const metrics = this.metrics;
    return {
      leaderChanged: (shardId) => {
        metrics.leaderChanged(shardId);
        this.manager?.nudge();
      },
      proposalDropped: (shardId, reason) => { metrics.proposalDropped(shardId, reason); },
      snapshotCreated: () => { metrics.snapshotCreated(); },
      snapshotInstalled: () => { metrics.snapshotInstalled(); },
      readsServed: (shardId, path, count) => { metrics.readsServed(shardId, path, count); },
      keysExpired: (shardId, count) => { metrics.keysExpired(shardId, count); },
      walSynced: (seconds) => { metrics.walSynced(seconds); },
      messageRejected: (reason) => { metrics.messageRejected(reason); },
    };
  }

  /** Opens the data dir, recovers every replica, binds the server and starts the loops. */
  static async start(options: StorageNodeOptions): Promise<StorageNode> {
    await loadHasher();
    const logger = options.logger.child({ component: 'node', node: options.nodeId });
    if (options.dataDir !== undefined) mkdirSync(options.dataDir, { recursive: true });
    const state = new NodeStateFile(options.dataDir);
    if (options.shardCount !== undefined) state.shardCount = options.shardCount;
    const peers = new PeerDirectory(options.dataDir);
    const storage: ReplicaStorageProvider =
      options.dataDir === undefined ? new MemoryStorageProvider()
      : await WalStorageProvider.open(options.dataDir, {
        debug: (event, fields) => logger.debug(event, fields),
        info: (event, fields) => logger.info(event, fields),
        warn: (event, fields) => logger.warn(event, fields),
        error: (event, fields) => logger.error(event, fields),
      });
    // Snapshots being received are spooled to disk: under the data dir, or a scratch dir a node
    // without one removes on close. Ready before the server binds, so no peer finds it half made.
    const scratchDir = options.dataDir === undefined ? await mkdtemp(join(tmpdir(), 'kvstore-snap-recv-')) : undefined;
    const spool = await SnapshotSpool.open({ dir: scratchDir ?? join(options.dataDir ?? '', 'snap-recv') });
    const listenHost = options.host ?? '127.0.0.1';
    const security = new ServerSecurity({
      tls: options.tls,
      tokens: options.tokens,
      log: options.logger.child({ component: 'auth', node: options.nodeId }),
      peerMethods: (path) => path.startsWith('/kvstore.v1.RaftService/'),
    });
    // Refusals are counted and logged once the node's metrics exist; none can come before it serves.
    let refused = (_reason: RefusalReason, _count?: number): void => undefined;
    const admission = new AdmissionControl(DEFAULT_ADMISSION_LIMITS, (reason) => refused(reason));
    const server = new Server({
      ...RAFT_CHANNEL_OPTIONS,
      // One receive limit for both services: what Raft needs; the client service's own are checked before decoding.
      'grpc.max_receive_message_length': SERVER_MAX_RECEIVE_MESSAGE_BYTES,
      // grpc-js runs the last interceptor outermost: authentication first, so an unauthenticated
      // call takes no admission slot and is told UNAUTHENTICATED even when the node is saturated.
      interceptors: [clientCallInterceptor(admission, (reason) => refused(reason)), ...security.interceptors()],
    });
    // Raft message streams arrive on the same port as gRPC (`peer-listener.ts`); those of the moments
    // before the host exists are dropped, as gRPC drops calls before its services are added.
    const late: { host?: RaftHost } = {};
    const listener = await PeerListener.listen({
      host: listenHost,
      port: options.port,
      grpc: server,
      security,
      receiver: {
        heardFrom: (nodeId) => late.host?.heardFrom(nodeId),
        deliver: (nodeId, message) => late.host?.deliver(nodeId, message),
      },
      logger: options.logger.child({ component: 'transport', node: options.nodeId }),
      maxFrameBytes: SERVER_MAX_RECEIVE_MESSAGE_BYTES,
    }).catch((error: unknown) => {
      security.close(); // stop watching the token file of a node that never started
      throw error;
    });
    const port = listener.port;
    const address = options.advertise ?? hostPort(listenHost, port);
    const node = new StorageNode(options, server, listener, state, peers, storage, admission, port, address, security);
    late.host = node.host;
    node.scratchDir = scratchDir;
    const refusalLog = new RefusalLog((reason, count) => node.metrics.requests.refused(reason, count), logger);
    refused = (reason, count) => refusalLog.refused(reason, count);
    node.metrics.requests.observeAdmission(() => admission.usage);
    node.metrics.observeReachability(() => node.reachability.peers().length);
    node.metrics.observePeerStreams(() => ({ tcp: node.links.stats.tcpStreams, grpc: node.links.stats.grpcStreams }), () => listener.stats.refused);
    const executor = new KvRequestExecutor({
      host: node.host,
      peers,
      metrics: node.metrics.requests,
      address,
      shardCount: () => state.shardCount,
      closing: () => node.closing,
      refused,
    });
    server.addService(KV_SERVICE, kvGrpcService(executor, { admission, refused }));
    server.addService(RAFT_SERVICE, raftService(node.host, spool, logger));
    node.host.start();
    if (options.metricsPort !== undefined) {
      node.metrics.observe(node.host);
      node.metricsServer = await startMetricsServer({
        host: listenHost,
        port: options.metricsPort,
        registry: node.metrics.registry,
        ...(options.metricsTls === true && options.tls !== undefined ? { tls: options.tls } : {}),
        readiness: () => nodeReadiness(node.host, {
          registered: () => (options.managerAddress === undefined ? state.shardCount > 0 : node.manager?.registered === true),
        }),
      });
    }
    if (options.managerAddress !== undefined) node.startManagerClient(options.managerAddress, logger);
    logger.info('node started', { address, port, manager: options.managerAddress, dataDir: options.dataDir });
    return node;
  }

  /** The bound metrics port (the requested one, or the free one picked for 0); 0 when disabled. */
  get metricsPort(): number {
    return this.metricsServer?.port ?? 0;
  }

  private startManagerClient(managerAddress: string, logger: Logger): void {
    this.manager = new ManagerClient({
      managerAddress,
      logger,
      security: this.channelSecurity,
      registration: { nodeId: this.options.nodeId, address: this.address, metricsPort: this.metricsPort },
      onRegistered: (response) => {
        if (response.shardCount > 0) this.state.shardCount = response.shardCount;
      },
      heartbeat: () => this.heartbeat(),
      onHeartbeatResponse: (response) => this.onHeartbeatResponse(response),
    });
    this.manager.start();
  }

  /** Creates a replica directly (what the manager's CreateReplica does); for tests and tools. */
  createReplica(spec: CreateReplicaSpec): void {
    this.host.createReplica(spec);
  }

  /** Records peer addresses (what heartbeat answers do); for tests and tools. */
  setPeers(nodes: { nodeId: string; address: string }[]): void {
    for (const nodeId of this.peers.update(nodes)) this.host.transport.resetPeer(nodeId);
  }

  /** The heartbeat for the manager: the replicas whose state changed (or all of them), plus request rate and p99. */
  heartbeat(): HeartbeatRequest {
    const { opsPerSecond, p99LatencyMs } = this.metrics.requests.takeInterval();
    return {
      nodeId: this.options.nodeId,
      address: this.address,
      ...this.reports.take(this.host.replicas()),
      opsPerSecond,
      p99LatencyMs,
      metricsPort: this.metricsPort,
      unreachablePeers: this.reachability.peers(),
    };
  }

  private onHeartbeatResponse(response: HeartbeatResponse): void {
    this.reports.answered(response.fullReport || response.reregister);
    // The manager took nothing of a partial report it holds no full one for (it restarted): send
    // the full one now, not a heartbeat interval later, so its map shows our leaders at once.
    if (response.fullReport) this.manager?.nudge();
    this.setPeers(response.nodes.filter((node) => node.nodeId !== this.options.nodeId));
    // One node-state save for the whole answer (thousands of creates at a cluster's start).
    this.state.batch(() => {
      for (const command of response.commands) this.execute(command);
    });
  }

  /** Executes one placement command; every command is idempotent, so the manager may repeat it. */
  execute(placement: PlacementCommand): void {
    const command = placement.command;
    if (command === undefined) return;
    const host = this.host;
    switch (command.$case) {
      case 'createReplica': {
        const { shardId, replicaId, initialMembers, campaign } = command.value;
        host.createReplica({
          shardId, replicaId, campaign, initialMembers: initialMembers.map((member) => ({ replicaId: member.replicaId, nodeId: member.nodeId })),
        });
        return;
      }
      case 'addReplica': {
        const member = command.value.member;
        if (member !== undefined) host.addLearner(command.value.shardId, member.replicaId, member.nodeId);
        return;
      }
      case 'promoteLearner':
        host.promoteLearner(command.value.shardId, command.value.replicaId);
        return;
      case 'removeReplica':
        host.removeMember(command.value.shardId, command.value.replicaId);
        return;
      case 'transferLeader':
        host.transferLeader(command.value.shardId, command.value.toReplicaId);
        return;
      case 'destroyReplica':
        host.destroyReplica(command.value.shardId, command.value.replicaId);
        return;
    }
  }

  /**
   * Stops cleanly: refuses new requests, stops the manager loop, finishes the Raft
   * turn in flight, closes peer streams, syncs and closes the WAL, stops the servers.
   */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    await this.manager?.close();
    await this.host.close();
    this.listener.stopAccepting();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 500);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    await this.listener.close();
    await this.metricsServer?.close();
    this.security.close();
    if (this.scratchDir !== undefined) await rm(this.scratchDir, { recursive: true, force: true });
    this.options.logger.child({ component: 'node', node: this.options.nodeId }).info('node stopped');
  }
}

/** A node calls its peers and the manager with its own certificate, and the token file's first token. */
function outgoingSecurity(options: StorageNodeOptions): ChannelSecurity {
  const { tls, tokens } = options;
  if (tls === undefined && tokens === undefined) return ChannelSecurity.NONE;
  return new ChannelSecurity(
    tls === undefined ? undefined : { ca: tls.ca, cert: tls.cert, key: tls.key },
    tokens === undefined ? undefined : () => tokens.ownToken,
  );
}
