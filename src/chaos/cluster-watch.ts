/**
 * Watches the cluster through the manager during a chaos run: polls the cluster map, records every
 * leader change in the timeline, serves the latest map to the nemesis (which shard leads where), and
 * decides when the cluster has settled after the faults: every shard has a leader and K voting
 * replicas, all on nodes the manager sees as up.
 */
import { type ManagerConnection, ManagerUnreachableError } from '../client/index.js';
import { connectManager, type ClientCredentials } from '../cluster/index.js';
import { NodeHealth, type GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';
import type { Timeline } from './timeline.js';

/** Poll period while watching. */
const WATCH_INTERVAL_MS = 500;
/** One map fetch's deadline. */
const FETCH_TIMEOUT_MS = 2000;

/**
 * What keeps `map` from being settled, one line per problem; empty when settled. `replicas` is K.
 */
export function settleProblems(map: GetClusterMapResponse, replicas: number): string[] {
  const problems: string[] = [];
  if (map.shardCount === 0 || map.shards.length !== map.shardCount) problems.push(`the map covers ${map.shards.length} of ${map.shardCount} shards`);
  const up = new Set(map.nodes.filter((node) => node.health === NodeHealth.NODE_HEALTH_UP).map((node) => node.nodeId));
  for (const shard of map.shards) {
    const voters = shard.replicas.filter((member) => !member.learner);
    const live = voters.filter((member) => up.has(member.nodeId));
    if (shard.leaderNodeId === '') problems.push(`shard ${shard.shardId} has no leader`);
    else if (!live.some((member) => member.nodeId === shard.leaderNodeId)) problems.push(`shard ${shard.shardId} is led by ${shard.leaderNodeId}, not a live voter`);
    if (live.length !== replicas || voters.length !== replicas) {
      problems.push(`shard ${shard.shardId} has ${live.length} live of ${voters.length} voters, wants ${replicas}`);
    }
  }
  return problems;
}

/** The leader node of a shard in `map`, if it has one. */
export function leaderOf(map: GetClusterMapResponse, shardId: number): string | undefined {
  const leader = map.shards.find((shard) => shard.shardId === shardId)?.leaderNodeId;
  return leader === undefined || leader === '' ? undefined : leader;
}

/** Polls the manager's map; see the file comment. */
export class ClusterWatch {
  private readonly connection: ManagerConnection;
  private latest: GetClusterMapResponse | undefined;
  private readonly leaders = new Map<number, string>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;

  constructor(
    managerAddress: string,
    private readonly timeline: Timeline,
    credentials?: ClientCredentials,
  ) {
    this.connection = connectManager({ address: managerAddress, credentials });
  }

  /** Starts polling in the background (until `close()`). */
  start(): void {
    const loop = (): void => {
      if (this.closed) return;
      this.polling = this.refresh().then(() => undefined);
      void this.polling.finally(() => {
        if (!this.closed) this.timer = setTimeout(loop, WATCH_INTERVAL_MS);
      });
    };
    loop();
  }

  /** The last map fetched, if any. */
  map(): GetClusterMapResponse | undefined {
    return this.latest;
  }

  /** Fetches the map now and records leader changes; undefined if the manager did not answer. */
  async refresh(): Promise<GetClusterMapResponse | undefined> {
    if (this.closed) return undefined;
    try {
      const map = await this.connection.getClusterMap(FETCH_TIMEOUT_MS);
      this.observe(map);
      return map;
    } catch (error) {
      if (error instanceof ManagerUnreachableError) return undefined;
      throw error;
    }
  }

  /**
   * Polls until the map has been settled for `stableMs` or `deadlineMs` (a `performance.now()`
   * instant) passes. Resolves to the problems still seen at the deadline (empty when settled). The
   * map is the manager's view, which lags a node's death by its suspect timeout, so a settled map
   * only counts once it stayed settled that long.
   */
  async waitSettled(replicas: number, deadlineMs: number, signal?: AbortSignal, stableMs = 0): Promise<string[]> {
    let problems = ['the manager did not answer'];
    let settledSinceMs: number | undefined;
    while (signal?.aborted !== true) {
      const map = await this.refresh();
      if (map !== undefined) {
        problems = settleProblems(map, replicas);
        if (problems.length > 0) settledSinceMs = undefined;
        else if (settledSinceMs === undefined) settledSinceMs = performance.now();
        if (settledSinceMs !== undefined && performance.now() - settledSinceMs >= stableMs) return problems;
      } else {
        settledSinceMs = undefined;
      }
      if (performance.now() >= deadlineMs) return problems;
      await delay(WATCH_INTERVAL_MS);
    }
    return problems;
  }

  /** Stops polling and closes the manager connection. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.connection.close();
    await this.polling?.catch(() => undefined);
  }

  private observe(map: GetClusterMapResponse): void {
    this.latest = map;
    for (const shard of map.shards) {
      const previous = this.leaders.get(shard.shardId);
      const current = shard.leaderNodeId;
      if (previous === current) continue;
      this.leaders.set(shard.shardId, current);
      if (previous === undefined) continue; // the first sighting is not a change
      this.timeline.add('leader', `shard ${shard.shardId}: ${previous === undefined || previous === '' ? 'none' : previous} → ${current === '' ? 'none' : current} (term ${shard.term})`);
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
