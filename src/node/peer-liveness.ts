/**
 * Which peer nodes this node heard from lately: the failure detector quiesced groups rely on
 * (`quiescence.ts`). Every `SendRequest` a peer sends counts, and each node's transport sends
 * an empty one to every peer it wrote nothing to for a heartbeat period
 * ({@link RaftTransport.keepAlive}), so a live peer is heard from several times per silence
 * window however many of its groups sleep — one small message per peer, not one per group.
 *
 * A peer is **live** while it was heard from within `silenceMs`. The host polls
 * {@link PeerLiveness.changes} every tick: a peer that went silent since the last poll, or
 * was heard again after a silence, wakes the quiesced groups it takes part in.
 * @internal
 */

/** What changed since the last poll. */
export interface LivenessChanges {
  /** Peers heard from before that fell silent. */
  silent: string[];
  /** Peers heard from again after a silence, or for the first time. */
  revived: string[];
}

/** Last-heard times of peer nodes. */
export class PeerLiveness {
  private readonly heardMs = new Map<string, number>();
  /** Peers reported silent and not heard since. */
  private readonly silent = new Set<string>();
  private readonly revived: string[] = [];

  /**
   * @param silenceMs How long a peer may send nothing and still count as live.
   * @param known Whether `nodeId` is a node of the cluster: only those are tracked, so a
   *   bad peer naming itself anything cannot grow the table.
   */
  constructor(
    private readonly silenceMs: number,
    private readonly known: (nodeId: string) => boolean,
  ) {}

  /** A batch arrived from `nodeId`. */
  heard(nodeId: string, nowMs: number): void {
    const first = !this.heardMs.has(nodeId);
    if (first && !this.known(nodeId)) return;
    this.heardMs.set(nodeId, nowMs);
    // First contact counts as coming back: a leader that slept without a member there (a
    // learner cut off since this node started) must catch it up.
    if (first || (this.silent.size !== 0 && this.silent.delete(nodeId))) this.revived.push(nodeId);
  }

  /** True while `nodeId` was heard from within the silence window. */
  isLive(nodeId: string, nowMs: number): boolean {
    const heardMs = this.heardMs.get(nodeId);
    return heardMs !== undefined && nowMs - heardMs <= this.silenceMs;
  }

  /** Peers that fell silent or came back since the last call. */
  changes(nowMs: number): LivenessChanges {
    const silent: string[] = [];
    for (const [nodeId, heardMs] of this.heardMs) {
      if (nowMs - heardMs > this.silenceMs && !this.silent.has(nodeId)) {
        this.silent.add(nodeId);
        silent.push(nodeId);
      }
    }
    return { silent, revived: this.revived.splice(0) };
  }

}
