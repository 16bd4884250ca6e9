/**
 * Starting and stopping a local cluster's processes. Every child runs `node <argv>` (or a wrapper of
 * it, such as `ip netns exec`) with KVSTORE_PARENT_WATCH=1 and a stdin pipe this process holds
 * (src/common/parent-watch.ts), so it exits even if this process is SIGKILLed. Normally
 * {@link Launcher.stop} stops them by PID: SIGTERM, then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { PARENT_WATCH_ENV } from '../common/parent-watch.js';
import { childCommands, type ChildCommand, type ClusterSpec } from './child-commands.js';

/** How long children get to exit after SIGTERM before SIGKILL, unless the caller says otherwise. */
export const STOP_GRACE_MS = 5000;

/** How a {@link Launcher} starts its children and reports on them. */
export interface LaunchOptions {
  /** Environment on top of this process's (the parent watch is always turned on). */
  env?: NodeJS.ProcessEnv;
  /**
   * The file a child's stdout and stderr are appended to, by child name. Omitted: both are copied to
   * this process's stderr line by line, so lines of different children never interleave mid-line.
   */
  logFile?: (name: string) => string;
  /** The program and arguments that run a child's argv. Default: this Node binary with the argv. */
  command?: (name: string, argv: readonly string[]) => { file: string; args: string[] };
  /** Called after each (re)start, once the child has its PID. */
  onSpawn?: (child: ClusterProcess) => void;
  /** Called when a child could not be started. */
  onError?: (name: string, error: Error) => void;
  /** Called when a child exits without having been told to (a crash, a bad flag), while not stopping. */
  onUnexpectedExit?: (name: string, code: number | null, signal: NodeJS.Signals | null) => void;
}

/** One manager or node process: its argv, and its current incarnation if it has been started. */
export class ClusterProcess {
  /** `manager`, `n1`…. */
  readonly name: string;
  /** Its argv after the node binary; every restart reuses it, so the ports and data dir stay. */
  readonly args: readonly string[];
  private child: ChildProcess | undefined;
  private exit: Promise<void> = Promise.resolve();
  private paused = false;
  /** Set while we stop it on purpose, so its exit is not reported as unexpected. */
  private expectingExit = false;

  /** @internal Use {@link Launcher.start}. */
  constructor(
    command: ChildCommand,
    private readonly launcher: Launcher,
    private readonly options: LaunchOptions,
  ) {
    this.name = command.name;
    this.args = command.args;
  }

