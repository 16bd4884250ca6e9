/**
 * Whether this node can connect to each peer, from its gRPC channels' connectivity: a channel in
 * TRANSIENT_FAILURE (refused, timed out, TLS refused) makes the peer unreachable, READY makes it
 * reachable again. Each change is one log line (warn when lost, with the last error its stream
 * ended with; info when back), the count is a gauge, and the list goes to the manager with every
 * heartbeat, so `kvstore status` shows why a shard has no leader. Outside the Raft turn: nothing
 * here sends, syncs or applies.
 */
import { connectivityState } from '@grpc/grpc-js';
import type { Logger } from '../common/index.js';

export class PeerReachability {
  private readonly unreachable = new Map<string, { address: string; sinceMs: number }>();
  private readonly lastError = new Map<string, string>();

  constructor(private readonly log: Logger, private readonly now: () => number = Date.now) {}

  /** A stream to `nodeId` ended with `error`: kept for the next "unreachable" line. */
  streamFailed(nodeId: string, error: string): void {
    this.lastError.set(nodeId, error);
  }

  /** The channel to `nodeId` moved to `state`. */
  channelState(nodeId: string, address: string, state: connectivityState): void {
    if (state === connectivityState.TRANSIENT_FAILURE) {
      if (this.unreachable.has(nodeId)) return;
      this.unreachable.set(nodeId, { address, sinceMs: this.now() });
      this.log.warn('peer unreachable', { peer: nodeId, address, error: this.lastError.get(nodeId) ?? 'cannot connect' });
    } else if (state === connectivityState.READY) {
      const was = this.unreachable.get(nodeId);
      if (was === undefined) return;
      this.unreachable.delete(nodeId);
      this.lastError.delete(nodeId);
      this.log.info('peer reachable again', { peer: nodeId, address, unreachableForMs: this.now() - was.sinceMs });
    }
  }

  /** The peer left the cluster or its address changed: whatever was said of it no longer holds. */
  forget(nodeId: string): void {
    this.unreachable.delete(nodeId);
    this.lastError.delete(nodeId);
  }

  /** Peers this node cannot reach now, sorted. */
  peers(): string[] {
    return [...this.unreachable.keys()].sort();
  }
}
