/**
 * Client requests answered by this node: Prometheus counters by operation and result
 * code plus a latency histogram per operation (`/metrics`), and the rate and p99 over
 * the last heartbeat interval for the manager (`ops_per_second`, `p99_latency_ms`,
 * shown by `kvstore status`).
 *
 * This is on the hot path (one call per answered request): the labelled children are
 * resolved once per (op, code) and cached, so a record is two array lookups, one
 * counter increment and one histogram bucket search.
 * @internal
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ErrorCode } from '../gen/kvstore/v1/kvstore.js';
import { REFUSAL_REASONS, type RefusalReason } from './admission.js';
import { CommandOp } from './kv-command.js';

/** Latencies kept per interval; beyond it, a uniform reservoir sample keeps the p99 honest. */
const RESERVOIR_SIZE = 20_000;

/** A request's operation: a read, or the write command it proposes. */
export type RequestOp = 'get' | CommandOp;

/** The operation names used as the `op` label. */
const OP_NAMES = ['get', 'put', 'delete', 'cas', 'txn', 'expire'] as const;
type OpName = (typeof OP_NAMES)[number];

/**
 * Latency buckets in seconds: 0.25 ms to 4 s, doubling. A local read answers in well
 * under a millisecond, a replicated write in a few; an election stalls requests for
 * up to the election timeout (0.5–1 s), and the node's request timeout bounds the rest.
 */
const LATENCY_BUCKETS_SECONDS = [
  0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
];

function opName(op: RequestOp): OpName {
  switch (op) {
    case 'get': return 'get';
    case CommandOp.Put: return 'put';
    case CommandOp.Delete: return 'delete';
    case CommandOp.Cas: return 'cas';
    case CommandOp.Txn: return 'txn';
    case CommandOp.PutTtl: return 'put';
    case CommandOp.Expire: return 'expire';
  }
}

/** `OK` or the error code without its `ERROR_CODE_` prefix (`NOT_LEADER`, `TIMEOUT`, …). */
function codeName(code: ErrorCode | undefined): string {
  if (code === undefined) return 'OK';
  const name = ErrorCode[code] as string | undefined;
  return name === undefined ? 'UNRECOGNIZED' : name.replace(/^ERROR_CODE_/, '');
}

/** Counts completed requests and samples their latency. */
export class RequestMetrics {
  private count = 0;
  private samples: number[] = [];
  private intervalStartMs = Date.now();
  /** Completed requests since start, by outcome. */
  readonly totals = { ok: 0, failed: 0 };
  private readonly requests: Counter<'op' | 'code'>;
  private readonly latency: Histogram<'op'>;
  private readonly refusals: Counter<'reason'>;
  private readonly registry: Registry;
  /** Cached counter children by op name, then code name. */
  private readonly requestChildren = new Map<string, ReturnType<Counter<'op' | 'code'>['labels']>>();
  private readonly latencyChildren = new Map<OpName, ReturnType<Histogram<'op'>['labels']>>();

  /** Registers `kvstore_node_requests_total` and `kvstore_node_request_duration_seconds` on `registry`. */
  constructor(registry: Registry) {
    this.registry = registry;
    this.refusals = new Counter({
      name: 'kvstore_node_requests_refused_total',
      help: 'Client requests refused at an admission bound, by the bound (admission.ts): answered RESOURCE_EXHAUSTED ' +
        '(batch_items: INVALID_ARGUMENT; node_calls and message_bytes: a whole call ended)',
      labelNames: ['reason'],
      registers: [registry],
    });
    for (const reason of REFUSAL_REASONS) this.refusals.inc({ reason }, 0);
    this.requests = new Counter({
      name: 'kvstore_node_requests_total',
      help: 'Client requests answered by this node, by operation and result code (OK or the error code)',
      labelNames: ['op', 'code'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'kvstore_node_request_duration_seconds',
      help: 'Time from receiving a client request to answering it, by operation (any result)',
      labelNames: ['op'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers: [registry],
    });
    for (const op of OP_NAMES) {
      this.latencyChildren.set(op, this.latency.labels(op));
      // A zero series for success, so rates exist before the first request.
      this.requests.inc({ op, code: 'OK' }, 0);
    }
  }

  private counterFor(op: OpName, code: string): ReturnType<Counter<'op' | 'code'>['labels']> {
    const key = `${op}/${code}`;
    let child = this.requestChildren.get(key);
    if (child === undefined) {
      child = this.requests.labels(op, code);
      this.requestChildren.set(key, child);
    }
    return child;
  }

  /** Records one answered request that took `latencyMs`; `code` is the error it was answered with, if any. */
  record(op: RequestOp, latencyMs: number, code: ErrorCode | undefined): void {
    const name = opName(op);
    this.counterFor(name, codeName(code)).inc();
    this.latencyChildren.get(name)?.observe(latencyMs / 1000);
    this.count += 1;
    if (code === undefined) this.totals.ok += 1;
    else this.totals.failed += 1;
    if (this.samples.length < RESERVOIR_SIZE) {
      this.samples.push(latencyMs);
    } else {
      const slot = Math.floor(Math.random() * this.count);
      if (slot < RESERVOIR_SIZE) this.samples[slot] = latencyMs;
    }
  }

  /** Counts `count` requests refused for `reason`. */
  refused(reason: RefusalReason, count = 1): void {
    this.refusals.inc({ reason }, count);
  }

  /**
   * Exposes what admission control holds now: `kvstore_node_admitted_requests`,
   * `kvstore_node_admitted_request_bytes` and `kvstore_node_client_calls`.
   */
  observeAdmission(usage: () => { requests: number; bytes: number; calls: number }): void {
    const gauge = (name: string, help: string, read: (current: { requests: number; bytes: number; calls: number }) => number): void => {
      new Gauge({ name, help, registers: [this.registry], collect() { this.set(read(usage())); } });
    };
    gauge('kvstore_node_admitted_requests', 'Client requests in flight on this node (admitted, not yet answered)', (current) => current.requests);
    gauge('kvstore_node_admitted_request_bytes', 'Bytes charged for the client requests in flight (key, value, client id, 256 overhead each)', (current) => current.bytes);
    gauge('kvstore_node_client_calls', 'Client calls (Batch streams and unary calls) open on this node', (current) => current.calls);
  }

  /** Rate and p99 since the previous call; starts a new interval. */
  takeInterval(): { opsPerSecond: number; p99LatencyMs: number } {
    const nowMs = Date.now();
    const seconds = Math.max((nowMs - this.intervalStartMs) / 1000, 0.001);
    const opsPerSecond = this.count / seconds;
    let p99LatencyMs = 0;
    if (this.samples.length > 0) {
      this.samples.sort((a, b) => a - b);
      p99LatencyMs = this.samples[Math.min(this.samples.length - 1, Math.floor(this.samples.length * 0.99))] ?? 0;
    }
    this.count = 0;
    this.samples = [];
    this.intervalStartMs = nowMs;
    return { opsPerSecond, p99LatencyMs };
  }
}
