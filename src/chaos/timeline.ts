/**
 * The run's timeline: faults injected and healed, leader changes the manager reported, processes
 * that exited on their own, and notes (skipped faults). Written as `timeline.txt` with `--out`.
 */

/** One timeline event. */
export interface TimelineEvent {
  /** Milliseconds since the run started, on the history's clock. */
  atMs: number;
  kind: 'fault' | 'heal' | 'leader' | 'process' | 'note' | 'phase';
  text: string;
}

/** An append-only list of events stamped with the run's clock. */
export class Timeline {
  private readonly events: TimelineEvent[] = [];

  /** `elapsedMs` is the history recorder's clock, so faults line up with operations. */
  constructor(private readonly elapsedMs: () => number) {}

  /** Appends an event now. */
  add(kind: TimelineEvent['kind'], text: string): void {
    this.events.push({ atMs: this.elapsedMs(), kind, text });
  }

  /** Every event so far, in time order. */
  list(): TimelineEvent[] {
    return [...this.events];
  }

  /** One line per event: `+  12.345s fault  kill -9 n3 (pid 4242)`. */
  render(): string {
    return this.events.map((event) => `+${(event.atMs / 1000).toFixed(3).padStart(9)}s ${event.kind.padEnd(7)} ${event.text}`).join('\n') + '\n';
  }
}
