/**
 * The manager's public surface: start a manager, and the pure pieces (placement,
 * scheduler) other code and tests reason about.
 */
export { Manager, type ManagerOptions } from './manager.js';
export { ManagerError, type ManagerErrorCode } from './errors.js';
export { DEFAULT_DOWN_AFTER_MS, DEFAULT_SUSPECT_AFTER_MS, healthAfterSilence } from './health.js';
export { placeInitialReplicas, type ShardPlacement } from './placement.js';
export { schedule } from './scheduler.js';
export {
  DEFAULT_SCHEDULER_CONFIG,
  type IssuedCommand, type NodeCommand, type NodeView, type SchedulerConfig, type SchedulerEvent,
  type SchedulerInput, type SchedulerOutput,
} from './scheduler-context.js';
export { StateStore, parsePersistedState, type PersistedState } from './state-store.js';
export type { Health, MovePhase, MoveReason, MoveTask, NodeRecord, ReplicaRef, ShardRecord } from './types.js';
