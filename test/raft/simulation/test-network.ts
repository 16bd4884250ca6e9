/**
 * A deterministic in-process network for unit tests (etcd `raft_test.go`
 * `network`): messages are delivered in order until the group is quiet,
 * except those a test drops or isolates.
 */
import { MemoryStorage, MessageType, type Message, type ReplicaId } from '../../../src/raft/index.js';
import { TestReplica, type ReadyObserver, type ReplicaOptions } from './replica.js';

/** Returns true to drop a message. */
export type DropRule = (message: Message) => boolean;

export class TestNetwork {
  readonly replicas = new Map<ReplicaId, TestReplica>();
  /** Messages sent but not yet delivered. */
  pending: Message[] = [];
  private dropRules: DropRule[] = [];
  /** Every message ever delivered, for assertions. */
  readonly delivered: Message[] = [];
  observer: ReadyObserver | undefined;

  constructor(
    voters: ReplicaId[],
    readonly options: ReplicaOptions = {},
    readonly seed = 1,
    learners: ReplicaId[] = [],
  ) {
    for (const id of [...voters, ...learners]) this.add(id, new MemoryStorage({ confState: { voters, learners } }));
  }

  /** Adds a replica with its own storage (e.g. an uninitialized one). */
  add(id: ReplicaId, storage: MemoryStorage): TestReplica {
    const replica = new TestReplica(id, storage, this.options, this.seed);
    this.replicas.set(id, replica);
    return replica;
  }

  get(id: ReplicaId): TestReplica {
    const replica = this.replicas.get(id);
    if (replica === undefined) throw new Error(`no replica ${id}`);
    return replica;
  }

  drop(rule: DropRule): void {
    this.dropRules.push(rule);
  }

  /** Cuts `id` off from everyone. */
  isolate(id: ReplicaId): void {
    this.drop((m) => m.from === id || m.to === id);
  }

  /** Cuts the link between two replicas both ways. */
  cut(a: ReplicaId, b: ReplicaId): void {
    this.drop((m) => (m.from === a && m.to === b) || (m.from === b && m.to === a));
  }

  /** Drops every message of `type`. */
  ignore(type: MessageType): void {
    this.drop((m) => m.type === type);
  }

  heal(): void {
    this.dropRules = [];
  }

  /** Drains every replica's Ready into the pending queue. Returns true if any had one. */
  processReadies(): boolean {
    let any = false;
    for (const replica of this.replicas.values()) {
      if (!replica.alive || !replica.node.hasReady()) continue;
      any = true;
      for (const message of replica.processReady(this.observer)) this.pending.push(message);
    }
    return any;
  }

  /** Delivers pending messages once (those produced meanwhile wait). Returns how many were delivered. */
  deliverPending(): number {
    const batch = this.pending;
    this.pending = [];
    let count = 0;
    for (const message of batch) {
      if (this.dropRules.some((rule) => rule(message))) continue;
      const target = this.replicas.get(message.to);
      if (target === undefined || !target.alive) continue;
      this.delivered.push(message);
      target.node.step(message);
      count++;
    }
    return count;
  }

  /** Processes readies and delivers until nothing moves (bounded). */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      const readied = this.processReadies();
      const delivered = this.deliverPending();
      if (!readied && delivered === 0) return;
    }
    throw new Error('network did not stabilize');
  }

  /** Ticks every live replica `count` times, stabilizing after each tick. */
  tickAll(count: number): void {
    for (let i = 0; i < count; i++) {
      for (const replica of this.replicas.values()) if (replica.alive) replica.node.tick();
      this.stabilize();
    }
  }

  /** Ticks one replica until its election timeout surely passed, then stabilizes. */
  elect(id: ReplicaId): void {
    this.get(id).node.campaign();
    this.stabilize();
  }

  /** The replica ids currently claiming leadership. */
  leaders(): ReplicaId[] {
    return [...this.replicas.values()].filter((r) => r.alive && r.node.isLeader()).map((r) => r.id);
  }
}
