/**
 * A storage node's Prometheus metrics and readiness rule, served by the shared
 * endpoint (`src/common/metrics-server.ts`).
 *
 * Two kinds of metric: state that is sampled at scrape time from the host (Raft term,
 * commit and applied index per shard, replica and leader counts, transport counters)
 * and events counted as they happen (leader changes, dropped proposals, snapshots,
 * WAL fsync latency), which the host and its replicas report through
 * {@link RaftHostEvents}. Sampling keeps the hot path free of metric work; events
 * that would be missed between scrapes are counted.
 * @internal
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Readiness } from '../common/index.js';
import { type Entry, Role } from '../raft/index.js';
import type { RaftHost } from './raft-host.js';
import type { Replica } from './replica.js';
import type { RejectReason } from './message-check.js';
import { RequestMetrics } from './request-metrics.js';

/** What a replica reports as it happens (optional: tests build replicas without it). */
export interface ReplicaEvents {
  /** The replica learned of a new leader (itself or another) for its shard. */
  leaderChanged(shardId: number): void;
  /** A client write was not appended (`reason` from the Raft core), or its entry was overwritten. */
  proposalDropped(shardId: number, reason: string): void;
  /** The replica snapshotted its state machine and compacted its log. */
  snapshotCreated(shardId: number): void;
  /** The replica replaced its state with a leader's snapshot. */
  snapshotInstalled(shardId: number): void;
  /** A leader took `count` reads: answered under its lease, or sent through a ReadIndex round. */
  readsServed(shardId: number, path: 'lease' | 'read_index', count: number): void;
  /** Applying an entry removed `count` keys whose expiry its log time reached. */
  keysExpired(shardId: number, count: number): void;
  /** A committed entry was applied to the replica's state machine (the simulator's checks; not counted). */
  entryApplied?(replica: Replica, entry: Entry): void;
}

/** What the host reports as it happens: the replicas' events plus the WAL's and the inbound gate's. */
export interface RaftHostEvents extends ReplicaEvents {
  /** One group-commit fsync of the node's WAL took `seconds`. */
  walSynced(seconds: number): void;
  /** A message or snapshot from a peer was refused before reaching a replica (`inbound-gate.ts`); `detail` says what was wrong. */
  messageRejected?(reason: RejectReason, detail: string): void;
}

/**
 * WAL fsync buckets in seconds: 50 µs to ~3.3 s, doubling. A page-cache fsync on tmpfs
 * takes microseconds, an SSD's one to a few milliseconds; anything past 100 ms stalls
 * every group on the node (the election timeout is 0.5–1 s).
 */
const FSYNC_BUCKETS_SECONDS = Array.from({ length: 17 }, (_, i) => 0.00005 * 2 ** i);

/** What the readiness rule needs beyond the host. */
export interface NodeReadinessSource {
  /** True once the manager has answered Register (always true when running without a manager). */
  registered(): boolean;
}

/** The node's registry, its request metrics and the event counters. */
export class NodeMetrics implements RaftHostEvents {
  /** Everything `/metrics` serves. */
  readonly registry = new Registry();
  /** Client request counters and latency (also feeds the manager heartbeat). */
  readonly requests = new RequestMetrics(this.registry);
  private readonly leaderChanges: Counter<'shard'>;
  private readonly proposalsDropped = new Counter({
    name: 'kvstore_node_proposals_dropped_total',
    help: 'Client writes a leader could not append (reason from Raft) or whose entry a new leader overwrote (superseded)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  private readonly keysExpiredCounter = new Counter({
    name: 'kvstore_node_keys_expired_total',
    help: 'Keys removed because their TTL ran out, counted by every replica that applied the removal (each shard\'s K replicas)',
    registers: [this.registry],
  });
  private readonly snapshotsCreated = new Counter({
    name: 'kvstore_node_snapshots_created_total',
    help: 'State-machine snapshots taken (each followed by log compaction)',
    registers: [this.registry],
  });
  private readonly snapshotsInstalled = new Counter({
    name: 'kvstore_node_snapshots_installed_total',
    help: 'Snapshots received from a leader and installed',
    registers: [this.registry],
  });
  private readonly reads = new Counter({
    name: 'kvstore_node_reads_total',
    help: 'Reads a leader took: answered under its lease (path="lease") or confirmed by a ReadIndex round (path="read_index")',
    labelNames: ['path'],
    registers: [this.registry],
  });
  private readonly messagesRejected = new Counter({
    name: 'kvstore_node_raft_messages_rejected_total',
    help: 'Raft messages and snapshots from peers refused before reaching a replica, by reason (unknown_replica is routine; any other is a peer sending what a correct node never does)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  private readonly fsyncDuration = new Histogram({
    name: 'kvstore_node_wal_fsync_duration_seconds',
    help: 'Duration of the WAL group-commit fsync, one per host-loop turn that wrote',
    buckets: FSYNC_BUCKETS_SECONDS,
    registers: [this.registry],
  });

