/**
 * Pods of deploy/kubernetes as local processes: `kvstore ARGS…` with the args a pod runs (made
 * local by kubernetes-pods.ts), each with its volumes in a temporary directory. Every process
 * gets a stdin pipe and KVSTORE_PARENT_WATCH=1, so it exits if the test runner dies, and
 * {@link LocalPods.stopAll} stops each by PID in any case. All of them run in one empty working
 * directory, with HOME and TMPDIR empty too: the test checks afterwards that they stayed empty,
 * which is what lets the pods run with a read-only root filesystem.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN_SCRIPT } from '../../support/cluster.js';

/** How long {@link LocalPods.stop} waits after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 5000;

/** One running pod. */
export interface LocalPod {
  name: string;
  args: string[];
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/** The processes of one test, their directories and their shared log. */
export class LocalPods {
  readonly dir = mkdtempSync(join(tmpdir(), 'kvstore-k8s-'));
  readonly logFile = join(this.dir, 'pods.log');
  /** The processes' working directory, HOME and TMPDIR: none of them may write there. */
  readonly workDir = join(this.dir, 'work');
  readonly homeDir = join(this.dir, 'home');
  readonly tmpDir = join(this.dir, 'tmp');
  private readonly pods = new Map<string, LocalPod>();

  constructor() {
    for (const directory of [this.workDir, this.homeDir, this.tmpDir]) mkdirSync(directory);
  }

  /** A fresh directory standing in for the volume `volume` of `pod`. */
  volume(pod: string, volume: string): string {
    const directory = join(this.dir, 'volumes', pod, volume);
    mkdirSync(directory, { recursive: true });
    return directory;
  }

  /** Starts `kvstore ...args` as `name`; its stdout and stderr go to the shared log. */
  start(name: string, args: string[]): LocalPod {
    const log = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, [MAIN_SCRIPT, ...args], {
      cwd: this.workDir,
      env: { ...process.env, HOME: this.homeDir, TMPDIR: this.tmpDir, KVSTORE_PARENT_WATCH: '1', KVSTORE_LOG_LEVEL: 'info' },
      stdio: ['pipe', log, log],
    });
    closeSync(log);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const pod = { name, args, child, exited };
    this.pods.set(name, pod);
    return pod;
  }

  /** Starts `name` again with the args it had (a stopped pod rescheduled with its volumes). */
  restart(name: string): LocalPod {
    const pod = this.pods.get(name);
    if (pod === undefined || this.running(name)) throw new Error(`${name} is not a stopped pod`);
    return this.start(name, pod.args);
  }

  /** Whether `name` is still running. */
  running(name: string): boolean {
    const child = this.pods.get(name)?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Sends SIGTERM to `name` (SIGKILL after a grace period) and returns its exit code. */
  async stop(name: string): Promise<number | null> {
    const pod = this.pods.get(name);
    if (pod === undefined) throw new Error(`no pod ${name}`);
    if (this.running(name)) {
      pod.child.kill('SIGTERM');
      const timer = setTimeout(() => pod.child.kill('SIGKILL'), STOP_GRACE_MS);
      try {
        return await pod.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return pod.exited;
  }

  /** Stops every process by PID, then removes the directories. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.pods.keys()].map((name) => this.stop(name)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** What is left in the working directory, HOME and TMPDIR (should be nothing). */
  strayFiles(): string[] {
    return [this.workDir, this.homeDir, this.tmpDir].flatMap((directory) => readdirSync(directory).map((name) => join(directory, name)));
  }

  /** The last lines of the shared log. */
  tail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
