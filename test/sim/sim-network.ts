/**
 * The simulated network between nodes: the `PeerLinks` each node's real `RaftTransport`
 * writes to. Every batch goes through the real `SendRequest` codec (so the receiver gets
 * what gRPC would hand it) and then meets its fate: a delay (with occasional spikes), loss,
 * duplication, reordering, or a cut link (one-way or two-way partitions). A stream over a
 * cut link breaks after a while, as a keepalive timeout would; a stream to a killed
 * process breaks at once, as a reset connection does. Both report a failure, which drives
 * the node's fast failover. A snapshot may arrive with a byte changed: the receiver's
 * checksum must refuse it, and the leader send it again.
 */
import type { RaftMessage, SendRequest } from '../../src/gen/kvstore/v1/raft.js';
import type { OutgoingSnapshot, PeerLinks, PeerStream, PeerStreamEvents } from '../../src/node/peer-links.js';
import type { TransportReceiver } from '../../src/node/raft-transport.js';
import { decodeSendRequest, encodeSendRequest } from '../../src/node/send-request-codec.js';
import type { SeededRandom } from '../../src/raft/index.js';
import type { SimProcess, SimScheduler } from './sim-scheduler.js';

/** How the network misbehaves (drawn per run from its seed; healing sets the rates to 0). */
export interface NetworkFaults {
  /** Probability that a batch is lost. */
  lossRate: number;
  /** Probability that a batch arrives twice. */
  duplicateRate: number;
  /** Batches on one stream may overtake each other (else they arrive in order, as on TCP). */
  reorder: boolean;
  /** Usual one-way delay range (ms). */
  minDelayMs: number;
  maxDelayMs: number;
  /** Probability of a delay spike, and its largest size (ms). */
  spikeRate: number;
  spikeMaxMs: number;
  /** Probability that a write reports a full buffer (the transport must wait for drain). */
  backpressureRate: number;
  /** Probability that a snapshot's data arrives with one byte changed (the receiver's checksum refuses it). */
  snapshotCorruptionRate: number;
}

/** A network with no faults: in-order, sub-millisecond. */
export const QUIET_NETWORK: NetworkFaults = {
  lossRate: 0, duplicateRate: 0, reorder: false, minDelayMs: 0.1, maxDelayMs: 1, spikeRate: 0, spikeMaxMs: 0, backpressureRate: 0,
  snapshotCorruptionRate: 0,
};

/** One node incarnation attached to the network. */
interface Endpoint {
  process: SimProcess;
  receiver: TransportReceiver;
  /** Streams this incarnation opened, so a kill can break them at the other end too. */
  streams: Set<SimStream>;
}

class SimStream implements PeerStream {
  ended = false;
  /** Global ms when the last batch arrives (FIFO order). */
  lastArrivalMs = 0;
  /** A break is scheduled (the link is cut). */
  breaking = false;

  constructor(
    readonly network: SimNetwork,
    readonly from: string,
    readonly to: string,
    readonly owner: SimProcess,
    readonly target: Endpoint | undefined,
    readonly events: PeerStreamEvents,
  ) {}

  write(batch: SendRequest): boolean {
    if (this.ended) return true;
    return this.network.carry(this, batch);
  }

  end(): void {
    this.ended = true;
  }

  /** Ends the stream with a failure, reported to its owner. */
  fail(reason: string, afterMs: number): void {
    if (this.ended) return;
    this.ended = true;
    this.network.scheduler.after(afterMs, this.owner, () => this.events.onEnd(reason));
  }
}

/** The network: nodes, cut links and the fault rates. */
export class SimNetwork {
  faults: NetworkFaults;
  private readonly endpoints = new Map<string, Endpoint>();
  /** Directed cuts `from>to`, counted: overlapping faults each lift only their own. */
  private readonly cuts = new Map<string, number>();
  /** Extra delay of directed slow links `from>to` (ms). */
  private readonly slowLinks = new Map<string, number>();
  /** Counters for reports; `snapshotsCorrupted` also bounds the checksum refusals the checker allows. */
  readonly stats = { batches: 0, lost: 0, duplicated: 0, cutDrops: 0, snapshots: 0, snapshotsCorrupted: 0 };
  /** Sees every message as its receiver gets it, after the codec (tests collect real traffic to mutate). */
  onDeliver: ((from: string, to: string, message: RaftMessage) => void) | undefined;

