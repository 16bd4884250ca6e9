/**
 * Skips a suite that needs network namespaces (root and iproute2) with the reason on stderr,
 * so a run without them says what it left out instead of passing silently.
 */
import { netnsUnavailable } from '../../src/chaos/index.js';

/** Call from a `before` hook: skips the suite when namespaces are unavailable. */
export function skipWithoutNetns(context: Mocha.Context): void {
  const why = netnsUnavailable();
  if (why === undefined) return;
  process.stderr.write(`      skipped: ${why}\n`);
  context.skip();
}
