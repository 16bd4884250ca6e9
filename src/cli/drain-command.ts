/**
 * `kvstore node drain ID [--cancel] [--timeout SECONDS]`: asks the manager to move every replica
 * and leadership off node ID (`src/manager/drain.ts`), then waits until the node holds nothing
 * (exit 0), printing progress on stderr. Refused (exit 4) when fewer than K other live nodes would
 * remain; an unknown node is bad input (exit 2); a timeout exits 3 saying what is left. `--cancel`
 * stops a drain: the node may take replicas and leaderships again.
 */
import type { Command } from 'commander';
import { ManagerRefusedError, ManagerUnreachableError, type ManagerConnection } from '../client/index.js';
import { connectManager } from '../cluster/index.js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { setTimeout as delay } from 'node:timers/promises';
import { addManagerOption, checkAddress, EXIT, exitForManagerError, failWith, parseSeconds, reportError } from './client-util.js';
import { addClientSecurityOptions, clientSecurityFromFlags, type ClientSecurityFlags } from './security-flags.js';

/** `node drain` waits this long for the node to empty unless `--timeout` says otherwise. */
const DEFAULT_DRAIN_TIMEOUT_S = 600;
const POLL_INTERVAL_MS = 500;
const CALL_TIMEOUT_MS = 5000;

interface DrainFlags extends ClientSecurityFlags {
  manager: string;
  cancel?: boolean;
  timeout?: string;
}

/** Registers `drain` under `kvstore node`. */
export function registerDrainCommand(node: Command): void {
  addClientSecurityOptions(addManagerOption(node.command('drain')
    .description('move every replica and leadership off node ID; exit 0 once it holds nothing (refused, exit 4, if fewer than K other live nodes would remain)')))
    .argument('<id>', 'the node to drain')
    .option('--cancel', 'stop draining the node: it may take replicas and leaderships again')
    .option('--timeout <seconds>', `give up waiting after this many seconds (default ${DEFAULT_DRAIN_TIMEOUT_S}); the drain goes on`)
    .action(async (nodeId: string, flags: DrainFlags) => {
      let connection: ManagerConnection | undefined;
      try {
        const manager = checkAddress(flags.manager, '--manager');
        const timeoutMs = (flags.timeout === undefined ? DEFAULT_DRAIN_TIMEOUT_S : parseSeconds(flags.timeout, '--timeout')) * 1000;
        connection = connectManager({ address: manager, credentials: clientSecurityFromFlags(flags) });
        const first = await connection.drainNode(nodeId, flags.cancel === true, CALL_TIMEOUT_MS);
        if (flags.cancel === true) {
          process.stderr.write(`${nodeId}: drain cancelled (${first.replicaCount} replicas, ${first.leaderCount} leaderships)\n`);
          return;
        }
        await waitUntilEmpty(connection, nodeId, timeoutMs);
      } catch (error) {
        if (error instanceof ManagerRefusedError) {
          failWith(`error: ${error.message}`, error.grpcCode === (GrpcStatus.NOT_FOUND as number) ? EXIT.badInput : EXIT.conflict);
        } else if (error instanceof ManagerUnreachableError) {
          failWith(`error: ${error.message}`, exitForManagerError(error));
        } else {
          reportError(error);
        }
      } finally {
        connection?.close();
      }
    });
}

/** Polls the map until `nodeId` holds no replica and no leadership; exit 3 at the timeout. */
async function waitUntilEmpty(connection: ManagerConnection, nodeId: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  for (;;) {
    const map = await connection.getClusterMap(CALL_TIMEOUT_MS);
    const node = map.nodes.find((candidate) => candidate.nodeId === nodeId);
    const replicas = node?.replicaCount ?? 0;
    const leaders = node?.leaderCount ?? 0;
    if (replicas === 0 && leaders === 0) {
      process.stderr.write(`${nodeId}: drained: it holds no replica and no leadership\n`);
      return;
    }
    const progress = `${nodeId}: ${replicas} replicas, ${leaders} leaderships left`;
    if (progress !== last) process.stderr.write(`${progress}\n`);
    last = progress;
    if (performance.now() >= deadline) {
      failWith(`error: timed out after ${timeoutMs / 1000} s: ${progress} (the drain goes on; run the command again to wait)`, EXIT.unavailable);
      return;
    }
    await delay(POLL_INTERVAL_MS);
  }
}
