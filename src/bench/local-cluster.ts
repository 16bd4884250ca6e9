/**
 * A throwaway local cluster for `kvstore bench` and `kvstore driver`: the same manager and node
 * processes `kvstore cluster` starts (src/cluster), on a free port range, in a temp data dir, with
 * every child's log in one file. Children run with the parent watch (src/common/parent-watch.ts), so
 * they exit even if this process is SIGKILLed; normally {@link LocalCluster.stop} stops them by PID
 * (SIGTERM, then SIGKILL after a grace period) and removes the data dir.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectManager,
  launchCluster,
  localClusterSecurity,
  MANAGER_NAME,
  managerAddress,
  portRange,
  STOP_GRACE_MS,
  waitForLeaders,
  type ClientCredentials,
  type ClusterSpec,
  type Launcher,
} from '../cluster/index.js';
import { findFreePortRange, type LogLevel } from '../common/index.js';
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';

/** The manager's `--down-after` in a bench cluster. */
const DOWN_AFTER_SECONDS = 10;

/** Shape of a local cluster. */
export interface LocalClusterOptions {
  nodes: number;
  replicas: number;
  shards: number;
  /** Log level of every child (default warn: the log file is for post-mortems, not for reading along). */
  logLevel?: LogLevel;
  /** How long to wait for every shard to have a leader (default 120 s). */
  readyTimeoutMs?: number;
  /** False: nodes run with `--no-lease-reads` (default true). */
  leaseReads?: boolean;
  /** Mutual TLS between every process and for clients, certificates made in the temp dir (`bench --tls`). */
  tls?: boolean;
}

/** Thrown when the cluster does not come up; the message ends with the tail of the children's log. */
export class LocalClusterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalClusterError';
  }
}

/** A running local cluster; call {@link LocalCluster.stop} in a `finally`. */
export class LocalCluster {
  /** `127.0.0.1:PORT` of the manager. */
  readonly managerAddress: string;
  /** The temp dir holding the data dirs and `cluster.log`. */
  readonly dir: string;
  /** Every child's stdout and stderr (JSON log lines). */
  readonly logFile: string;
  /** What clients of this cluster present (its client certificate with `tls`); empty otherwise. */
  credentials: ClientCredentials = {};
  private launcher: Launcher | undefined;
  private stopped = false;

  private constructor(managerAddress: string, dir: string) {
    this.managerAddress = managerAddress;
    this.dir = dir;
    this.logFile = join(dir, 'cluster.log');
  }

  /** Starts the manager and `nodes` nodes and waits until every shard has a leader. */
  static async start(options: LocalClusterOptions, signal?: AbortSignal): Promise<LocalCluster> {
    const port = await findFreePortRange(options.nodes + 1);
    const dir = mkdtempSync(join(tmpdir(), 'kvstore-bench-'));
    const spec: ClusterSpec = {
      ...portRange(port),
      nodes: options.nodes,
      replicas: options.replicas,
      shards: options.shards,
      dataDir: dir,
      downAfterSeconds: DOWN_AFTER_SECONDS,
      leaseReads: options.leaseReads ?? true,
    };
    const cluster = new LocalCluster(managerAddress(spec), dir);
    try {
      if (options.tls === true) {
        const security = await localClusterSecurity(dir, { tls: true });
        spec.security = security.server;
        cluster.credentials = security.client;
      }
      // A child that fails to start or exits early shows up in waitUntilReady.
      cluster.launcher = launchCluster(spec, { env: { KVSTORE_LOG_LEVEL: options.logLevel ?? 'warn' }, logFile: () => cluster.logFile });
      await cluster.waitUntilReady(options.readyTimeoutMs ?? 120_000, signal);
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** PIDs of the manager and node processes still running. */
  pids(): number[] {
    return this.running().map((child) => child.pid);
  }

  /** {@link pids}, the manager's apart from the nodes' (the bench reports their CPU apart). */
  pidsByRole(): { manager: number[]; nodes: number[] } {
    const byRole = { manager: [] as number[], nodes: [] as number[] };
    for (const { name, pid } of this.running()) (name === MANAGER_NAME ? byRole.manager : byRole.nodes).push(pid);
    return byRole;
  }

  /** The last `lines` lines of the children's log. */
  tailLog(lines = 20): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** The manager's current cluster map. */
  async clusterMap(timeoutMs = 5000): Promise<GetClusterMapResponse> {
    const connection = connectManager({ address: this.managerAddress, credentials: this.credentials });
    try {
      return await connection.getClusterMap(timeoutMs);
    } finally {
      connection.close();
    }
  }

  /** Stops every child (SIGTERM, SIGKILL after a grace period) and removes the data dir. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.launcher?.stop(STOP_GRACE_MS);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private running(): { name: string; pid: number }[] {
    return (this.launcher?.all() ?? []).flatMap(({ name, pid }) => (pid === undefined ? [] : [{ name, pid }]));
  }

  private async waitUntilReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const outcome = await waitForLeaders({ address: this.managerAddress, credentials: this.credentials }, {
      timeoutMs,
      ...(signal === undefined ? {} : { signal }),
      beforePoll: () => {
        const exited = this.launcher?.all().find((child) => !child.running);
        if (exited !== undefined) {
          throw new LocalClusterError(`local cluster: ${exited.name} exited while starting (code ${String(exited.exitCode)}); log tail:\n${this.tailLog()}`);
        }
      },
    });
    if (outcome.ready) return;
    if (outcome.reason === 'aborted') throw new LocalClusterError('interrupted while the local cluster was starting');
    throw new LocalClusterError(`local cluster: not every shard had a leader after ${timeoutMs} ms; log tail:\n${this.tailLog()}`);
  }
}
