/**
 * The local-cluster launcher, below the CLI: the argv of the manager and node processes, starting
 * and stopping them, and waiting until every shard has a leader. `kvstore cluster`, `kvstore status
 * --wait`, the bench's and chaos's local clusters and the integration tests all go through it.
 */
export {
  CLI_MAIN_SCRIPT,
  MANAGER_NAME,
  childCommand,
  childCommands,
  managerAddress,
  nodeName,
  portRange,
} from './child-commands.js';
export type { ChildCommand, ChildHosts, ClusterSpec, Endpoint } from './child-commands.js';
export { ClusterProcess, Launcher, STOP_GRACE_MS, launchCluster } from './launcher.js';
export type { LaunchOptions } from './launcher.js';
export { connectManager, everyShardHasLeader, shardsWithLeader, waitForLeaders } from './wait-for-leaders.js';
export type { LeadersOutcome, ManagerAccess, WaitForLeadersOptions } from './wait-for-leaders.js';
export { certsDir, localClusterSecurity, securityArgs } from './security.js';
export type { ClientCredentials, ClusterSecurity, LocalSecurityOptions, ServerSecurityFiles } from './security.js';
