/**
 * The manager's HTTP endpoint (DESIGN.md §6): `/metrics` in Prometheus text,
 * `/healthz` (the process is serving) and `/readyz` (placed, every shard led).
 */
import { createServer, type Server } from 'node:http';
import { Gauge, Registry } from 'prom-client';
import type { Health } from './types.js';

/** What the endpoint reads, sampled at each scrape. */
export interface ManagerMetricsSource {
  healthCounts(): Record<Health, number>;
  shardCount: number;
  shardsWithLeader(): number;
  movesInFlight: number;
  isBootstrapped: boolean;
}

/** A running metrics server. */
export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves metrics on `host:port`; resolves once listening.
 * @throws the listen error (e.g. EADDRINUSE); the caller decides whether that is fatal.
 */
export async function startMetricsServer(host: string, port: number, source: ManagerMetricsSource): Promise<MetricsServer> {
  const registry = new Registry();
  new Gauge({
    name: 'kvstore_manager_nodes', help: 'Known storage nodes by health', labelNames: ['health'], registers: [registry],
    collect() {
      for (const [health, count] of Object.entries(source.healthCounts())) this.set({ health }, count);
    },
  });
  new Gauge({
    name: 'kvstore_manager_shards', help: 'Shards in the cluster', registers: [registry],
    collect() { this.set(source.shardCount); },
  });
  new Gauge({
    name: 'kvstore_manager_shards_with_leader', help: 'Shards whose leader is known and not on a down node', registers: [registry],
    collect() { this.set(source.shardsWithLeader()); },
  });
  new Gauge({
    name: 'kvstore_manager_moves_in_flight', help: 'Replica moves (re-replication and rebalancing) running', registers: [registry],
    collect() { this.set(source.movesInFlight); },
  });
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then((text) => {
        response.writeHead(200, { 'content-type': registry.contentType }).end(text);
      }, () => { response.writeHead(500).end('metrics unavailable\n'); });
    } else if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = source.isBootstrapped && source.shardsWithLeader() === source.shardCount;
      response.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => { resolve(); });
      server.closeAllConnections();
    }),
  };
}
