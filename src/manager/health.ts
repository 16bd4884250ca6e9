/**
 * Node health from heartbeat silence (DESIGN.md §5): `up`, then `suspect` after a
 * few seconds, then `down` after the configurable timeout.
 */
import type { Health } from './types.js';

/** Default silence before a node is `suspect`. */
export const DEFAULT_SUSPECT_AFTER_MS = 3000;
/** Default silence before a node is `down` and its replicas are rebuilt elsewhere. */
export const DEFAULT_DOWN_AFTER_MS = 10_000;

/**
 * Health after `silentMs` without a heartbeat. A `downAfterMs` shorter than
 * `suspectAfterMs` wins: the node goes straight from up to down.
 */
export function healthAfterSilence(silentMs: number, suspectAfterMs: number, downAfterMs: number): Health {
  if (silentMs >= downAfterMs) return 'down';
  if (silentMs >= Math.min(suspectAfterMs, downAfterMs)) return 'suspect';
  return 'up';
}