  constructor(
    readonly scheduler: SimScheduler,
    private readonly random: SeededRandom,
    faults: NetworkFaults,
  ) {
    this.faults = faults;
  }

  /** A node incarnation joins (at start or restart). */
  attach(nodeId: string, process: SimProcess, receiver: TransportReceiver): void {
    this.endpoints.set(nodeId, { process, receiver, streams: new Set() });
  }

  /** The node's process died: streams to it reset at once; its own streams are gone. */
  detach(nodeId: string): void {
    const endpoint = this.endpoints.get(nodeId);
    if (endpoint === undefined) return;
    this.endpoints.delete(nodeId);
    for (const stream of endpoint.streams) stream.ended = true;
    for (const other of this.endpoints.values()) {
      for (const stream of other.streams) if (stream.target === endpoint) stream.fail('connection reset', this.delay());
    }
  }

  /** The links of one node incarnation, for its `RaftTransport`. */
  links(nodeId: string, process: SimProcess): PeerLinks {
    return {
      openStream: (peer, _address, events) => this.openStream(nodeId, peer, process, events),
      sendSnapshot: (peer, _address, snapshot, cancelled) => this.sendSnapshot(nodeId, peer, process, snapshot, cancelled),
      reset: () => undefined,
      close: () => undefined,
    };
  }

  /** Cuts `from → to` (one way) until the returned function is called. */
  cut(from: string, to: string): () => void {
    const link = `${from}>${to}`;
    this.cuts.set(link, (this.cuts.get(link) ?? 0) + 1);
    let lifted = false;
    return () => {
      if (lifted) return;
      lifted = true;
      const count = (this.cuts.get(link) ?? 1) - 1;
      if (count <= 0) this.cuts.delete(link);
      else this.cuts.set(link, count);
    };
  }

  /** Cuts every link between the two sides, both ways, until the returned function is called. */
  partition(sideA: readonly string[], sideB: readonly string[]): () => void {
    const lifts: (() => void)[] = [];
    for (const a of sideA) {
      for (const b of sideB) {
        lifts.push(this.cut(a, b), this.cut(b, a));
      }
    }
    return () => {
      for (const lift of lifts) lift();
    };
  }

  /** Adds `extraMs` to every batch `from → to` until the returned function is called (a slow, congested link). */
  slowLink(from: string, to: string, extraMs: number): () => void {
    const link = `${from}>${to}`;
    this.slowLinks.set(link, (this.slowLinks.get(link) ?? 0) + extraMs);
    let lifted = false;
    return () => {
      if (lifted) return;
      lifted = true;
      const left = (this.slowLinks.get(link) ?? extraMs) - extraMs;
      if (left <= 0) this.slowLinks.delete(link);
      else this.slowLinks.set(link, left);
    };
  }

  /** Breaks the message streams between `a` and `b` both ways (a middlebox dropped the connections); both ends hear of it. */
  resetStreams(a: string, b: string): void {
    for (const [nodeId, endpoint] of this.endpoints) {
      if (nodeId !== a && nodeId !== b) continue;
      const peer = nodeId === a ? b : a;
      for (const stream of endpoint.streams) if (stream.to === peer) stream.fail('connection reset', 0);
    }
  }

  /** Restores every link and speed. */
  heal(): void {
    this.cuts.clear();
    this.slowLinks.clear();
  }

  /** True when `from → to` is cut. */
  isCut(from: string, to: string): boolean {
    return this.cuts.size > 0 && this.cuts.has(`${from}>${to}`);
  }

  private chance(probability: number): boolean {
    return probability > 0 && this.random.nextInt(1_000_000) < probability * 1_000_000;
  }

  /** One delivery delay (ms of global time). */
  delay(): number {
    const f = this.faults;
    let delayMs = f.minDelayMs + (this.random.nextInt(1000) / 1000) * (f.maxDelayMs - f.minDelayMs);
    if (this.chance(f.spikeRate)) delayMs += this.random.nextInt(Math.max(1, Math.floor(f.spikeMaxMs)));
    return delayMs;
  }

