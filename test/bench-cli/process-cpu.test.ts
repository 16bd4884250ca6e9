import { expect } from 'chai';
import { cpuMicrosBetween, parseProcStatCpuTicks, readCpuMicros } from '../../src/bench/process-cpu.js';

/** A /proc/<pid>/stat line with fields 14 (utime) and 15 (stime) set and every other number distinct from them. */
function statLine(comm: string, utime: number, stime: number): string {
  // Fields 3..52 after the comm; field N sits at index N - 3.
  const fields: string[] = ['S', ...Array.from({ length: 49 }, (_unused, i) => String(1000 + i))];
  fields[14 - 3] = String(utime);
  fields[15 - 3] = String(stime);
  return `4242 (${comm}) ${fields.join(' ')}\n`;
}

function cpuSince(start: NodeJS.CpuUsage): number {
  const usage = process.cpuUsage(start);
  return usage.user + usage.system;
}

describe('bench/process-cpu', () => {
  it('reads utime and stime after the last ")", whatever the command name holds', () => {
    expect(parseProcStatCpuTicks(statLine('node', 7, 3))).to.deep.equal({ utime: 7, stime: 3 });
    // A comm with spaces, ')' and digits: splitting the whole line on spaces would shift every field.
    expect(parseProcStatCpuTicks(statLine('a b) 1 2 (c) ) 9', 1234, 56))).to.deep.equal({ utime: 1234, stime: 56 });
    expect(parseProcStatCpuTicks(statLine(')', 0, 8))).to.deep.equal({ utime: 0, stime: 8 });
  });

  it('refuses a line that does not parse', () => {
    expect(parseProcStatCpuTicks('')).to.equal(undefined);
    expect(parseProcStatCpuTicks('4242 node S 1 2 3')).to.equal(undefined);
    expect(parseProcStatCpuTicks('4242 (node) S 1 2 3')).to.equal(undefined);
  });

  it('reads a live process\'s CPU in µs, as process.cpuUsage() counts it', function () {
    if (readCpuMicros([process.pid]) === null) {
      process.stderr.write('      skipped: this platform has no /proc/<pid>/stat to read\n');
      this.skip();
    }
    const usageBefore = process.cpuUsage();
    const before = readCpuMicros([process.pid]);
    // Burn 300 ms of CPU (not of wall time: the machine may be shared).
    const giveUpAt = performance.now() + 20_000;
    while (cpuSince(usageBefore) < 300_000 && performance.now() < giveUpAt) { /* spin */ }
    const after = readCpuMicros([process.pid]);
    const fromNode = cpuSince(usageBefore);
    const fromProc = cpuMicrosBetween(before, after);
    expect(fromNode).to.be.at.least(300_000);
    // /proc counts in clock ticks (10 ms at 100 Hz), utime and stime apart: allow two ticks of each at each end.
    expect(fromProc).to.be.a('number');
    expect(Math.abs((fromProc ?? 0) - fromNode), `proc ${String(fromProc)} µs vs cpuUsage ${fromNode} µs`).to.be.below(40_000);
  });

  it('gives null when a process cannot be read, rather than a sum missing it', () => {
    expect(readCpuMicros([2 ** 30])).to.equal(null); // above pid_max
    const start = new Map([[1, 10], [2, 20]]);
    expect(cpuMicrosBetween(start, new Map([[1, 15], [2, 27]]))).to.equal(12);
    expect(cpuMicrosBetween(start, new Map([[1, 15]]))).to.equal(null);
    expect(cpuMicrosBetween(null, start)).to.equal(null);
  });
});