  /** True: series per shard (`{shard}` labels), which multiply by the shards hosted. */
  private readonly perShard: boolean;

  /**
   * @param options.perShard Export per-shard series (`kvstore node --metrics-per-shard`): a
   *   node with thousands of replicas would serve thousands of lines per series, so by default
   *   `/metrics` holds node totals only and per-shard state is in `kvstore status`.
   */
  constructor(options: { perShard?: boolean } = {}) {
    this.perShard = options.perShard === true;
    this.leaderChanges = new Counter({
      name: 'kvstore_node_leader_changes_seen_total',
      help: this.perShard
        ? 'Leader changes seen by this node\'s replica of each shard (elections, transfers)'
        : 'Leader changes seen by this node\'s replicas (elections, transfers); per shard with --metrics-per-shard',
      labelNames: this.perShard ? ['shard'] : [],
      registers: [this.registry],
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Counts a leader change of `shardId`. */
  leaderChanged(shardId: number): void {
    if (this.perShard) this.leaderChanges.inc({ shard: shardId });
    else this.leaderChanges.inc();
  }

  /** Counts a dropped proposal. */
  proposalDropped(_shardId: number, reason: string): void {
    this.proposalsDropped.inc({ reason });
  }

  /** Counts keys removed by expiry. */
  keysExpired(_shardId: number, count: number): void {
    this.keysExpiredCounter.inc(count);
  }

  /** Counts a snapshot taken. */
  snapshotCreated(): void {
    this.snapshotsCreated.inc();
  }

  /** Counts a snapshot installed. */
  snapshotInstalled(): void {
    this.snapshotsInstalled.inc();
  }

  /** Counts reads by how the leader confirmed them. */
  readsServed(_shardId: number, path: 'lease' | 'read_index', count: number): void {
    this.reads.inc({ path }, count);
  }

  /** Counts a message or snapshot refused from a peer. */
  messageRejected(reason: RejectReason): void {
    this.messagesRejected.inc({ reason });
  }

  /** Observes one WAL fsync. */
  walSynced(seconds: number): void {
    this.fsyncDuration.observe(seconds);
  }

  /** The gauge of peers this node cannot connect to (`peer-reachability.ts`). */
  observeReachability(unreachable: () => number): void {
    new Gauge({
      name: 'kvstore_node_peers_unreachable', help: 'Peer nodes this node cannot connect to now (refused, timed out, TLS refused)',
      registers: [this.registry], collect() { this.set(unreachable()); },
    });
  }

  /**
   * Counts the Raft message streams this node opened, by wire (`tcp-peer-links.ts`: "tcp", or
   * "grpc" for a peer that does not speak it), and those it refused (`peer-listener.ts`).
   */
  observePeerStreams(opened: () => { tcp: number; grpc: number }, refused: () => number): void {
    new Counter({
      name: 'kvstore_node_peer_streams_opened_total',
      help: 'Raft message streams this node opened to peers, by wire: tcp, or grpc for a peer that does not speak it (an older node)',
      labelNames: ['wire'], registers: [this.registry],
      collect() {
        this.reset();
        const counts = opened();
        this.inc({ wire: 'tcp' }, counts.tcp);
        this.inc({ wire: 'grpc' }, counts.grpc);
      },
    });
    new Counter({
      name: 'kvstore_node_peer_streams_refused_total',
      help: 'Raft message streams from peers this node refused (no trusted server certificate, or no valid token)',
      registers: [this.registry],
      collect() { this.reset(); this.inc(refused()); },
    });
  }

  /** Registers the gauges and counters sampled from `host` at each scrape. */
  observe(host: RaftHost): void {
    const registers = [this.registry];
    const replicas = (): IterableIterator<Replica> => host.replicas();
    new Gauge({
      name: 'kvstore_node_replicas', help: 'Replicas hosted by this node', registers,
      collect() { this.set([...replicas()].length); },
    });
    new Gauge({
      name: 'kvstore_node_leaders', help: 'Replicas of this node that lead their shard', registers,
      collect() { this.set([...replicas()].filter((replica) => replica.role === Role.Leader).length); },
    });
    new Gauge({
      name: 'kvstore_node_keys', help: 'Keys held by this node over all replicas', registers,
      collect() { this.set([...replicas()].reduce((sum, replica) => sum + replica.machine.keyCount, 0)); },
    });
    new Gauge({
      name: 'kvstore_node_requests_waiting', help: 'Client requests queued or proposed and not yet answered', registers,
      collect() { this.set([...replicas()].reduce((sum, replica) => sum + replica.waitingRequests, 0)); },
    });
    new Gauge({
      name: 'kvstore_node_replicas_leaderless', help: 'Replicas of this node whose shard has no known leader (an election is running, or the group lost its quorum)', registers,
      collect() { this.set([...replicas()].filter((replica) => !replica.removed && replica.leaderId === 0).length); },
    });
    new Gauge({
      name: 'kvstore_node_replicas_quiesced', help: 'Replicas of this node whose group sleeps: idle and fully replicated, no ticks or heartbeats (quiescence.ts)', registers,
      collect() { this.set([...replicas()].filter((replica) => replica.quiesced).length); },
    });
    new Gauge({
      name: 'kvstore_node_requests_waiting_for_leader', help: 'Client requests held at followers until their shard\'s new leader is known (leader-wait.ts)', registers,
      collect() { this.set(host.leaderWait.size); },
    });
    if (this.perShard) {
      const perShard = (name: string, help: string, value: (replica: Replica) => number): void => {
        new Gauge({
          name, help, labelNames: ['shard'], registers,
          collect() {
            // Reset first: a destroyed replica's series must disappear, not freeze.
            this.reset();
            for (const replica of replicas()) if (!replica.removed) this.set({ shard: replica.shardId }, value(replica));
          },
        });
      };
      perShard('kvstore_node_raft_term', 'Current Raft term of this node\'s replica of each shard', (replica) => replica.rawNode.status().term);
      perShard('kvstore_node_raft_commit_index', 'Highest log index known committed, per shard', (replica) => replica.rawNode.status().commit);
      perShard('kvstore_node_raft_applied_index', 'Highest log index applied to the state machine, per shard', (replica) => replica.machine.appliedIndex);
      perShard('kvstore_node_raft_is_leader', '1 when this node\'s replica leads the shard, else 0', (replica) => (replica.role === Role.Leader ? 1 : 0));
      perShard('kvstore_node_raft_epoch', 'Configuration version of each shard as applied here', (replica) => replica.machine.epoch);
    }
    new Counter({
      name: 'kvstore_node_raft_turns_total', help: 'Host loop turns (each runs every marked replica once)', registers,
      collect() { this.reset(); this.inc(host.stats.turns); },
    });
    new Counter({
      name: 'kvstore_node_wal_syncs_total', help: 'WAL group-commit fsyncs', registers,
      collect() { this.reset(); this.inc(host.stats.syncs); },
    });
    new Counter({
      name: 'kvstore_node_raft_light_turns_total', help: 'Light turns: heartbeats and their answers sent while a WAL fsync was in flight', registers,
      collect() { this.reset(); this.inc(host.stats.lightTurns); },
    });
    new Gauge({
      name: 'kvstore_node_wal_bytes', help: 'Bytes of WAL segments on disk (bounded by the purge threshold plus a segment)', registers,
      collect() { this.set(host.logBytes()); },
    });
    new Gauge({
      name: 'kvstore_node_wal_fsync_inline', help: '1 while the WAL fsyncs on the node\'s own thread (its disk proved fast), 0 while on the I/O thread pool', registers,
      collect() { this.set(host.fsyncsInline() ? 1 : 0); },
    });
    new Counter({
      name: 'kvstore_node_transport_messages_total', help: 'Raft messages to peers, sent or dropped (queue full, peer unreachable)',
      labelNames: ['outcome'], registers,
      collect() {
        this.reset();
        this.inc({ outcome: 'sent' }, host.transport.stats.messages);
        this.inc({ outcome: 'dropped' }, host.transport.stats.dropped);
      },
    });
    new Counter({
      name: 'kvstore_node_transport_batches_total', help: 'SendRequests written to peer streams (each carries every message of one turn for that peer)',
      registers,
      collect() { this.reset(); this.inc(host.transport.stats.batches); },
    });
    new Counter({
      name: 'kvstore_node_snapshots_sent_total', help: 'Snapshots streamed to peers, by outcome', labelNames: ['outcome'], registers,
      collect() {
        this.reset();
        this.inc({ outcome: 'accepted' }, host.transport.stats.snapshotsSent);
        this.inc({ outcome: 'failed' }, host.transport.stats.snapshotsFailed);
      },
    });
  }
}

/**
 * Ready once registered with the manager and every hosted replica knows its shard's
 * leader — a request routed here now is served or redirected, not stalled.
 */
export function nodeReadiness(host: RaftHost, source: NodeReadinessSource): Readiness {
  if (!source.registered()) return { ready: false, reason: 'not registered with the manager' };
  const leaderless: number[] = [];
  for (const replica of host.replicas()) if (!replica.removed && replica.leaderId === 0) leaderless.push(replica.shardId);
  if (leaderless.length === 0) return { ready: true };
  leaderless.sort((a, b) => a - b);
  const shown = leaderless.slice(0, 10).join(', ') + (leaderless.length > 10 ? ', …' : '');
  return { ready: false, reason: `${leaderless.length} replica(s) without a known leader (shards ${shown})` };
}
