/**
 * A progress bar with ops/s for the bench and the driver (cli-progress on stderr), shown only when
 * stderr is a terminal so logs, pipes and tests get clean output.
 */
import cliProgress from 'cli-progress';

/** A progress display; a no-op when stderr is not a TTY. */
export interface Progress {
  /** Sets the completed amount (ops, or elapsed seconds for timed runs) and the live counts. */
  update(value: number, ops: number, errors: number): void;
  /** Removes the bar. Idempotent. */
  stop(): void;
}

/** A bar up to `total` (`unit` names it: "ops" or "s"); `label` prefixes it. */
export function createProgress(label: string, total: number, unit: 'ops' | 's', enabled = process.stderr.isTTY): Progress {
  if (!enabled) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate} ops/s | errors {errors}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  const startedMs = performance.now();
  bar.start(total, 0, { rate: 0, errors: 0 });
  let stopped = false;
  return {
    update(value, ops, errors) {
      if (stopped) return;
      const seconds = (performance.now() - startedMs) / 1000;
      bar.update(Math.min(total, Math.round(value)), { rate: seconds > 0 ? Math.round(ops / seconds) : 0, errors });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
