/**
 * What a node must remember beyond the WAL: the cluster's shard count (so it can
 * serve clients with the manager down) and, for each hosted shard, its replica id
 * and bootstrap members (the WAL keeps Raft state by shard id only, and the
 * bootstrap configuration is not in any log entry). Kept in `<data-dir>/node.json`,
 * rewritten with temp file + fsync + rename, and only on rare events (register,
 * replica created or destroyed) — never on the data path.
 * @internal
 */
import { diskTextFiles, type TextFileStore } from '../common/index.js';
import { join } from 'node:path';
import type { ShardMember } from './kv-state-machine.js';

/** One hosted replica as recorded on disk. */
export interface HostedReplicaRecord {
  replicaId: number;
  /** The group's bootstrap members; empty when the replica joined an existing group. */
  bootstrapMembers: ShardMember[];
}

interface NodeStateData {
  shardCount: number;
  replicas: Record<string, HostedReplicaRecord>;
}

/** The node's small persistent state. `dataDir` undefined keeps it in memory (tests). */
export class NodeStateFile {
  private data: NodeStateData = { shardCount: 0, replicas: {} };
  private readonly file: string | undefined;
  /** Inside {@link batch}: saves wait for its end. */
  private batching = false;
  /** A save was deferred by the running batch. */
  private unsaved = false;

  /** `files`: where the file lives (default the real disk; the simulator's disk in test/sim). */
  constructor(dataDir?: string, private readonly files: TextFileStore = diskTextFiles) {
    this.file = dataDir === undefined ? undefined : join(dataDir, 'node.json');
    if (this.file !== undefined) this.load(this.file);
  }

  private load(file: string): void {
    const text = this.files.readIfExists(file);
    if (text === undefined) return;
    const parsed = JSON.parse(text) as Partial<NodeStateData>;
    this.data = {
      shardCount: typeof parsed.shardCount === 'number' ? parsed.shardCount : 0,
      replicas: typeof parsed.replicas === 'object' ? parsed.replicas : {},
    };
  }

  /** The cluster's shard count; 0 until the manager told us. */
  get shardCount(): number {
    return this.data.shardCount;
  }

  set shardCount(count: number) {
    if (count === this.data.shardCount) return;
    this.data.shardCount = count;
    this.save();
  }

  /** Every recorded replica by shard id. */
  replicas(): [number, HostedReplicaRecord][] {
    return Object.entries(this.data.replicas).map(([shardId, record]) => [Number(shardId), record]);
  }

  /** The record of the shard's replica, if hosted. */
  replica(shardId: number): HostedReplicaRecord | undefined {
    return this.data.replicas[String(shardId)];
  }

  /**
   * Runs `fn` with one save at its end instead of one per record it sets: a heartbeat answer
   * that creates thousands of replicas writes this file once, not once per replica (a whole
   * rewrite each: quadratic). The file is durable when this returns; a replica recorded
   * inside takes no part in its group before then (nothing runs until `fn` returns: its first
   * turn comes later). A crash before the save leaves WAL groups with no record, which
   * start-up drops (`RaftHost.start`). Removals still save at once.
   */
  batch<T>(fn: () => T): T {
    if (this.batching) return fn();
    this.batching = true;
    try {
      return fn();
    } finally {
      this.batching = false;
      if (this.unsaved) this.save();
    }
  }

  /** Records a hosted replica; durable when this returns, or when the {@link batch} it runs in returns. */
  setReplica(shardId: number, record: HostedReplicaRecord): void {
    this.data.replicas[String(shardId)] = record;
    this.save();
  }

  /** Forgets a replica; durable when this returns, even inside a {@link batch}. */
  deleteReplica(shardId: number): void {
    if (this.data.replicas[String(shardId)] === undefined) return;
    delete this.data.replicas[String(shardId)];
    const batching = this.batching;
    this.batching = false;
    this.save();
    this.batching = batching;
  }

  private save(): void {
    if (this.batching) {
      this.unsaved = true;
      return;
    }
    this.unsaved = false;
    if (this.file === undefined) return;
    this.files.writeAtomic(this.file, JSON.stringify(this.data, null, 2) + '\n');
  }
}
