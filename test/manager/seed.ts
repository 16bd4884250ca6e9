/** The seed for randomised manager tests: `SEED=n` replays a run; otherwise a fresh one, printed on failure. */
export function testSeed(): number {
  const fromEnv = process.env['SEED'];
  return fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : Date.now() % 2_147_483_647;
}

/** Runs `check`; on failure rethrows with the seed in the message so `SEED=n` replays it. */
export function withSeed(seed: number, check: (seed: number) => void): void {
  try {
    check(seed);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\n(replay with SEED=${seed})`, { cause: error });
  }
}
