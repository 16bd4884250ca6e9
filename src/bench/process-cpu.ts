/**
 * CPU time of other processes (the local cluster's manager and nodes), read from Linux's
 * `/proc/<pid>/stat`: the bench samples it when the measured phase starts and when it ends, so a
 * run reports what each operation cost the servers. Where there is no /proc the readings are null.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The fallback for `getconf CLK_TCK`: Linux's USER_HZ is 100 on every common architecture. */
const DEFAULT_TICKS_PER_SECOND = 100;

let ticksPerSecond: number | undefined;

/**
 * Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`), asked once and cached. Call it
 * before a measurement starts, so the `getconf` child does not run inside the measured window.
 */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      const answer = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim());
      ticksPerSecond = Number.isInteger(answer) && answer > 0 ? answer : DEFAULT_TICKS_PER_SECOND;
    } catch {
      ticksPerSecond = DEFAULT_TICKS_PER_SECOND;
    }
  }
  return ticksPerSecond;
}

/**
 * utime and stime (fields 14 and 15, clock ticks) of one `/proc/<pid>/stat` line; undefined when
 * the line does not parse. The second field is the command name in parentheses, which may itself
 * hold spaces and parentheses, so the fields are counted from the line's last ')'.
 */
export function parseProcStatCpuTicks(stat: string): { utime: number; stime: number } | undefined {
  const end = stat.lastIndexOf(')');
  if (end < 0) return undefined;
  // After the ')' come field 3 (state) onwards: field N is at index N - 3.
  const fields = stat.slice(end + 1).trim().split(/\s+/);
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isSafeInteger(utime) || !Number.isSafeInteger(stime) || utime < 0 || stime < 0) return undefined;
  return { utime, stime };
}

/**
 * User + system CPU (µs) of each PID so far, all its threads included; null when any of them cannot
 * be read (no /proc on this platform, or the process is gone), since a sum missing one is wrong.
 */
export function readCpuMicros(pids: readonly number[]): Map<number, number> | null {
  const micros = new Map<number, number>();
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return null;
    }
    const ticks = parseProcStatCpuTicks(stat);
    if (ticks === undefined) return null;
    micros.set(pid, ((ticks.utime + ticks.stime) * 1e6) / clockTicksPerSecond());
  }
  return micros;
}

/** CPU (µs) the processes of `start` used until `end`, summed; null when either reading is missing a process. */
export function cpuMicrosBetween(start: Map<number, number> | null, end: Map<number, number> | null): number | null {
  if (start === null || end === null) return null;
  let total = 0;
  for (const [pid, before] of start) {
    const after = end.get(pid);
    if (after === undefined) return null;
    total += after - before;
  }
  return total;
}

/** Whether this platform has a Linux-style /proc to read other processes' CPU from. */
export function hasProcStat(): boolean {
  try {
    return parseProcStatCpuTicks(readFileSync('/proc/self/stat', 'utf8')) !== undefined;
  } catch {
    return false;
  }
}
