/**
 * The client's cached shard map: for each shard its epoch, replicas and the leader's address. It is
 * refreshed from the manager only when routing goes wrong (WRONG_SHARD, dead node, no leader), so the
 * manager stays off the data path.
 */
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';
import type { ManagerConnection } from './manager-connection.js';

/** One replica the client may send to. */
export interface RouteReplica {
  nodeId: string;
  /** `host:port`; empty when the manager does not know the node's address. */
  address: string;
  learner: boolean;
}

/** What the client knows about one shard. */
export interface ShardRoute {
  shardId: number;
  epoch: number;
  /** The leader's address, when known. */
  leaderAddress: string | undefined;
  replicas: RouteReplica[];
}

/** What a node last said about a shard's leader: who leads, or who does not. */
interface LeaderNote {
  leader: string | undefined;
  notLeader: string | undefined;
  atMs: number;
}

/** Map refreshes closer together than this are skipped (unless forced), so failing requests cannot storm the manager. */
const MIN_REFRESH_INTERVAL_MS = 100;
/** A background refresh gives up after this long; the cached map stays in use. */
const REFRESH_TIMEOUT_MS = 2000;

/** The result of {@link ShardMapCache.refresh}: whether a fresh map was loaded, and why not. */
export type RefreshResult = { ok: true } | { ok: false; error: unknown };

/**
 * Cached shard routes, refreshed single-flight: concurrent callers share one GetClusterMap.
 */
export class ShardMapCache {
  private routes: ShardRoute[] = [];
  private count = 0;
  private loadedOnce = false;
  private inFlight: Promise<RefreshResult> | undefined;
  private lastRefreshAtMs = 0;
  /**
   * What nodes told this client about each shard's leader, and when (monotonic ms): a leader
   * named by a NOT_LEADER hint, or an address that failed or said it does not lead. A map
   * requested before that is older news — the manager hears of a new leader only from the
   * nodes' next heartbeat — so installing it keeps these (see {@link install}).
   */
  private readonly notes: (LeaderNote | undefined)[] = [];

  constructor(private readonly manager: ManagerConnection) {}

  /** The cluster's shard count; 0 until the first map is loaded. */
  get shardCount(): number {
    return this.count;
  }

  /** True once a map has been loaded. */
  get loaded(): boolean {
    return this.loadedOnce;
  }

  /** The route of one shard, or undefined when the map does not have it (yet). */
  route(shardId: number): ShardRoute | undefined {
    return this.routes[shardId];
  }

  /**
   * Loads the map from the manager. Concurrent calls share one request; unless `force`, a call within
   * 100 ms of the previous refresh returns at once. Never rejects: failure is a value, the old map stays.
   */
  refresh(options: { force?: boolean; timeoutMs?: number } = {}): Promise<RefreshResult> {
    if (this.inFlight !== undefined) return this.inFlight;
    if (options.force !== true && this.loadedOnce && Date.now() - this.lastRefreshAtMs < MIN_REFRESH_INTERVAL_MS) {
      return Promise.resolve({ ok: true });
    }
    const requestedAtMs = performance.now();
    const task = this.manager.getClusterMap(options.timeoutMs ?? REFRESH_TIMEOUT_MS).then(
      (response): RefreshResult => {
        this.install(response, requestedAtMs);
        return { ok: true };
      },
      (error: unknown): RefreshResult => ({ ok: false, error }),
    );
    this.inFlight = task.finally(() => {
      this.inFlight = undefined;
      this.lastRefreshAtMs = Date.now();
    });
    return this.inFlight;
  }

  /** Waits for a refresh in flight, if any (used by close so no call outlives the client). */
  async settle(): Promise<void> {
    await this.inFlight;
  }

  /** Records a NOT_LEADER hint: the shard's leader is at `address`. */
  noteLeader(shardId: number, address: string): void {
    const route = this.routes[shardId];
    if (route !== undefined) route.leaderAddress = address;
    this.notes[shardId] = { leader: address, notLeader: undefined, atMs: performance.now() };
  }

  /** Forgets the shard's leader if it is `address` (that node failed or said it is not the leader). */
  forgetLeader(shardId: number, address: string): void {
    const route = this.routes[shardId];
    if (route !== undefined && route.leaderAddress === address) route.leaderAddress = undefined;
    this.notes[shardId] = { leader: undefined, notLeader: address, atMs: performance.now() };
  }

  /** Adopts a newer epoch a node reported, so the next request does not carry a stale one. */
  noteEpoch(shardId: number, epoch: number): void {
    const route = this.routes[shardId];
    if (route !== undefined && epoch > route.epoch) route.epoch = epoch;
  }

  /**
   * Replaces the cached routes with the manager's map, requested at `requestedAtMs` (monotonic;
   * default: now). What a node said about a shard's leader after that request stays: a hinted
   * leader that is still a replica in the new map, and no leader at an address that failed.
   */
  install(response: GetClusterMapResponse, requestedAtMs = performance.now()): void {
    const addressOf = new Map(response.nodes.map((node) => [node.nodeId, node.address]));
    const routes: ShardRoute[] = [];
    for (const shard of response.shards) {
      let leaderAddress = shard.leaderNodeId === '' ? undefined : addressOf.get(shard.leaderNodeId) || undefined;
      const replicas = shard.replicas.map((member) => ({
        nodeId: member.nodeId,
        address: addressOf.get(member.nodeId) ?? '',
        learner: member.learner,
      }));
      const note = this.notes[shard.shardId];
      if (note !== undefined && note.atMs >= requestedAtMs) {
        if (note.leader !== undefined && replicas.some((replica) => replica.address === note.leader)) leaderAddress = note.leader;
        else if (note.notLeader !== undefined && note.notLeader === leaderAddress) leaderAddress = undefined;
      }
      routes[shard.shardId] = { shardId: shard.shardId, epoch: shard.epoch, leaderAddress, replicas };
    }
    this.routes = routes;
    this.count = response.shardCount;
    this.loadedOnce = true;
  }
}