  private openStream(from: string, to: string, owner: SimProcess, events: PeerStreamEvents): PeerStream {
    const target = this.endpoints.get(to);
    const stream = new SimStream(this, from, to, owner, target, events);
    this.endpoints.get(from)?.streams.add(stream);
    // Nobody listens there (down, or restarting): the connection is refused.
    if (target === undefined) stream.fail('connection refused', this.delay());
    return stream;
  }

  /** Carries one batch of `stream`; returns what `write` returns. */
  carry(stream: SimStream, batch: SendRequest): boolean {
    this.stats.batches += 1;
    const target = stream.target;
    if (target === undefined || !target.process.alive) {
      stream.fail('connection reset', this.delay());
      return true;
    }
    if (this.isCut(stream.from, stream.to)) {
      this.stats.cutDrops += 1;
      this.breakLater(stream);
      return true;
    }
    if (this.chance(this.faults.lossRate)) {
      this.stats.lost += 1;
      return true;
    }
    const bytes = encodeSendRequest(batch);
    const copies = this.chance(this.faults.duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated += 1;
    for (let copy = 0; copy < copies; copy++) {
      let arrivalMs = this.scheduler.nowMs + this.delay() + (this.slowLinks.get(`${stream.from}>${stream.to}`) ?? 0);
      if (!this.faults.reorder) arrivalMs = Math.max(arrivalMs, stream.lastArrivalMs);
      stream.lastArrivalMs = arrivalMs;
      this.scheduler.at(arrivalMs, target.process, () => {
        if (this.isCut(stream.from, stream.to)) return; // cut while in flight
        const request = decodeSendRequest(bytes);
        target.receiver.heardFrom(request.fromNodeId);
        for (const message of request.messages) {
          this.onDeliver?.(request.fromNodeId, stream.to, message);
          target.receiver.deliver(request.fromNodeId, message);
        }
      });
    }
    if (this.chance(this.faults.backpressureRate)) {
      this.scheduler.after(this.delay(), stream.owner, () => {
        if (!stream.ended) stream.events.onDrain();
      });
      return false;
    }
    return true;
  }

  /** A stream over a cut link fails after a keepalive-like timeout, unless the link healed by then. */
  private breakLater(stream: SimStream): void {
    if (stream.breaking) return;
    stream.breaking = true;
    const timeoutMs = 200 + this.random.nextInt(5_000);
    this.scheduler.after(timeoutMs, stream.owner, () => {
      stream.breaking = false;
      if (this.isCut(stream.from, stream.to) && !stream.ended) stream.fail('keepalive timeout', 0);
    });
  }

  private sendSnapshot(
    from: string,
    to: string,
    owner: SimProcess,
    snapshot: OutgoingSnapshot,
    cancelled: () => boolean,
  ): Promise<boolean> {
    const { header, data, dataCrc32c } = snapshot;
    this.stats.snapshots += 1;
    const target = this.endpoints.get(to);
    return new Promise<boolean>((resolve) => {
      const refuse = (afterMs: number): void => this.scheduler.after(afterMs, owner, () => resolve(false));
      if (target === undefined || this.isCut(from, to) || this.chance(this.faults.lossRate)) {
        refuse(100 + this.random.nextInt(2_000));
        return;
      }
      const copy = Buffer.from(data);
      if (copy.length > 0 && this.chance(this.faults.snapshotCorruptionRate)) {
        this.stats.snapshotsCorrupted += 1;
        const at = this.random.nextInt(copy.length);
        copy[at] = (copy[at] as number) ^ (1 + this.random.nextInt(255));
      }
      const transferMs = this.delay() + data.length / 100_000; // ~100 MB/s
      this.scheduler.after(transferMs, target.process, () => {
        if (cancelled() || !target.process.alive || this.isCut(from, to)) return; // the sender's timeout below answers
        const accepted = target.receiver.deliverSnapshot(from, header, copy, dataCrc32c);
        this.scheduler.after(this.delay(), owner, () => resolve(accepted));
      });
      // A sender whose peer vanished mid-transfer learns it when the stream resets.
      this.scheduler.after(transferMs + 5_000, owner, () => resolve(false));
    });
  }
}
