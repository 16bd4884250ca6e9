/**
 * The knobs of one simulated run, drawn from its seed: the group's shape (how many
 * voters and learners, which schedule drives the faults), fault rates, Raft options,
 * and whether leaders send before they persist. A scenario is a pure function of
 * the seed, so `SEED=n` replays a run exactly.
 */
import { SeededRandom } from '../../../src/raft/index.js';
import type { ReplicaOptions } from './replica.js';

/** How a run's group is built and which schedule drives its faults. */
export type Shape =
  /** 3 or 5 voters under random partitions, crashes, membership changes and transfers. */
  | 'random'
  /**
   * Raft §5.4.2, Figure 8: a partition that follows the leader. Each new leader is cut
   * off with a random minority soon after it is elected, and the previous minority
   * rejoins the rest, so leaders of successive terms write entries to different
   * minorities and a returning leader replicates an entry of an old term to a
   * majority. It must not commit that entry by counting replicas.
   */
  | 'figure-eight'
  /** 2, 4 or 6 voters (no odd majority to lean on) and a learner on a slow, lossy link. */
  | 'even-voters'
  /**
   * One voter and one or two learners: the leader is its own quorum, so what it
   * counts toward commit before its fsync (thesis §10.2.1) decides what learners apply.
   */
  | 'single-voter';

/** Knobs of one run; {@link randomScenario} draws them from the seed. */
export interface Scenario {
  seed: number;
  shape: Shape;
  /** Voters at start: ids 1..voters. */
  voters: number;
  /** Learners at start: the ids after the voters. */
  learners: number;
  /** Learners at start sit behind a slow, lossy link (they lag, and catch up by snapshot). */
  laggingLearners: boolean;
  chaosTicks: number;
  lossRate: number;
  duplicateRate: number;
  /** Largest message delay, in sub-steps (4 per tick). */
  maxDelay: number;
  partitionRate: number;
  crashRate: number;
  confChangeRate: number;
  transferRate: number;
  /**
   * A leader hands its messages to the network before its entries are persisted, as
   * the storage node does (Raft thesis §10.2.1); a crash in between loses the entries
   * that were already sent. Term and vote are still persisted first.
   */
  earlySends: boolean;
  options: ReplicaOptions;
  /** Ticks allowed, after healing, for a leader to commit a new proposal. */
  livenessTicks: number;
}

/**
 * How often each shape is drawn: half the seeds keep the original random scenarios
 * (and so, with early sends off, exactly the run they always had).
 */
const SHAPES: readonly Shape[] = [
  ...Array<Shape>(8).fill('random'),
  ...Array<Shape>(3).fill('figure-eight'),
  ...Array<Shape>(3).fill('even-voters'),
  ...Array<Shape>(2).fill('single-voter'),
];

/** Draws a scenario from `seed`. */
export function randomScenario(seed: number): Scenario {
  const rng = new SeededRandom(seed ^ 0x5bd1e995);
  const pick = <T>(values: readonly T[]): T => values[rng.nextInt(values.length)] as T;
  const maxSizePerMsg = pick([0, 64, 256, 1024 * 1024]);
  // One tiny append in flight cannot keep up with the chaos phase's proposals; never combine the two.
  const maxInflightMsgs = maxSizePerMsg <= 64 ? pick([4, 256]) : pick([1, 4, 256]);
  const members = pick([3, 3, 5]);
  const base: Scenario = {
    seed,
    shape: 'random',
    voters: members,
    learners: 0,
    laggingLearners: false,
    chaosTicks: 150 + rng.nextInt(100),
    lossRate: pick([0, 0.02, 0.1, 0.2]),
    duplicateRate: pick([0, 0.02, 0.1]),
    maxDelay: pick([1, 4, 8, 16]),
    partitionRate: pick([0, 0.01, 0.03, 0.1]),
    crashRate: pick([0, 0.003, 0.01, 0.03]),
    confChangeRate: pick([0, 0.02, 0.05]),
    transferRate: pick([0, 0.01]),
    earlySends: false,
    options: {
      electionTick: 10,
      heartbeatTick: pick([1, 2]),
      maxSizePerMsg,
      maxInflightMsgs,
      snapshotEvery: pick([0, 7, 30]),
      compactMargin: pick([0, 2]),
      preVote: true,
      checkQuorum: true,
      piggyback: pick([false, true]),
    },
    livenessTicks: 200,
  };
  // Drawn last, after every knob above, so a seed's older knobs stay what they were.
  const earlySends = pick([false, true]);
  const shape = pick(SHAPES);
  return reshape({ ...base, earlySends, shape }, rng);
}

/** Adapts a random scenario to its shape; draws only for shapes other than 'random'. */
function reshape(scenario: Scenario, rng: SeededRandom): Scenario {
  const pick = <T>(values: readonly T[]): T => values[rng.nextInt(values.length)] as T;
  const options = scenario.options;
  switch (scenario.shape) {
    case 'random':
      return scenario;
    case 'figure-eight':
      // The leader-following partition replaces random ones, and membership stays put so
      // "a minority" keeps its meaning. Small appends let an old-term entry be acknowledged
      // apart from the new leader's no-op that follows it.
      return {
        ...scenario,
        partitionRate: 0,
        confChangeRate: 0,
        options: {
          ...options,
          maxSizePerMsg: pick([0, 0, 64]),
          maxInflightMsgs: Math.max(4, options.maxInflightMsgs ?? 4),
        },
      };
    case 'even-voters':
      return { ...scenario, voters: pick([2, 4, 6]), learners: 1, laggingLearners: true, confChangeRate: 0 };
    case 'single-voter':
      // Crashes always: what the leader counts before its fsync matters only if power can fail.
      return {
        ...scenario,
        voters: 1,
        learners: pick([1, 2]),
        laggingLearners: pick([false, true]),
        confChangeRate: 0,
        crashRate: Math.max(scenario.crashRate, 0.01),
      };
  }
}
