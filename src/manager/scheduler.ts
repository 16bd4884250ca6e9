/**
 * One scheduling round: a pure function from the cluster as last reported to the
 * commands that move it toward K live replicas per shard, even replica counts and
 * even leader counts. The shell (manager.ts) runs it after every heartbeat and on a
 * timer, and delivers the commands in heartbeat responses.
 */
import { balanceLeaders, rebalanceReplicas } from './balance.js';
import { drainNodes } from './drain.js';
import { advanceMoves, createBootstrapReplicas, destroyOrphans, repairShards } from './repair.js';
import { SchedulerContext, type SchedulerInput, type SchedulerOutput } from './scheduler-context.js';

/**
 * Decides one round. Order matters: running moves advance first, then shards missing
 * replicas get moves, then moves off drained nodes, then (only with no re-replication or
 * drain running) rebalancing, then
 * leader balancing, then orphan clean-up. Never acts on a shard without a known
 * leader; one move per shard, because Raft allows one pending conf change.
 */
export function schedule(input: SchedulerInput): SchedulerOutput {
  const context = new SchedulerContext(input);
  createBootstrapReplicas(context);
  advanceMoves(context);
  repairShards(context);
  drainNodes(context);
  rebalanceReplicas(context);
  balanceLeaders(context);
  destroyOrphans(context);
  return context.output();
}
