/**
 * The bound on one replica's waiting requests: writes queued for the next turn or proposed and
 * not yet applied, and reads queued, waiting for a ReadIndex round or for the state machine to
 * apply. Without it they grow for as long as something stalls the replica — a slow fsync, a lost
 * quorum until the request timeout — however much the clients send. Past it a request is
 * answered at once, not applied, and the client is told RESOURCE_EXHAUSTED (back off, retry).
 * @internal
 */

/**
 * Requests one replica holds waiting for an answer: 4,096.
 * Why: a shard's leader on the 2-core bench machine applies a few thousand writes a second, so
 * this is about a second of its work, and with the 3 s request timeout nothing waiting longer
 * would be answered usefully anyway. A replica takes at most a quarter of the node's
 * `MAX_NODE_REQUESTS_IN_FLIGHT`, so one hot shard cannot starve the others.
 * Trade-off: higher rides out longer stalls without refusing; lower refuses sooner and keeps
 * latency under overload shorter.
 */
export const MAX_REPLICA_WAITING_REQUESTS = 4096;

/**
 * Request bytes (`requestBytes` of `admission.ts`: key, value, client id and overhead) one
 * replica holds waiting: 8 MiB, the count bound at ~2 KiB each. Same trade-off.
 */
export const MAX_REPLICA_WAITING_BYTES = 8 * 1024 * 1024;

/** The bound a replica refused a request with. */
export type ReplicaRefusal = 'replica_requests' | 'replica_bytes';

/** A replica's waiting requests and bytes. */
export class ReplicaAdmission {
  private waitingRequests = 0;
  private waitingBytes = 0;

  constructor(
    private readonly maxRequests = MAX_REPLICA_WAITING_REQUESTS,
    private readonly maxBytes = MAX_REPLICA_WAITING_BYTES,
  ) {}

  /**
   * Admits a request of `bytes` whose answer goes to `callback`: returns the callback to hand on,
   * which gives the room back the first time it is called, or the bound that refused it (then
   * the caller answers it at once). A request is always admitted when nothing waits.
   */
  admit<T>(bytes: number, callback: (outcome: T) => void): ((outcome: T) => void) | ReplicaRefusal {
    if (this.waitingRequests >= this.maxRequests) return 'replica_requests';
    if (this.waitingRequests > 0 && this.waitingBytes + bytes > this.maxBytes) return 'replica_bytes';
    this.waitingRequests += 1;
    this.waitingBytes += bytes;
    let answered = false;
    return (outcome: T) => {
      if (!answered) {
        answered = true;
        this.waitingRequests -= 1;
        this.waitingBytes -= bytes;
      }
      callback(outcome);
    };
  }

  /** Requests waiting now. */
  get requests(): number {
    return this.waitingRequests;
  }

  /** Bytes waiting now. */
  get bytes(): number {
    return this.waitingBytes;
  }
}
