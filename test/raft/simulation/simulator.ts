/**
 * A seeded network simulation of one Raft group: loss, duplication,
 * reordering, delay, partitions, crash/restart from persisted state,
 * membership changes, leadership transfers, reads and snapshots, and leaders
 * that send before they persist. Every run is a function of its seed;
 * {@link SafetyChecker} checks every Ready and {@link StepInvariants} every step.
 */
import {
  ConfChangeType,
  MemoryStorage,
  MessageType,
  Role,
  SeededRandom,
  type Message,
  type ReplicaId,
} from '../../../src/raft/index.js';
import { SafetyChecker, SafetyViolation } from './checker.js';
import { FigureEightSchedule } from './figure-eight.js';
import { TestReplica, observeAll, utf8, type EarlySend, type ReadyObserver } from './replica.js';
import { randomScenario, type Scenario, type Shape } from './scenario.js';
import { StepInvariants } from './step-invariants.js';

export { randomScenario, type Scenario };

const SUBSTEPS_PER_TICK = 4;
/** A lagging learner's link: extra loss during chaos, and delays up to this many times the scenario's. */
const LAGGARD_LOSS_RATE = 0.2;
const LAGGARD_DELAY_FACTOR = 3;

/** What a run did, for reporting. */
export interface RunResult {
  seed: number;
  shape: Shape;
  ticks: number;
  leaderTerms: number;
  committed: number;
  livenessTicks: number;
  reads: number;
}

interface PendingRead {
  replica: ReplicaId;
  requiredIndex: number;
}

export class Simulation {
  private readonly rng: SeededRandom;
  private readonly replicas = new Map<ReplicaId, TestReplica>();
  private readonly checker: SafetyChecker;
  private readonly steps: StepInvariants;
  private readonly observer: ReadyObserver;
  /** Ring of message buckets by delivery sub-step. */
  private readonly buckets: Message[][];
  private time = 0;
  private group = new Map<ReplicaId, number>();
  private readonly restartAt = new Map<ReplicaId, number>();
  private nextReplicaId: number;
  private proposals = 0;
  private readonly reads = new Map<string, PendingRead>();
  private readsAnswered = 0;
  private lossRate: number;
  private duplicateRate: number;
  /** Replicas behind a slow, lossy link (the shape's lagging learners). */
  private readonly laggards = new Set<ReplicaId>();
  private laggardLossRate = 0;
  private readonly figureEight: FigureEightSchedule | undefined;
  /** How a leader sends before it persists, when the scenario says so. */
  private readonly earlySend: EarlySend | undefined;
  /** A power cut is drawn for the early send of the Ready being processed. */
  private earlyPowerCutDue = false;

  constructor(private readonly scenario: Scenario) {
    this.rng = new SeededRandom(scenario.seed);
    const label = `seed ${scenario.seed} (replay: SEED=${scenario.seed})`;
    this.checker = new SafetyChecker(label);
    this.checker.onReadState = (replica, index, context) => this.checkRead(replica, index, context);
    const options = scenario.options;
    this.steps = new StepInvariants(label, {
      electionTick: options.electionTick ?? 10,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      maxInflightMsgs: options.maxInflightMsgs ?? 256,
    });
    this.observer = observeAll(this.checker, this.steps);
    const delayFactor = scenario.laggingLearners ? LAGGARD_DELAY_FACTOR : 1;
    this.buckets = Array.from({ length: scenario.maxDelay * delayFactor + 2 }, () => []);
    this.lossRate = scenario.lossRate;
    this.duplicateRate = scenario.duplicateRate;
    const voters = Array.from({ length: scenario.voters }, (_, i) => i + 1);
    const learners = Array.from({ length: scenario.learners }, (_, i) => scenario.voters + i + 1);
    this.nextReplicaId = scenario.voters + scenario.learners + 1;
    for (const id of [...voters, ...learners]) {
      this.replicas.set(id, new TestReplica(id, new MemoryStorage({ confState: { voters, learners } }), options, scenario.seed));
    }
    if (scenario.laggingLearners) {
      for (const id of learners) this.laggards.add(id);
      this.laggardLossRate = LAGGARD_LOSS_RATE;
    }
    this.figureEight = scenario.shape === 'figure-eight' ? new FigureEightSchedule(this.rng) : undefined;
    this.earlySend = scenario.earlySends
      ? {
          send: (messages) => {
            for (const message of messages) this.enqueue(message);
          },
          powerCut: (ready) => this.earlyPowerCutDue && ready.entries.length > 0 && ready.messages.length > 0,
        }
      : undefined;
  }

  private get nowTicks(): number {
    return Math.floor(this.time / SUBSTEPS_PER_TICK);
  }

  private chance(probability: number): boolean {
    return probability > 0 && this.rng.nextInt(1_000_000) < probability * 1_000_000;
  }

  private randomReplica(): TestReplica {
    const all = [...this.replicas.values()];
    return all[this.rng.nextInt(all.length)] as TestReplica;
  }

  private leaders(): TestReplica[] {
    return [...this.replicas.values()].filter((r) => r.alive && r.node.isLeader());
  }

