/**
 * The node's HTTP endpoint (DESIGN.md §6): `/metrics` (Prometheus), `/healthz`
 * (the process is up) and `/readyz` (every hosted replica knows its leader).
 * @internal
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { Role } from '../raft/index.js';
import type { RaftHost } from './raft-host.js';
import type { RequestMetrics } from './request-metrics.js';

/** What the endpoint reports on. */
export interface MetricsSource {
  host: RaftHost;
  requests: RequestMetrics;
  /** True once the node can serve clients (shard count known). */
  serving(): boolean;
}

/** Builds the Prometheus registry of a node. */
function buildRegistry(source: MetricsSource): Registry {
  const registry = new Registry();
  const host = source.host;
  new Gauge({
    name: 'kvstore_node_replicas', help: 'Replicas hosted by this node', registers: [registry],
    collect() { this.set([...host.replicas()].length); },
  });
  new Gauge({
    name: 'kvstore_node_leaders', help: 'Replicas of this node that lead their shard', registers: [registry],
    collect() { this.set([...host.replicas()].filter((replica) => replica.role === Role.Leader).length); },
  });
  new Gauge({
    name: 'kvstore_node_keys', help: 'Keys held by this node over all replicas', registers: [registry],
    collect() { this.set([...host.replicas()].reduce((sum, replica) => sum + replica.machine.keyCount, 0)); },
  });
  new Counter({
    name: 'kvstore_node_requests_total', help: 'Client requests answered', labelNames: ['outcome'], registers: [registry],
    collect() {
      this.reset();
      this.inc({ outcome: 'ok' }, source.requests.totals.ok);
      this.inc({ outcome: 'error' }, source.requests.totals.failed);
    },
  });
  new Counter({
    name: 'kvstore_node_raft_turns_total', help: 'Host loop turns', registers: [registry],
    collect() { this.reset(); this.inc(host.stats.turns); },
  });
  new Counter({
    name: 'kvstore_node_transport_messages_total', help: 'Raft messages sent to peers', labelNames: ['outcome'], registers: [registry],
    collect() {
      this.reset();
      this.inc({ outcome: 'sent' }, host.transport.stats.messages);
      this.inc({ outcome: 'dropped' }, host.transport.stats.dropped);
    },
  });
  return registry;
}

/** Starts the HTTP endpoint on `host:port`; resolves once listening. */
export async function startMetricsServer(host: string, port: number, source: MetricsSource): Promise<Server> {
  const registry = buildRegistry(source);
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = source.serving() && [...source.host.replicas()].every((replica) => replica.removed || replica.leaderId !== 0);
      response.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500).end(String(error)),
      );
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  return server;
}
