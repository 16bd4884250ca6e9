/**
 * The storage node (DESIGN.md §4): a multi-Raft host with one WAL, one transport
 * stream per peer and one timer, the KV state machine of every hosted shard, the
 * client-facing KvService, and the manager client. The CLI's `kvstore node` and the
 * in-process tests use only what is exported here.
 */
export { StorageNode, type StorageNodeOptions } from './storage-node.js';
export type { CreateReplicaSpec } from './raft-host.js';
export type { ShardMember } from './kv-state-machine.js';
export {
  MAX_RESULTS_PER_SHARD,
  MAX_SESSIONS_PER_SHARD,
  RESULT_RETENTION_MS,
  SESSION_IDLE_MS,
  SESSION_RETRY_HORIZON_MS,
} from './session-table.js';
export { REQUEST_TIMEOUT_MS } from './replica-requests.js';
