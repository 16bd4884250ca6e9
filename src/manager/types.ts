/**
 * The manager's model of the cluster: node records, shard records and move tasks.
 * These are the shapes kept in memory and persisted in `state.json`.
 */
import type { ReplicaMember } from '../gen/kvstore/v1/manager.js';

/** A node's health as the manager sees it (DESIGN.md §5). */
export type Health = 'up' | 'suspect' | 'down';

/** What the manager remembers about a node across restarts. */
export interface NodeRecord {
  nodeId: string;
  /** host:port clients and peers use to reach the node. */
  address: string;
  /** Port of the node's HTTP metrics server, 0 when unknown. */
  metricsPort: number;
  /** True while the node is drained: it takes no new replica or leadership, and its replicas move off. */
  draining?: boolean;
}

/**
 * One shard in the map. `members`, `epoch` and the leader come from the shard
 * leader's heartbeat report, which is authoritative for membership.
 */
export interface ShardRecord {
  shardId: number;
  /** Conf version: 1 at bootstrap, +1 per applied conf change. */
  epoch: number;
  members: ReplicaMember[];
  /** Last known leader's node id; null until a leader reports. */
  leaderNodeId: string | null;
  /** Term of the last leader report; 0 while the shard has never had a leader. */
  term: number;
  commitIndex: number;
  /** The node told to campaign at bootstrap, so first leaders are balanced. */
  firstLeaderNodeId: string | null;
}

/** Why a move was started. */
export type MoveReason = 'replace-down' | 'add-missing' | 'rebalance' | 'drain';

/** The step a move is at; each step is one Raft conf change or node command. */
export type MovePhase = 'create' | 'add-learner' | 'catch-up' | 'promote' | 'transfer-leader' | 'remove';

/** A replica on a node. */
export interface ReplicaRef {
  replicaId: number;
  nodeId: string;
}

/**
 * A replica move for one shard: create `to`, add it as a learner, promote it once
 * caught up, then remove `from` (after moving leadership off it). At most one move
 * per shard runs at a time, because Raft allows one pending conf change (Raft thesis §4.1).
 */
export interface MoveTask {
  shardId: number;
  reason: MoveReason;
  /** The replica being replaced; null when a replica is only added. */
  from: ReplicaRef | null;
  to: ReplicaRef;
  phase: MovePhase;
  startedAtMs: number;
}
