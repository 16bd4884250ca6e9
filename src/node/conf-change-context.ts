/**
 * How a placement command's node id rides in a ConfChange: the context of a membership change
 * names the node hosting the replica, so every member learns where a new one lives when the
 * change applies.
 * @internal
 */
import type { ConfChange, ConfChangeType } from '../raft/index.js';

/** A ConfChange for a placement command, with the node id in its context. */
export function confChangeFor(type: ConfChangeType, replicaId: number, nodeId: string): ConfChange {
  return { type, replicaId, context: Buffer.from(JSON.stringify({ nodeId }), 'utf8') };
}

/** The node id in a ConfChange context (`{"nodeId":"n3"}`), or undefined if absent or malformed. */
export function nodeIdFromContext(context: Uint8Array): string | undefined {
  if (context.length === 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(context.buffer, context.byteOffset, context.byteLength).toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'nodeId' in parsed && typeof parsed.nodeId === 'string') return parsed.nodeId;
  } catch {
    return undefined;
  }
  return undefined;
}
