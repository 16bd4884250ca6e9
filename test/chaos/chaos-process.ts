/**
 * Runs `kvstore chaos` as a real process for the end-to-end tests and cleans up after it by pid, even
 * when the test fails or times out: the chaos process itself, then every cluster process it listed in
 * `<out>/cluster/processes.txt` (a paused node cannot notice its parent's death, so it must be killed),
 * then the network namespaces a run with partitions made (they are named after the chaos process's pid).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeNetworkOf } from '../../src/chaos/index.js';
import { MAIN_SCRIPT } from '../support/cluster.js';

/** How a chaos process ended. */
export interface ChaosProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One `kvstore chaos` run with its own `--out` temp dir. */
export class ChaosProcess {
  /** The `--out` directory. */
  readonly outDir = mkdtempSync(join(tmpdir(), 'kvstore-chaos-test-'));
  private child: ChildProcess | undefined;

  /**
   * Runs `kvstore chaos ARGS… --out DIR` to completion, killing it after `timeoutMs`. With `signal`,
   * sends it `signal.name` once `signal.after` has appeared on its stderr.
   */
  async run(
    args: string[],
    options: { env?: NodeJS.ProcessEnv; timeoutMs: number; signal?: { after: string; name: NodeJS.Signals } },
  ): Promise<ChaosProcessResult> {
    const child = spawn(process.execPath, [MAIN_SCRIPT, 'chaos', ...args, '--out', this.outDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    this.child = child;
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    let signalled = false;
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (options.signal !== undefined && !signalled && stderr.includes(options.signal.after)) {
        signalled = true;
        child.kill(options.signal.name);
      }
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      child.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    return { code, stdout, stderr };
  }

  /** A file the run wrote into `--out`, or undefined. */
  file(name: string): string | undefined {
    const path = join(this.outDir, name);
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  }

  /** The chaos process's pid, once started: its network namespaces are named after it. */
  pid(): number | undefined {
    return this.child?.pid;
  }

  /**
   * Kills the chaos process and every cluster process it started, by pid; removes what is left of
   * its network namespaces (a run cleans up after itself, unless it was killed) and the temp dir.
   */
  cleanup(): void {
    if (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    for (const pid of this.clusterPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const pid = this.child?.pid;
    if (pid !== undefined && process.platform === 'linux' && process.getuid?.() === 0) removeNetworkOf(pid);
    rmSync(this.outDir, { recursive: true, force: true });
  }

  /** Pids from processes.txt that still run one of our processes (checked via /proc, so a reused pid is left alone). */
  private clusterPids(): number[] {
    const list = this.file('cluster/processes.txt');
    if (list === undefined) return [];
    return list
      .split('\n')
      .map((line) => Number(line.split(' ')[1]))
      .filter((pid) => Number.isInteger(pid) && pid > 0)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(this.outDir);
        } catch {
          return false;
        }
      });
  }
}
