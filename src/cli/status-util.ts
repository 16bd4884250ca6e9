/**
 * The cluster status as `kvstore status` prints it: the stable JSON of DESIGN.md §6 (fields may be
 * added, never renamed) and the readable table built from it.
 */
import { NodeHealth, type GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';

/** One node in `status --json`. */
export interface NodeStatusJson {
  id: string;
  address: string;
  /** `up`, `suspect` or `down` (`unknown` only if the manager sent no health). */
  health: string;
  replicas: number;
  leaders: number;
  keys: number;
  opsPerSecond: number;
  p99LatencyMs: number;
  /** Peers this node cannot connect to, as its last heartbeat said (added field; empty when none). */
  peersUnreachable: string[];
  /** True while `kvstore node drain` moves everything off it (added field). */
  draining: boolean;
}

/** One shard in `status --json`. */
export interface ShardStatusJson {
  shard: number;
  epoch: number;
  /** Node ids of the voting replicas. */
  replicas: string[];
  /** Node ids of learners still catching up (added field; empty when none). */
  learners: string[];
  /** The leader's node id, or null. */
  leader: string | null;
  term: number;
  commit: number;
}

/** The whole `status --json` object. */
export interface ClusterStatusJson {
  manager: string;
  shardCount: number;
  replicationFactor: number;
  nodes: NodeStatusJson[];
  shards: ShardStatusJson[];
}

export const HEALTH_NAMES = new Map<NodeHealth, string>([
  [NodeHealth.NODE_HEALTH_UP, 'up'],
  [NodeHealth.NODE_HEALTH_SUSPECT, 'suspect'],
  [NodeHealth.NODE_HEALTH_DOWN, 'down'],
]);

/** Converts the manager's map into the documented JSON shape. */
export function clusterStatusJson(manager: string, map: GetClusterMapResponse): ClusterStatusJson {
  return {
    manager,
    shardCount: map.shardCount,
    replicationFactor: map.replicationFactor,
    nodes: map.nodes.map((node) => ({
      id: node.nodeId,
      address: node.address,
      health: HEALTH_NAMES.get(node.health) ?? 'unknown',
      replicas: node.replicaCount,
      leaders: node.leaderCount,
      keys: node.keyCount,
      opsPerSecond: node.opsPerSecond,
      p99LatencyMs: node.p99LatencyMs,
      peersUnreachable: [...node.peersUnreachable],
      draining: node.draining,
    })),
    shards: [...map.shards]
      .sort((a, b) => a.shardId - b.shardId)
      .map((shard) => ({
        shard: shard.shardId,
        epoch: shard.epoch,
        replicas: shard.replicas.filter((member) => !member.learner).map((member) => member.nodeId),
        learners: shard.replicas.filter((member) => member.learner).map((member) => member.nodeId),
        leader: shard.leaderNodeId === '' ? null : shard.leaderNodeId,
        term: shard.term,
        commit: shard.commitIndex,
      })),
  };
}

/** Renders the status as aligned text tables: nodes, then one line per shard, then a summary. */
export function renderStatusTable(status: ClusterStatusJson): string {
  const lines: string[] = [];
  lines.push(`manager ${status.manager}  shards ${status.shardCount}  replication ${status.replicationFactor}`, '');
  lines.push(
    ...table(
      ['NODE', 'ADDRESS', 'HEALTH', 'REPLICAS', 'LEADERS', 'KEYS', 'OPS/S', 'P99 MS'],
      status.nodes.map((node) => [
        node.id, node.address, node.draining ? `${node.health} (draining)` : node.health, String(node.replicas), String(node.leaders), String(node.keys),
        // From the node's last heartbeat; a node that serves nothing (or is down) shows '-'.
        node.health === 'up' && node.opsPerSecond > 0 ? String(Math.round(node.opsPerSecond)) : '-',
        node.health === 'up' && node.p99LatencyMs > 0 ? node.p99LatencyMs.toFixed(1) : '-',
      ]),
    ),
    '',
  );
  lines.push(
    ...table(
      ['SHARD', 'EPOCH', 'LEADER', 'TERM', 'COMMIT', 'REPLICAS'],
      status.shards.map((shard) => [
        String(shard.shard),
        String(shard.epoch),
        shard.leader ?? '-',
        String(shard.term),
        String(shard.commit),
        [...shard.replicas, ...shard.learners.map((id) => `${id}(learner)`)].join(','),
      ]),
    ),
    '',
  );
  const led = status.shards.filter((shard) => shard.leader !== null).length;
  const under = status.shards.filter((shard) => shard.replicas.length < status.replicationFactor).length;
  const down = new Set(status.nodes.filter((node) => node.health !== 'up').map((node) => node.id));
  const onUnhealthy = status.shards.filter((shard) => shard.replicas.some((id) => down.has(id))).length;
  lines.push(
    `shards: ${led}/${status.shardCount} with a leader, ${under} under-replicated, ${onUnhealthy} with a replica on a node not up`,
  );
  for (const node of status.nodes) {
    if (node.peersUnreachable.length > 0) lines.push(`${node.id} cannot connect to ${node.peersUnreachable.join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const format = (row: string[]): string =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [format(header), ...rows.map(format)];
}
