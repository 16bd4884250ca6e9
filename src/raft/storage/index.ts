/**
 * Raft storage: the in-memory {@link MemoryStorage} for tests and simulation,
 * and the durable one for nodes: a {@link Wal} shared by every group of a node
 * and a {@link DurableStorage} per group that writes into it.
 */
export { MemoryStorage, type MemoryStorageOptions } from './memory-storage.js';
export { DurableStorage } from './durable-storage.js';
export { Wal, type WalOptions, type OpenGroupOptions } from './wal.js';
export { WalCorruptionError, WalError, type WalCorruptionCode, type WalErrorCode } from './wal-errors.js';
export { crc32c } from './crc32c.js';
export { nodeFileSystem, type FileHandle, type FileSystem, type OpenMode } from './file-system.js';
