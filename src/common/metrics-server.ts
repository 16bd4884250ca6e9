/**
 * The HTTP endpoint every server process serves on `--metrics-port` (DESIGN.md §6):
 * `/metrics` in Prometheus text format, `/healthz` (the process is up: always 200) and
 * `/readyz` (200 once the process can do its job, 503 with the reason until then).
 * The manager and the node share it; each brings its own registry and readiness rule,
 * so an orchestrator (compose healthchecks, Kubernetes probes) treats both alike.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Registry } from 'prom-client';

/** Whether a process is ready, and if not, why (shown in the `/readyz` body for operators). */
export type Readiness = { ready: true } | { ready: false; reason: string };

/** What one process exposes on its metrics port. */
export interface MetricsServerOptions {
  /** Interface to listen on (the process's `--host`). */
  host: string;
  /** Port to listen on; 0 picks a free one (see {@link MetricsServer.port}). */
  port: number;
  /** The process's metrics; collected on every scrape. */
  registry: Registry;
  /** Evaluated on every `/readyz` request, so it must be cheap. */
  readiness: () => Readiness;
  /**
   * Serve HTTPS with this certificate and key (PEM) instead of HTTP (`--metrics-tls`). No client
   * certificate is asked for: what is served holds no keys or values, and scrapers rarely have one.
   */
  tls?: { cert: Buffer; key: Buffer };
}

/** A listening metrics endpoint. */
export interface MetricsServer {
  /** The bound port (differs from the requested one when that was 0). */
  readonly port: number;
  /** Stops listening and drops open connections (scrapers keep them alive). */
  close(): Promise<void>;
}

/**
 * Serves `/metrics`, `/healthz` and `/readyz`; resolves once listening. The server is
 * unref'd: it never keeps a process alive on its own — the gRPC server does that.
 * @throws the listen error (e.g. EADDRINUSE); the caller decides whether it is fatal.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry, readiness } = options;
  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed\n');
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => { response.writeHead(200, { 'content-type': registry.contentType }).end(text); },
        (error: unknown) => { response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${String(error)}\n`); },
      );
    } else if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const state = readiness();
      if (state.ready) response.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
      else response.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: ${state.reason}\n`);
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
  const server: Server = options.tls === undefined ? createServer(handle) : createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : options.port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => { resolve(); });
      server.closeAllConnections();
    }),
  };
}
