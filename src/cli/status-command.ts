/**
 * `kvstore status [--wait [--timeout SECONDS]] [--json]`: the cluster as the manager sees it. `--wait`
 * polls until every shard has a leader (exit 0) or the timeout passes (exit 3).
 */
import type { Command } from 'commander';
import { ManagerUnreachableError, type ManagerConnection } from '../client/index.js';
import { connectManager, shardsWithLeader, waitForLeaders, type ManagerAccess } from '../cluster/index.js';
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';
import { addManagerOption, checkAddress, EXIT, exitForManagerError, failWith, parseSeconds, reportError } from './client-util.js';
import { addClientSecurityOptions, clientSecurityFromFlags, type ClientSecurityFlags } from './security-flags.js';
import { clusterStatusJson, HEALTH_NAMES, renderStatusTable } from './status-util.js';

/** How often `--wait` asks the manager again. */
const WAIT_POLL_INTERVAL_MS = 250;
/** `--wait` gives up after this long unless `--timeout` says otherwise. */
const DEFAULT_WAIT_TIMEOUT_S = 60;
/** One GetClusterMap call's deadline. */
const FETCH_TIMEOUT_MS = 5000;

interface StatusFlags extends ClientSecurityFlags {
  manager: string;
  wait?: boolean;
  timeout?: string;
  json?: boolean;
}

/** Registers `status` on the root program. */
export function registerStatusCommand(program: Command): void {
  addClientSecurityOptions(addManagerOption(program.command('status').description('show nodes and shards; --wait until every shard has a leader')))
    .option('--wait', 'wait until every shard has a leader (exit 3 on timeout)')
    .option('--timeout <seconds>', `with --wait: give up after this many seconds (default ${DEFAULT_WAIT_TIMEOUT_S})`)
    .option('--json', 'print one JSON object (stable fields, see DESIGN.md §6)')
    .action(async (flags: StatusFlags) => {
      let connection: ManagerConnection | undefined;
      try {
        const manager = checkAddress(flags.manager, '--manager');
        const waitSeconds = flags.timeout === undefined ? DEFAULT_WAIT_TIMEOUT_S : parseSeconds(flags.timeout, '--timeout');
        const access: ManagerAccess = { address: manager, credentials: clientSecurityFromFlags(flags) };
        let map: GetClusterMapResponse | undefined;
        if (flags.wait === true) {
          map = await waitUntilLed(access, waitSeconds * 1000);
        } else {
          connection = connectManager(access);
          map = await connection.getClusterMap(FETCH_TIMEOUT_MS);
        }
        if (map === undefined) return;
        const status = clusterStatusJson(manager, map);
        process.stdout.write(flags.json === true ? `${JSON.stringify(status, null, 2)}\n` : renderStatusTable(status));
      } catch (error) {
        if (error instanceof ManagerUnreachableError) failWith(`error: ${error.message}`, exitForManagerError(error));
        else reportError(error);
      } finally {
        connection?.close();
      }
    });
}

/**
 * Waits until every shard has a leader. Returns the map, or undefined after reporting a timeout
 * (exit 3). An unreachable manager is retried until the timeout: it may still be starting.
 */
async function waitUntilLed(access: ManagerAccess, timeoutMs: number): Promise<GetClusterMapResponse | undefined> {
  const outcome = await waitForLeaders(access, { timeoutMs, pollIntervalMs: WAIT_POLL_INTERVAL_MS, fetchTimeoutMs: FETCH_TIMEOUT_MS });
  if (outcome.ready) return outcome.map;
  if (outcome.reason === 'refused' && outcome.lastError !== undefined) {
    failWith(`error: ${outcome.lastError.message}`, EXIT.unauthenticated);
    return undefined;
  }
  const seconds = timeoutMs / 1000;
  const last = outcome.lastMap;
  if (last === undefined) {
    const why = outcome.lastError?.message ?? 'no answer';
    failWith(`error: timed out after ${seconds} s waiting for the manager: ${why}`, EXIT.unavailable);
  } else {
    failWith(`error: timed out after ${seconds} s: ${shardsWithLeader(last)} of ${last.shardCount} shards have a leader; ${leaderlessReport(last)}`, EXIT.unavailable);
  }
  return undefined;
}

/** Leaderless shards shown in a timeout's line, at most. */
const LEADERLESS_SHOWN = 6;

/**
 * Why shards have no leader, as far as the map tells: each leaderless shard's replicas with the
 * health of their nodes, and whether a majority of its voters is on nodes that are up (without one
 * it cannot elect; with one, the election or the replicas' first reports are still under way).
 */
export function leaderlessReport(map: GetClusterMapResponse): string {
  const health = new Map(map.nodes.map((node) => [node.nodeId, HEALTH_NAMES.get(node.health) ?? 'unknown']));
  const leaderless = map.shards.filter((shard) => shard.leaderNodeId === '');
  if (map.shards.length < map.shardCount || map.shards.every((shard) => shard.replicas.length === 0)) {
    return `no shard is placed yet: the manager places them once --bootstrap-nodes nodes (default K=${map.replicationFactor}) have registered; ${map.nodes.length} have`;
  }
  const described = leaderless.slice(0, LEADERLESS_SHOWN).map((shard) => {
    const voters = shard.replicas.filter((replica) => !replica.learner);
    if (voters.length === 0) return `shard ${shard.shardId} (no replicas placed)`;
    const up = voters.filter((replica) => health.get(replica.nodeId) === 'up').length;
    const members = voters.map((replica) => `${replica.nodeId} ${health.get(replica.nodeId) ?? 'unknown'}`).join(', ');
    const quorum = up * 2 > voters.length ? 'a majority up' : `only ${up} of ${voters.length} voters up: no quorum`;
    return `shard ${shard.shardId} (${members}; ${quorum})`;
  });
  const more = leaderless.length > LEADERLESS_SHOWN ? `, and ${leaderless.length - LEADERLESS_SHOWN} more` : '';
  return `no leader: ${described.join(', ')}${more}`;
}
