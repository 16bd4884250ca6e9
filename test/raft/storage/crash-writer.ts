/**
 * Child process of the SIGKILL restart test: opens the WAL in argv[2], appends
 * and syncs one entry at a time for argv[3] rounds (printing `synced <i>`),
 * then buffers more without syncing, prints `pending` and waits to be killed.
 */
import { Wal } from '../../../src/raft/storage/index.js';
import { makeEntries } from './helpers.js';

const [dir, roundsText] = process.argv.slice(2);
const rounds = Number(roundsText);
const wal = await Wal.open(dir as string);
const storage = wal.openGroup(1, { confState: { voters: [1], learners: [] } });
const start = storage.lastIndex() + 1;
for (let i = 0; i < rounds; i++) {
  storage.append(makeEntries(start + i, start + i, 1));
  storage.setHardState({ term: 1, vote: 1, commit: start + i });
  await wal.sync();
  process.stdout.write(`synced ${start + i}\n`);
}
storage.append(makeEntries(start + rounds, start + rounds + 9, 1));
process.stdout.write('pending\n');
setInterval(() => undefined, 1000);