  /** Whether the process is alive (a paused one is). */
  get running(): boolean {
    const child = this.child;
    return child !== undefined && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Whether it is stopped with SIGSTOP. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** The PID while running, else undefined. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** The PID of the latest incarnation, running or not. */
  get lastPid(): number | undefined {
    return this.child?.pid;
  }

  /** The latest incarnation's exit code; null while it runs or when a signal ended it. */
  get exitCode(): number | null {
    return this.child?.exitCode ?? null;
  }

  /** Resolves once the latest incarnation has exited (at once if it never started). */
  exited(): Promise<void> {
    return this.exit;
  }

  /** Starts (or restarts) the process with the same argv. Throws if it is running. */
  start(): void {
    if (this.running) throw new Error(`${this.name} is still running`);
    const logFile = this.options.logFile?.(this.name);
    const { file, args } = this.options.command?.(this.name, this.args) ?? { file: process.execPath, args: [...this.args] };
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.options.env, [PARENT_WATCH_ENV]: '1' };
    let child: ChildProcess;
    if (logFile === undefined) {
      child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
      forwardLines(child);
    } else {
      const logFd = openSync(logFile, 'a');
      try {
        child = spawn(file, args, { stdio: ['pipe', logFd, logFd], env });
      } finally {
        closeSync(logFd); // the child holds its own copy
      }
    }
    child.stdin?.on('error', () => undefined); // the child may exit first; its pipe then errors on close
    this.child = child;
    this.paused = false;
    this.expectingExit = false;
    this.exit = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        child.stdin?.destroy();
        if (!this.expectingExit && !this.launcher.stopping) this.options.onUnexpectedExit?.(this.name, code, signal);
        resolve();
      });
      child.on('error', (error) => {
        if (child.pid !== undefined) return; // a failed kill of a live child: its exit still comes
        this.options.onError?.(this.name, error);
        resolve();
      });
    });
    this.options.onSpawn?.(this);
  }

  /** Sends `signal` (default SIGKILL) and resolves once the process has exited. No-op unless running. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.expectingExit = true;
    if (this.paused && signal !== 'SIGKILL') this.child?.kill('SIGCONT'); // a stopped process acts on nothing else
    this.child?.kill(signal);
    await this.exit;
    this.paused = false;
  }

  /** SIGSTOP: the process freezes with its sockets open, like a long GC pause or a hung VM. */
  pause(): void {
    if (!this.running || this.paused) return;
    this.child?.kill('SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT after {@link pause}. */
  resume(): void {
    if (!this.running || !this.paused) return;
    this.child?.kill('SIGCONT');
    this.paused = false;
  }

  /** @internal Part of {@link Launcher.stop}: resumes if paused, then SIGTERM. */
  terminate(): void {
    if (!this.running) return;
    this.expectingExit = true;
    if (this.paused) this.child?.kill('SIGCONT');
    this.child?.kill('SIGTERM');
  }

  /** @internal Part of {@link Launcher.stop} and {@link Launcher.killAllNow}: SIGKILL if still running. */
  killNow(): void {
    if (!this.running) return;
    this.expectingExit = true;
    this.child?.kill('SIGKILL');
  }
}

/** The processes of one local cluster; see the file comment. */
export class Launcher {
  private readonly processes = new Map<string, ClusterProcess>();
  private stopCalled = false;

  constructor(private readonly options: LaunchOptions = {}) {}

  /** True once {@link stop} was called: exits are no longer unexpected. */
  get stopping(): boolean {
    return this.stopCalled;
  }

  /** Adds the child and starts it. Names are unique. */
  start(command: ChildCommand): ClusterProcess {
    if (this.processes.has(command.name)) throw new Error(`a cluster process named ${command.name} exists already`);
    const child = new ClusterProcess(command, this, this.options);
    this.processes.set(command.name, child);
    child.start();
    return child;
  }

  /** The child named `name`; throws if there is none. */
  get(name: string): ClusterProcess {
    const child = this.processes.get(name);
    if (child === undefined) throw new Error(`no cluster process named ${name}`);
    return child;
  }

  /** The child named `name`, if any. */
  find(name: string): ClusterProcess | undefined {
    return this.processes.get(name);
  }

  /** Every child, in the order they were added. */
  all(): ClusterProcess[] {
    return [...this.processes.values()];
  }

  /** Resolves once every child has exited. */
  async allExited(): Promise<void> {
    await Promise.all(this.all().map((child) => child.exited()));
  }

  /**
   * Stops every child: resumes the paused, sends SIGTERM, and SIGKILL to those still running after
   * `graceMs`; resolves when all have exited. Safe to call twice.
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.stopCalled = true;
    const children = this.all();
    for (const child of children) child.terminate();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([this.allExited(), grace]);
    clearTimeout(timer);
    for (const child of children) child.killNow();
    await this.allExited();
  }

  /** SIGKILL to every running child at once, synchronously (a whole-cluster crash, or a `process.on('exit')` handler). */
  killAllNow(): void {
    for (const child of this.all()) child.killNow();
  }
}

/** Starts the manager and n1…nN of `spec` (not waiting for anything: see waitForLeaders). */
export function launchCluster(spec: ClusterSpec, options: LaunchOptions = {}): Launcher {
  const launcher = new Launcher(options);
  for (const command of childCommands(spec)) launcher.start(command);
  return launcher;
}

/** Copies a child's stdout and stderr to our stderr line by line. */
function forwardLines(child: ChildProcess): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue;
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on('line', (line) => process.stderr.write(`${line}\n`));
  }
}
