/**
 * The manager's durable state: `<data-dir>/state.json`, replaced atomically
 * (write a temp file, fsync it, rename it over the old one, fsync the directory),
 * so a crash leaves either the old or the new state, never a torn one.
 */
import { mkdirSync } from 'node:fs';
import { readFileIfExists, writeFileAtomicSync } from '../common/index.js';
import { join } from 'node:path';
import type { ReplicaMember } from '../gen/kvstore/v1/manager.js';
import { ManagerError } from './errors.js';
import type { MovePhase, MoveReason, MoveTask, NodeRecord, ReplicaRef, ShardRecord } from './types.js';

/** Version of the state file's format. */
export const STATE_FORMAT_VERSION = 1;

/** Everything the manager persists. */
export interface PersistedState {
  version: number;
  shardCount: number;
  replicationFactor: number;
  /** Next replica id to allocate; ids are never reused. */
  nextReplicaId: number;
  /** True once the initial placement has been made. */
  bootstrapped: boolean;
  nodes: NodeRecord[];
  shards: ShardRecord[];
  tasks: MoveTask[];
}

/** Reads and writes `state.json` in one directory. */
export class StateStore {
  readonly directory: string;
  readonly path: string;

  /** Creates the directory if needed. */
  constructor(directory: string) {
    this.directory = directory;
    this.path = join(directory, 'state.json');
    mkdirSync(directory, { recursive: true });
  }

  /**
   * The saved state, or null when there is none yet.
   * @throws ManagerError STATE_CORRUPT when the file exists but is not a valid state.
   */
  load(): PersistedState | null {
    const text = readFileIfExists(this.path);
    if (text === undefined) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new ManagerError('STATE_CORRUPT', `${this.path} is not valid JSON`, { cause: error });
    }
    return parsePersistedState(parsed, this.path);
  }

  /** Replaces the state file atomically and durably; returns once it is on disk. */
  save(state: PersistedState): void {
    writeFileAtomicSync(this.path, JSON.stringify(state) + '\n');
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates a parsed state file field by field.
 * @throws ManagerError STATE_CORRUPT naming the first bad field.
 */
export function parsePersistedState(value: unknown, source = 'state'): PersistedState {
  const fail = (what: string): never => { throw new ManagerError('STATE_CORRUPT', `${source}: bad ${what}`); };
  const object = (v: unknown, what: string): Json => (isObject(v) ? v : fail(what));
  const integer = (v: unknown, what: string): number => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fail(what));
  const text = (v: unknown, what: string): string => (typeof v === 'string' ? v : fail(what));
  const flag = (v: unknown, what: string): boolean => (typeof v === 'boolean' ? v : fail(what));
  const list = (v: unknown, what: string): unknown[] => (Array.isArray(v) ? v : fail(what));
  const nullable = <T>(v: unknown, read: (x: unknown) => T): T | null => (v === null ? null : read(v));
  const member = (v: unknown): ReplicaMember => {
    const m = object(v, 'member');
    return { replicaId: integer(m['replicaId'], 'member.replicaId'), nodeId: text(m['nodeId'], 'member.nodeId'), learner: flag(m['learner'], 'member.learner') };
  };
  const ref = (v: unknown): ReplicaRef => {
    const r = object(v, 'replica');
    return { replicaId: integer(r['replicaId'], 'replica.replicaId'), nodeId: text(r['nodeId'], 'replica.nodeId') };
  };
  const oneOf = <T extends string>(v: unknown, allowed: readonly T[], what: string): T =>
    (typeof v === 'string' && (allowed as readonly string[]).includes(v) ? (v as T) : fail(what));

  const root = object(value, 'root');
  if (root['version'] !== STATE_FORMAT_VERSION) fail(`version (expected ${STATE_FORMAT_VERSION})`);
  const nodes = list(root['nodes'], 'nodes').map((v): NodeRecord => {
    const n = object(v, 'node');
    const record: NodeRecord = { nodeId: text(n['nodeId'], 'node.nodeId'), address: text(n['address'], 'node.address'), metricsPort: integer(n['metricsPort'], 'node.metricsPort') };
    // Absent in state files written before `node drain`.
    if (n['draining'] !== undefined && flag(n['draining'], 'node.draining')) record.draining = true;
    return record;
  });
  const shards = list(root['shards'], 'shards').map((v, index): ShardRecord => {
    const s = object(v, 'shard');
    const shardId = integer(s['shardId'], 'shard.shardId');
    if (shardId !== index) fail(`shard.shardId ${shardId} at position ${index}`);
    return {
      shardId,
      epoch: integer(s['epoch'], 'shard.epoch'),
      members: list(s['members'], 'shard.members').map(member),
      leaderNodeId: nullable(s['leaderNodeId'], (x) => text(x, 'shard.leaderNodeId')),
      term: integer(s['term'], 'shard.term'),
      commitIndex: integer(s['commitIndex'], 'shard.commitIndex'),
      firstLeaderNodeId: nullable(s['firstLeaderNodeId'], (x) => text(x, 'shard.firstLeaderNodeId')),
    };
  });
  const reasons: readonly MoveReason[] = ['replace-down', 'add-missing', 'rebalance', 'drain'];
  const phases: readonly MovePhase[] = ['create', 'add-learner', 'catch-up', 'promote', 'transfer-leader', 'remove'];
  const tasks = list(root['tasks'], 'tasks').map((v): MoveTask => {
    const t = object(v, 'task');
    return {
      shardId: integer(t['shardId'], 'task.shardId'),
      reason: oneOf(t['reason'], reasons, 'task.reason'),
      from: nullable(t['from'], ref),
      to: ref(t['to']),
      phase: oneOf(t['phase'], phases, 'task.phase'),
      startedAtMs: integer(t['startedAtMs'], 'task.startedAtMs'),
    };
  });
  const shardCount = integer(root['shardCount'], 'shardCount');
  if (shards.length !== shardCount) fail('shards (count differs from shardCount)');
  return {
    version: STATE_FORMAT_VERSION,
    shardCount,
    replicationFactor: integer(root['replicationFactor'], 'replicationFactor'),
    nextReplicaId: integer(root['nextReplicaId'], 'nextReplicaId'),
    bootstrapped: flag(root['bootstrapped'], 'bootstrapped'),
    nodes,
    shards,
    tasks,
  };
}
