/**
 * Chaos testing (issue 7): `kvstore chaos` runs a workload against a cluster while a nemesis injects
 * faults, records the history, and checks it for linearizability per key — per object where
 * transactions tie keys together (issue 18), with keys that expire — and for lost writes. This
 * is the folder's public surface; the CLI command and the tests use only what is exported here.
 */
export type {
  Operation,
  GetOperation,
  PutOperation,
  CasOperation,
  DeleteOperation,
  TxnOperation,
  TxnCompareRecord,
  TxnStep,
  TxnStepResult,
  OperationFields,
} from './history.js';
export {
  HistoryRecorder,
  keysOf,
  possibleWrites,
  historyToJsonLines,
  historyFromJsonLines,
  describeOperation,
  partitionByKey,
  precedes,
  isIndeterminate,
} from './history.js';
export type { KeyCheck, HistoryCheck, CheckOptions } from './checker.js';
export { checkHistory, checkKey, partitionByObject } from './checker.js';
export type { LostWrite } from './lost-writes.js';
export { findLostWrites, FINAL_READ_CLIENT } from './lost-writes.js';
export type { MinimizeOptions } from './minimize.js';
export { minimizeViolation, isClosed, closeUnder } from './minimize.js';
export type { ChaosOptions, ChaosResult, Violation } from './runner.js';
export { runChaos, ChaosSetupError, DEFAULT_TRANSACTION_FRACTION, DEFAULT_TTL_FRACTION, GROUP_KEY_SUFFIXES } from './runner.js';
export { EXPIRY_RATE_BOUND, EXPIRY_CLOCK_SLACK_MS, earliestExpiryMs } from './expiry.js';
export { MIN_TTL_MS, MAX_TTL_MS } from './workload.js';
export type { FaultKind } from './nemesis.js';
export { FAULT_KINDS } from './nemesis.js';
export { passed, verdictLine, summaryLines, transactionLine, ttlLine, writeOutputs, renderViolation } from './report.js';
export { LocalCluster } from './local-cluster.js';
export type { LocalClusterOptions } from './local-cluster.js';
export { settleProblems } from './cluster-watch.js';
export { Timeline } from './timeline.js';
export type { TimelineEvent } from './timeline.js';
export { NetnsNetwork, NetnsError, netnsUnavailable, removeNetworkOf, listNamespaces, networkPrefix } from './netns.js';
export type { NetnsHost, NetnsCreateOptions } from './netns.js';
export type { PartitionKind, PartitionPlan, DirectedLink } from './partition.js';
export { planHalves, planIsolation, linksToCut, describePartition, MANAGER_ENDPOINT } from './partition.js';
