/**
 * Admission control of client requests (DESIGN.md §4, "Bounded"): how many requests, and how
 * many request bytes, the node holds at once — per Batch stream, per client connection and in
 * all — and how many client calls it keeps open. Past a bound the node does not queue: a Batch
 * stream is simply not read any further (HTTP/2 flow control holds the client back, nothing is
 * lost), and past the connection, node or call bounds a request is refused with
 * `RESOURCE_EXHAUSTED`, which tells the client it was not applied and to back off.
 *
 * The replica's own bounds (waiting writes and reads per shard) are `replica-admission.ts`; the
 * message-size bounds are `client-limits.ts`.
 *
 * A connection is what grpc-js lets the service tell apart: the client's address and port
 * (`call.getPeer()`), i.e. one HTTP/2 connection and every stream and unary call on it.
 * @internal
 */

const KIB = 1024;
const MIB = 1024 * KIB;

/**
 * Requests one Batch stream may have in flight before the node stops reading it: 1,024.
 * Why: twice the 512 that `kvstore bench` keeps in flight per client process, so a well-behaved
 * client never meets it; past it the node reads the stream's next message only once answers
 * brought it under half, and HTTP/2 flow control holds the client back. Nothing is refused.
 * Trade-off: higher lets one stream take more of its connection's and the node's room; lower
 * costs a deep pipeline a round trip whenever it refills.
 */
export const MAX_STREAM_REQUESTS_IN_FLIGHT = 1024;

/**
 * Request bytes (see {@link requestBytes}) one Batch stream may have in flight before the node
 * stops reading it: 2 MiB, the count bound above times ~2 KiB, so with the largest values the
 * two bind together. Same trade-off.
 */
export const MAX_STREAM_REQUEST_BYTES = 2 * MIB;

/**
 * Requests in flight on one client connection (all its streams and unary calls): 4,096.
 * Why: a client that opens several Batch streams or thousands of unary calls on one connection
 * gets four streams' worth, then RESOURCE_EXHAUSTED; one greedy connection then holds at most a
 * quarter of {@link MAX_NODE_REQUESTS_IN_FLIGHT}, leaving the rest to the others.
 * Trade-off: higher lets a single client fan out wider; lower refuses bursts of unary calls
 * (each CLI command is one connection, so that never meets it).
 */
export const MAX_CONNECTION_REQUESTS_IN_FLIGHT = 4096;

/** Request bytes in flight on one client connection: 8 MiB (4 streams' worth, as above). */
export const MAX_CONNECTION_REQUEST_BYTES = 8 * MIB;

/**
 * Requests in flight on the node, over every connection: 16,384.
 * Why: a write in flight costs the node a few KiB (the decoded request, the encoded command,
 * the log entry, WAL buffer and callbacks), so this keeps client-driven memory to tens of MiB
 * whatever the clients do, while a node on the 2-core bench machine completes its ~10k ops/s
 * with ~1,000 in flight: 16× headroom, and 32 of the bench's 512-deep clients.
 * Trade-off: higher admits more concurrent clients before refusing, at more memory and a longer
 * queue (latency) under overload; lower refuses sooner.
 */
export const MAX_NODE_REQUESTS_IN_FLIGHT = 16_384;

/** Request bytes in flight on the node: 32 MiB (the count bound above at ~2 KiB each). */
export const MAX_NODE_REQUEST_BYTES = 32 * MIB;

/**
 * Client calls (Batch streams and unary calls) open on the node at once: 1,024. A call past it
 * ends at once with gRPC status RESOURCE_EXHAUSTED, before the node reads any of its bytes.
 * Why: each open call may hold one partly received message (up to the server's
 * `SERVER_MAX_RECEIVE_MESSAGE_BYTES`) that nothing above sees, so this is what bounds that
 * memory. A client library keeps one Batch stream per node, so 1,024 client processes per node.
 * Trade-off: higher serves more client processes at once; lower bounds partial messages tighter.
 */
export const MAX_NODE_CLIENT_CALLS = 1024;

/**
 * What a request is charged beyond its key and value bytes: 256 bytes, for the objects,
 * closures and map entries that carry it through the node.
 */
export const REQUEST_OVERHEAD_BYTES = 256;

/** The bytes a request is charged: its key, value and client id plus {@link REQUEST_OVERHEAD_BYTES}. */
export function requestBytes(keyBytes: number, valueBytes = 0, clientIdBytes = 0): number {
  return REQUEST_OVERHEAD_BYTES + keyBytes + valueBytes + clientIdBytes;
}

/** A bound of {@link AdmissionControl} that refused a request or a call. */
export type AdmissionRefusal =
  /** {@link MAX_CONNECTION_REQUESTS_IN_FLIGHT} */
  | 'connection_requests'
  /** {@link MAX_CONNECTION_REQUEST_BYTES} */
  | 'connection_bytes'
  /** {@link MAX_NODE_REQUESTS_IN_FLIGHT} */
  | 'node_requests'
  /** {@link MAX_NODE_REQUEST_BYTES} */
  | 'node_bytes'
  /** {@link MAX_NODE_CLIENT_CALLS}: a whole call */
  | 'node_calls';

/**
 * Why a client request was refused (the `reason` label of `kvstore_node_requests_refused_total`):
 * the bound it met.
 */
export type RefusalReason =
  | AdmissionRefusal
  /** A replica's waiting requests (`replica-admission.ts`) */
  | 'replica_requests'
  /** A replica's waiting bytes */
  | 'replica_bytes'
  /** A message larger than its method's limit (`client-limits.ts`): a whole call */
  | 'message_bytes'
  /** A BatchRequest of more than MAX_BATCH_ITEMS items: every item, INVALID_ARGUMENT */
  | 'batch_items';

