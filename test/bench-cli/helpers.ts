/**
 * Helpers for the driver and bench CLI tests: run `kvstore …` with a private TMPDIR, so every local
 * cluster the command starts lives under a directory this test owns, and afterwards find (and kill by
 * PID) any process still running from it — a leak the test then reports.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** PIDs of live processes whose command line mentions `dir`. */
export function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (cmdline.includes(dir) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // the process exited while we looked
    }
  }
  return pids;
}

/** SIGKILLs every live process mentioning `dir`; returns their PIDs. */
export function killProcessesUsing(dir: string): number[] {
  const pids = processesUsing(dir);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return pids;
}

/** The N of the `lost updates: N` line, or undefined when the line is missing. */
export function lostUpdates(stdout: string): number | undefined {
  const match = /^lost updates: (\d+)$/m.exec(stdout);
  return match === null ? undefined : Number(match[1]);
}