  private checkRead(replica: TestReplica, index: number, context: Uint8Array): void {
    const key = new TextDecoder().decode(context);
    const read = this.reads.get(key);
    if (read === undefined || read.replica !== replica.id) return;
    this.reads.delete(key);
    this.readsAnswered++;
    if (index < read.requiredIndex) {
      throw new SafetyViolation(
        `seed ${this.scenario.seed} (replay: SEED=${this.scenario.seed}): read ${key} on replica ${replica.id} got index ${index}, ` +
          `but ${read.requiredIndex} was committed before it started (stale read)`,
      );
    }
  }

  private laggardLink(message: Message): boolean {
    return this.laggards.size > 0 && (this.laggards.has(message.to) || this.laggards.has(message.from));
  }

  private delay(message: Message): number {
    const maxDelay = this.scenario.maxDelay;
    return 1 + this.rng.nextInt(this.laggardLink(message) ? maxDelay * LAGGARD_DELAY_FACTOR : maxDelay);
  }

  private enqueue(message: Message): void {
    const delay = this.delay(message);
    (this.buckets[(this.time + delay) % this.buckets.length] as Message[]).push(message);
    if (this.chance(this.duplicateRate)) {
      const again = this.delay(message);
      (this.buckets[(this.time + again) % this.buckets.length] as Message[]).push(message);
    }
  }

  private connected(from: ReplicaId, to: ReplicaId): boolean {
    return (this.group.get(from) ?? 0) === (this.group.get(to) ?? 0);
  }

