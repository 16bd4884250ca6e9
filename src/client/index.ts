/**
 * The client library's public surface. The package entry (src/index.ts) re-exports the user-facing
 * part; the CLI also uses {@link ManagerConnection} to read the cluster map for `status` and `cluster`.
 */
export { KVClient, MAX_MANY_KEYS, clientChannelSecurity } from './kv-client.js';
export type {
  KVClientOptions, CallOptions, PutOptions, UpdateOptions, KVValue, KVEntry, UpdateFunction, KVGetManyResult, KVPutManyResult, KVDeleteManyResult,
} from './kv-client.js';
export type { KVTxn, KVTxnCompare, KVTxnOp, KVTxnOpResult, KVTxnResult } from './txn.js';
export { KVError, isKVError, KV_ERROR_CODES } from './errors.js';
export type { KVErrorCode, KVErrorDetails } from './errors.js';
export type { ClientLogger, LogFields } from './logger.js';
export type { ClientTls } from '../security/channel-security.js';
export { ChannelSecurity } from '../security/channel-security.js';
export { ManagerConnection, ManagerRefusedError, ManagerUnreachableError } from './manager-connection.js';
