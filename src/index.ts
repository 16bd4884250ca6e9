/**
 * The public surface of the `kvstore` package: the client library (DESIGN.md §6).
 *
 * ```ts
 * import { KVClient, KVError } from 'kvstore';
 * ```
 */
export { KVClient, KVError, isKVError, KV_ERROR_CODES } from './client/index.js';
export type {
  KVClientOptions,
  CallOptions,
  UpdateOptions,
  KVValue,
  KVEntry,
  UpdateFunction,
  KVErrorCode,
  KVErrorDetails,
  ClientLogger,
  LogFields,
  ClientTls,
} from './client/index.js';
