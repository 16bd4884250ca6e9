import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Wal } from '../../../src/raft/storage/index.js';
import { allEntries, makeEntries, makeTempDir, removeTempDir } from './helpers.js';

const WRITER = fileURLToPath(new URL('./crash-writer.js', import.meta.url));

/** Runs the writer until it prints `pending`, then SIGKILLs it; resolves with its `synced` count. */
async function runAndKill(dir: string, rounds: number, children: ChildProcess[]): Promise<number> {
  const child = spawn(process.execPath, [WRITER, dir, String(rounds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let output = '';
  let synced = 0;
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`writer did not finish; output: ${output}`)), 30_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      synced = output.split('\n').filter((line) => line.startsWith('synced')).length;
      if (output.includes('pending\n')) {
        clearTimeout(deadline);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(deadline);
      reject(new Error(`writer exited early with ${code}; output: ${output}`));
    });
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
  return synced;
}

describe('raft/storage/wal restart after SIGKILL', () => {
  let dir: string | undefined;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await removeTempDir(dir);
  });

  it('keeps every synced write, loses the unsynced ones, and carries on', async () => {
    expect(await runAndKill(dir as string, 20, children)).to.equal(20);
    expect(await runAndKill(dir as string, 5, children)).to.equal(5); // the writer resumes after 20

    const wal = await Wal.open(dir as string);
    try {
      const storage = wal.openGroup(1);
      expect(allEntries(storage)).to.deep.equal(makeEntries(1, 25, 1));
      expect(storage.initialState().hardState).to.deep.equal({ term: 1, vote: 1, commit: 25 });
    } finally {
      await wal.close();
    }
  });
});
