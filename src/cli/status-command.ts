/**
 * `kvstore status [--wait [--timeout SECONDS]] [--json]`: the cluster as the manager sees it. `--wait`
 * polls until every shard has a leader (exit 0) or the timeout passes (exit 3).
 */
import type { Command } from 'commander';
import { ManagerConnection, ManagerUnreachableError } from '../client/index.js';
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';
import { addManagerOption, checkAddress, EXIT, failWith, parseSeconds, reportError } from './client-util.js';
import { clusterStatusJson, everyShardHasLeader, renderStatusTable } from './status-util.js';

/** How often `--wait` asks the manager again. */
const WAIT_POLL_INTERVAL_MS = 250;
/** `--wait` gives up after this long unless `--timeout` says otherwise. */
const DEFAULT_WAIT_TIMEOUT_S = 60;
/** One GetClusterMap call's deadline. */
const FETCH_TIMEOUT_MS = 5000;

interface StatusFlags {
  manager: string;
  wait?: boolean;
  timeout?: string;
  json?: boolean;
}

/** Registers `status` on the root program. */
export function registerStatusCommand(program: Command): void {
  addManagerOption(program.command('status').description('show nodes and shards; --wait until every shard has a leader'))
    .option('--wait', 'wait until every shard has a leader (exit 3 on timeout)')
    .option('--timeout <seconds>', `with --wait: give up after this many seconds (default ${DEFAULT_WAIT_TIMEOUT_S})`)
    .option('--json', 'print one JSON object (stable fields, see DESIGN.md §6)')
    .action(async (flags: StatusFlags) => {
      let connection: ManagerConnection | undefined;
      try {
        const manager = checkAddress(flags.manager, '--manager');
        const waitSeconds = flags.timeout === undefined ? DEFAULT_WAIT_TIMEOUT_S : parseSeconds(flags.timeout, '--timeout');
        connection = new ManagerConnection(manager);
        const map = flags.wait === true ? await waitForLeaders(connection, waitSeconds * 1000) : await connection.getClusterMap(FETCH_TIMEOUT_MS);
        if (map === undefined) return;
        const status = clusterStatusJson(manager, map);
        process.stdout.write(flags.json === true ? `${JSON.stringify(status, null, 2)}\n` : renderStatusTable(status));
      } catch (error) {
        if (error instanceof ManagerUnreachableError) failWith(`error: ${error.message}`, EXIT.unavailable);
        else reportError(error);
      } finally {
        connection?.close();
      }
    });
}

/**
 * Polls the manager until every shard has a leader. Returns the map, or undefined after reporting a
 * timeout (exit 3). An unreachable manager is retried until the timeout: it may still be starting.
 */
async function waitForLeaders(connection: ManagerConnection, timeoutMs: number): Promise<GetClusterMapResponse | undefined> {
  const deadline = Date.now() + timeoutMs;
  let last: GetClusterMapResponse | undefined;
  let lastError: unknown;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      last = await connection.getClusterMap(Math.min(FETCH_TIMEOUT_MS, remaining));
      if (everyShardHasLeader(last)) return last;
    } catch (error) {
      if (!(error instanceof ManagerUnreachableError)) throw error;
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(WAIT_POLL_INTERVAL_MS, Math.max(0, deadline - Date.now()))));
  }
  const seconds = timeoutMs / 1000;
  if (last === undefined) {
    const why = lastError instanceof Error ? lastError.message : 'no answer';
    failWith(`error: timed out after ${seconds} s waiting for the manager: ${why}`, EXIT.unavailable);
  } else {
    const led = last.shards.filter((shard) => shard.leaderNodeId !== '').length;
    failWith(`error: timed out after ${seconds} s: ${led} of ${last.shardCount} shards have a leader`, EXIT.unavailable);
  }
  return undefined;
}