  private deliver(): void {
    const slot = this.time % this.buckets.length;
    const due = this.buckets[slot] as Message[];
    this.buckets[slot] = [];
    // Shuffle: messages due at the same time arrive in any order.
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.rng.nextInt(i + 1);
      const swap = due[i] as Message;
      due[i] = due[j] as Message;
      due[j] = swap;
    }
    for (const message of due) {
      const target = this.replicas.get(message.to);
      const delivered =
        target !== undefined &&
        target.alive &&
        this.connected(message.from, message.to) &&
        !this.chance(this.lossRate) &&
        !(this.laggardLink(message) && this.chance(this.laggardLossRate));
      if (message.type === MessageType.Snapshot) {
        // The host reports every snapshot send's outcome (the Ready contract's transport side).
        const sender = this.replicas.get(message.from);
        if (sender?.alive === true) {
          sender.node.reportSnapshot(message.to, delivered ? 'finish' : 'failure');
          this.steps.afterSnapshotReport(sender, message.to);
        }
      }
      if (delivered) {
        target.node.step(message);
        this.steps.afterStep(target, 'message', message);
      }
    }
  }

  private processReadies(): void {
    const crashRate = this.scenario.crashRate;
    for (const replica of this.replicas.values()) {
      if (!replica.alive) continue;
      // A power cut in the middle of a Ready: after persisting, before sending — or, for a
      // leader that sends first, after sending, before persisting. That second window is
      // where a leader's unsynced entries are lost, so a Ready with entries gets a cut there
      // four times as often (the same draw: a run is unchanged up to its first cut).
      const roll = crashRate > 0 ? this.rng.nextInt(1_000_000) : 1_000_000;
      const powerCut = roll < (crashRate / 20) * 1_000_000;
      this.earlyPowerCutDue = roll < (crashRate / 5) * 1_000_000;
      const messages = replica.processReady(this.observer, this.earlySend);
      if (!replica.alive || (powerCut && messages.length > 0)) {
        this.crash(replica);
        continue;
      }
      for (const message of messages) this.enqueue(message);
    }
  }

  private crash(replica: TestReplica): void {
    replica.crash();
    this.restartAt.set(replica.id, this.time + SUBSTEPS_PER_TICK * (5 + this.rng.nextInt(30)));
  }

  /** Restarts from what the replica persisted; the checker sees that state first. */
  private restart(replica: TestReplica): void {
    const persisted = replica.storage.initialState().hardState;
    replica.restart();
    this.steps.onRestart(replica, persisted.term, persisted.commit);
  }

  private chaosEvents(): void {
    const s = this.scenario;
    if (this.figureEight !== undefined) {
      const move = this.figureEight.tick(this.nowTicks, [...this.replicas.values()]);
      if (move !== undefined) {
        this.group = move.groups;
        if (move.crash !== undefined) this.crash(move.crash);
      }
    } else if (this.chance(s.partitionRate)) {
      this.group = new Map();
      for (const id of this.replicas.keys()) this.group.set(id, this.rng.nextInt(2));
    } else if (this.group.size > 0 && this.chance(0.05)) {
      this.group = new Map();
    }
    for (const replica of this.replicas.values()) {
      if (replica.alive && this.chance(s.crashRate)) this.crash(replica);
    }
    if (this.chance(s.confChangeRate)) this.changeMembership();
    if (this.chance(s.transferRate)) {
      const leader = this.leaders()[0];
      const voters = leader?.node.status().confState.voters ?? [];
      const target = voters[this.rng.nextInt(Math.max(1, voters.length))];
      if (leader !== undefined && target !== undefined) {
        leader.node.transferLeader(target);
        this.steps.afterStep(leader, 'transfer');
      }
    }
  }

  private restartDue(): void {
    for (const [id, at] of this.restartAt) {
      if (at > this.time) continue;
      this.restartAt.delete(id);
      const replica = this.replicas.get(id);
      if (replica !== undefined) this.restart(replica);
    }
  }

  private changeMembership(): void {
    const leader = this.leaders()[0];
    if (leader === undefined) return;
    const { voters, learners } = leader.node.status().confState;
    const learner = learners[0];
    if (learner !== undefined) {
      leader.node.proposeConfChange({ type: ConfChangeType.AddVoter, replicaId: learner, context: utf8('{}') });
    } else if (voters.length > 3 && this.rng.nextInt(2) === 0) {
      const victim = voters[this.rng.nextInt(voters.length)] as number;
      leader.node.proposeConfChange({ type: ConfChangeType.RemoveReplica, replicaId: victim, context: new Uint8Array(0) });
    } else if (voters.length < 5) {
      const id = this.nextReplicaId;
      const result = leader.node.proposeConfChange({ type: ConfChangeType.AddLearner, replicaId: id, context: utf8('{}') });
      if (result.ok) {
        this.nextReplicaId++;
        this.replicas.set(id, new TestReplica(id, new MemoryStorage(), this.scenario.options, this.scenario.seed));
      }
    }
    this.steps.afterStep(leader, 'call');
  }

  private clientRequests(chaos: boolean): void {
    // After healing only the liveness marker is proposed, so a backlog cannot hide progress.
    if (chaos && this.rng.nextInt(2) === 0) {
      const leader = this.leaders()[this.rng.nextInt(Math.max(1, this.leaders().length))];
      if (leader !== undefined) {
        leader.node.propose(utf8(`chaos-${this.scenario.seed}-${this.proposals++}`));
        this.steps.afterStep(leader, 'call');
      }
    }
    if (this.rng.nextInt(5) === 0) {
      const replica = this.randomReplica();
      if (replica.alive) {
        const key = `read-${this.time}-${replica.id}`;
        this.reads.set(key, { replica: replica.id, requiredIndex: this.checker.maxCommitted });
        replica.node.readIndex(utf8(key));
        this.steps.afterStep(replica, 'call');
      }
    }
  }

  private substep(chaos: boolean): void {
    if (this.time % SUBSTEPS_PER_TICK === 0) {
      this.steps.now = this.nowTicks;
      for (const replica of this.replicas.values()) {
        if (!replica.alive) continue;
        replica.node.tick();
        this.steps.afterStep(replica, 'tick');
      }
      if (chaos) this.chaosEvents();
      this.restartDue();
      this.clientRequests(chaos);
    }
    this.deliver();
    this.processReadies();
    this.time++;
  }

  /** Runs chaos, then heals and checks liveness. Throws {@link SafetyViolation} on any failure. */
  run(): RunResult {
    const s = this.scenario;
    for (let tick = 0; tick < s.chaosTicks; tick++) {
      for (let i = 0; i < SUBSTEPS_PER_TICK; i++) this.substep(true);
    }
    // Heal: no loss, no partitions, everyone back up.
    this.group = new Map();
    this.lossRate = 0;
    this.duplicateRate = 0;
    this.laggardLossRate = 0;
    for (const replica of this.replicas.values()) if (!replica.alive) this.restart(replica);
    this.restartAt.clear();
    const marker = `liveness-${s.seed}`;
    let proposedAt = -1;
    for (let tick = 0; tick < s.livenessTicks; tick++) {
      const leader = this.leaders()[0];
      if (leader !== undefined && proposedAt < 0) {
        const result = leader.node.propose(utf8(marker));
        this.steps.afterStep(leader, 'call');
        if (result.ok) proposedAt = tick;
      }
      for (let i = 0; i < SUBSTEPS_PER_TICK; i++) this.substep(false);
      const current = this.leaders();
      if (current.length === 1) {
        const { voters } = (current[0] as TestReplica).node.status().confState;
        const done = voters.every((id) => this.replicas.get(id)?.texts.includes(marker) ?? false);
        if (done) {
          return {
            seed: s.seed,
            shape: s.shape,
            ticks: s.chaosTicks + tick,
            leaderTerms: this.checker.terms,
            committed: this.checker.maxCommitted,
            livenessTicks: tick,
            reads: this.readsAnswered,
          };
        }
      }
      // A proposal lost to a leader change is retried.
      if (proposedAt >= 0 && tick - proposedAt > 40) proposedAt = -1;
    }
    const states = [...this.replicas.values()].map((r) => {
      const st = r.node.status();
      return `${r.id}:${st.role}/t${st.term}/c${st.commit}/a${st.applied}/lead${st.leaderId}/v[${st.confState.voters.join(',')}]l[${st.confState.learners.join(',')}]`;
    });
    throw new SafetyViolation(
      `seed ${s.seed} (replay: SEED=${s.seed}): liveness: no proposal committed on all voters within ${s.livenessTicks} ticks after healing; ${states.join(' ')}`,
    );
  }
}

export { Role };
