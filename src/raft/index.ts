/**
 * The Raft consensus core's public surface: {@link RawNode}, its config and
 * data types, the storage implementations, and the conf-change codec. Everything
 * else in src/raft is internal.
 */
export * from './types.js';
export { RawNode } from './raw-node.js';
export { newMessage } from './message.js';
export type { RaftConfig } from './config.js';
export { encodeConfChange, decodeConfChange } from './conf-change.js';
// Storage: MemoryStorage, and the durable Wal + DurableStorage (src/raft/storage/index.ts).
export * from './storage/index.js';
export { SeededRandom } from '../common/random.js';
export { RaftInvariantError, assertInvariant, type RaftErrorCode } from './errors.js';