/** Every refusal reason, so the metric shows zero series from the start. */
export const REFUSAL_REASONS: readonly RefusalReason[] = [
  'connection_requests', 'connection_bytes', 'node_requests', 'node_bytes', 'node_calls',
  'replica_requests', 'replica_bytes', 'message_bytes', 'batch_items',
];

/** The bounds of an {@link AdmissionControl}; the defaults are the constants above. */
export interface AdmissionLimits {
  connectionRequests: number;
  connectionBytes: number;
  nodeRequests: number;
  nodeBytes: number;
  nodeCalls: number;
}

/** The bounds a node runs with. */
export const DEFAULT_ADMISSION_LIMITS: AdmissionLimits = {
  connectionRequests: MAX_CONNECTION_REQUESTS_IN_FLIGHT,
  connectionBytes: MAX_CONNECTION_REQUEST_BYTES,
  nodeRequests: MAX_NODE_REQUESTS_IN_FLIGHT,
  nodeBytes: MAX_NODE_REQUEST_BYTES,
  nodeCalls: MAX_NODE_CLIENT_CALLS,
};

interface Usage {
  requests: number;
  bytes: number;
}

/**
 * The node's and each connection's requests and bytes in flight. Every admitted request MUST be
 * released exactly once, when it is answered or its call ends ({@link AdmissionControl.admit}).
 * A connection's entry lives only while it has requests in flight, so a client churning through
 * connections leaves nothing behind.
 */
export class AdmissionControl {
  private readonly node: Usage = { requests: 0, bytes: 0 };
  private readonly connections = new Map<string, Usage>();
  private openCalls = 0;

  constructor(
    private readonly limits: AdmissionLimits = DEFAULT_ADMISSION_LIMITS,
    /** Told of every refusal (metrics and the rate-limited warning). */
    private readonly onRefused: (reason: RefusalReason) => void = () => undefined,
  ) {}

  /**
   * Takes room for one request of `bytes` on connection `peer`; returns undefined when admitted
   * (the caller then MUST {@link release} it), or the bound that refused it. A request is always
   * admitted on an idle connection of an idle node, whatever its size: the bounds cap what is
   * held, they never refuse the only request.
   */
  admit(peer: string, bytes: number): AdmissionRefusal | undefined {
    const connection = this.connections.get(peer) ?? { requests: 0, bytes: 0 };
    const refusal = this.check(connection, bytes);
    if (refusal !== undefined) {
      this.onRefused(refusal);
      return refusal;
    }
    connection.requests += 1;
    connection.bytes += bytes;
    this.connections.set(peer, connection);
    this.node.requests += 1;
    this.node.bytes += bytes;
    return undefined;
  }

  private check(connection: Usage, bytes: number): AdmissionRefusal | undefined {
    const limits = this.limits;
    if (this.node.requests >= limits.nodeRequests) return 'node_requests';
    if (this.node.requests > 0 && this.node.bytes + bytes > limits.nodeBytes) return 'node_bytes';
    if (connection.requests >= limits.connectionRequests) return 'connection_requests';
    if (connection.requests > 0 && connection.bytes + bytes > limits.connectionBytes) return 'connection_bytes';
    return undefined;
  }

  /** Gives back what {@link admit} took for a request of `bytes` on `peer`. */
  release(peer: string, bytes: number): void {
    const connection = this.connections.get(peer);
    if (connection === undefined) throw new Error(`admission: release on ${peer}, which has nothing in flight`);
    connection.requests -= 1;
    connection.bytes -= bytes;
    if (connection.requests === 0) this.connections.delete(peer);
    this.node.requests -= 1;
    this.node.bytes -= bytes;
  }

  /** Opens a client call; false (and counted) when {@link AdmissionLimits.nodeCalls} are open already. */
  openCall(): boolean {
    if (this.openCalls >= this.limits.nodeCalls) {
      this.onRefused('node_calls');
      return false;
    }
    this.openCalls += 1;
    return true;
  }

  /** Closes a call {@link openCall} opened. */
  closeCall(): void {
    this.openCalls -= 1;
  }

  /** The message of the RESOURCE_EXHAUSTED answer for `reason`: which bound, and what to do. */
  refusalMessage(reason: AdmissionRefusal): string {
    const limits = this.limits;
    const retry = 'not applied; back off and retry';
    switch (reason) {
      case 'connection_requests':
        return `this connection has ${limits.connectionRequests} requests in flight, its limit: ${retry}`;
      case 'connection_bytes':
        return `this connection has ${limits.connectionBytes} request bytes in flight, its limit: ${retry}`;
      case 'node_requests':
        return `this node has ${limits.nodeRequests} requests in flight, its limit: ${retry}`;
      case 'node_bytes':
        return `this node has ${limits.nodeBytes} request bytes in flight, its limit: ${retry}`;
      case 'node_calls':
        return `this node has ${limits.nodeCalls} client calls open, its limit: ${retry}`;
    }
  }

  /** What is held now (metrics and tests). */
  get usage(): { requests: number; bytes: number; connections: number; calls: number } {
    return { requests: this.node.requests, bytes: this.node.bytes, connections: this.connections.size, calls: this.openCalls };
  }

  /** Requests and bytes in flight on one connection (tests). */
  connectionUsage(peer: string): Usage {
    const connection = this.connections.get(peer);
    return { requests: connection?.requests ?? 0, bytes: connection?.bytes ?? 0 };
  }
}
