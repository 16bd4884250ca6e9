/**
 * A throwaway local cluster for `kvstore bench` and `kvstore driver`: the same manager and node
 * processes `kvstore cluster` starts (their argv comes from its exported {@link childCommands}), on a
 * free port range, in a temp data dir, with every child's log in one file. Children run with the
 * parent watch (src/common/parent-watch.ts), so they exit even if this process is SIGKILLed; normally
 * {@link LocalCluster.stop} stops them by PID (SIGTERM, then SIGKILL after a grace period) and removes
 * the data dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagerConnection, ManagerUnreachableError } from '../client/index.js';
import { childCommands } from '../cli/cluster-command.js';
import { everyShardHasLeader } from '../cli/status-util.js';
import { findFreePortRange, type LogLevel } from '../common/index.js';
import { PARENT_WATCH_ENV } from '../common/parent-watch.js';
import type { GetClusterMapResponse } from '../gen/kvstore/v1/manager.js';

/** How long children get after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 5000;
const READY_POLL_INTERVAL_MS = 200;

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
  private readonly children = new Map<string, ChildProcess>();
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
    const cluster = new LocalCluster(`127.0.0.1:${port}`, dir);
    try {
      cluster.spawnAll(options, port);
      await cluster.waitUntilReady(options.readyTimeoutMs ?? 120_000, signal);
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /** PIDs of the manager and node processes still running. */
  pids(): number[] {
    return [...this.children.values()].filter(isAlive).map((child) => child.pid ?? 0).filter((pid) => pid > 0);
  }

  /** {@link pids}, the manager's apart from the nodes' (the bench reports their CPU apart). */
  pidsByRole(): { manager: number[]; nodes: number[] } {
    const byRole = { manager: [] as number[], nodes: [] as number[] };
    for (const [name, child] of this.children) {
      if (isAlive(child) && child.pid !== undefined) (name === 'manager' ? byRole.manager : byRole.nodes).push(child.pid);
    }
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
    const connection = new ManagerConnection(this.managerAddress);
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
    const children = [...this.children.values()];
    const exits = children.filter(isAlive).map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())));
    for (const child of children) if (isAlive(child)) child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(exits), new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))]);
    clearTimeout(timer);
    for (const child of children) if (isAlive(child)) child.kill('SIGKILL');
    await Promise.all(exits);
    for (const child of children) child.stdin?.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private spawnAll(options: LocalClusterOptions, port: number): void {
    const mainScript = fileURLToPath(new URL('../cli/main.js', import.meta.url));
    const settings = {
      nodes: options.nodes,
      replicas: options.replicas,
      shards: options.shards,
      port,
      dataDir: this.dir,
      downAfterSeconds: 10,
      logLevel: options.logLevel,
      leaseReads: options.leaseReads ?? true,
    };
    const env: NodeJS.ProcessEnv = { ...process.env, [PARENT_WATCH_ENV]: '1', KVSTORE_LOG_LEVEL: options.logLevel ?? 'warn' };
    const logFd = openSync(this.logFile, 'a');
    try {
      for (const { name, args } of childCommands(settings, mainScript)) {
        const child = spawn(process.execPath, args, { stdio: ['pipe', logFd, logFd], env });
        child.stdin?.on('error', () => undefined); // the child may exit first; its pipe then errors on close
        child.on('error', () => undefined); // a failed spawn shows up as an early exit in waitUntilReady
        this.children.set(name, child);
      }
    } finally {
      closeSync(logFd); // each child holds its own copy
    }
  }

  private async waitUntilReady(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const connection = new ManagerConnection(this.managerAddress);
    const deadline = Date.now() + timeoutMs;
    try {
      for (;;) {
        if (signal?.aborted === true) throw new LocalClusterError('interrupted while the local cluster was starting');
        const exited = [...this.children.entries()].find(([, child]) => !isAlive(child));
        if (exited !== undefined) {
          throw new LocalClusterError(`local cluster: ${exited[0]} exited while starting (code ${String(exited[1].exitCode)}); log tail:\n${this.tailLog()}`);
        }
        try {
          const map = await connection.getClusterMap(2000, signal);
          if (everyShardHasLeader(map)) return;
        } catch (error) {
          if (!(error instanceof ManagerUnreachableError)) throw error;
        }
        if (Date.now() >= deadline) {
          throw new LocalClusterError(`local cluster: not every shard had a leader after ${timeoutMs} ms; log tail:\n${this.tailLog()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, READY_POLL_INTERVAL_MS));
      }
    } finally {
      connection.close();
    }
  }
}

function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

