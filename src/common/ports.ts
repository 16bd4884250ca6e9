/**
 * Picking ports for local clusters (`kvstore bench`, `kvstore chaos`, tests). Ports are
 * chosen below Linux's default ephemeral range (32768–60999): a port there that is free
 * now may be taken a moment later as the source port of some outgoing connection, before
 * the server binds it. Below it, only another listener can race us.
 */
import { createServer, isIP } from 'node:net';

/** Lowest port handed out. */
const LOWEST_PORT = 20_000;
/** One past the highest port handed out: the start of the usual ephemeral range. */
const EPHEMERAL_START = 32_768;
/** A server's HTTP metrics port defaults to its gRPC port + this. */
export const METRICS_PORT_OFFSET = 1000;

/** True when something can listen on 127.0.0.1:`port` right now. */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A base port P such that P…P+count-1 and their metrics ports (+1000) are all free on
 * 127.0.0.1 right now (another listener may still take one before the cluster binds it;
 * the start then fails with a clear error).
 */
export async function findFreePortRange(count: number): Promise<number> {
  const span = EPHEMERAL_START - LOWEST_PORT - METRICS_PORT_OFFSET - count;
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = LOWEST_PORT + Math.floor(Math.random() * span);
    const ports = Array.from({ length: count }, (_, i) => [base + i, base + METRICS_PORT_OFFSET + i]).flat();
    const free = await Promise.all(ports.map(isPortFree));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no free range of ${count} ports found on 127.0.0.1`);
}

/** One free port (see {@link findFreePortRange}); its +1000 is free too. */
export function findFreePort(): Promise<number> {
  return findFreePortRange(1);
}

/**
 * `host:port` (or `[v6]:port`) split at its last colon, brackets dropped; `port` is NaN when there
 * is none. The inverse of {@link hostPort}.
 */
export function splitHostPort(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  if (colon <= 0) return { host: address, port: Number.NaN };
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
}

/** `host:port` for a listen or dial address; an IPv6 host goes in brackets (`[::]:7001`). */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
