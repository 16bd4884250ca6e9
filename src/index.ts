/**
 * The public surface of the `kvstore` package: the client library (DESIGN.md §6).
 *
 * ```ts
 * import { KVClient, KVError } from 'kvstore';
 * ```
 */
export { KVClient, KVError, isKVError, KV_ERROR_CODES, MAX_MANY_KEYS } from './client/index.js';
export type {
  KVClientOptions,
  CallOptions,
  PutOptions,
  UpdateOptions,
  KVValue,
  KVEntry,
  UpdateFunction,
  KVErrorCode,
  KVErrorDetails,
  ClientLogger,
  LogFields,
  ClientTls,
  KVGetManyResult,
  KVPutManyResult,
  KVDeleteManyResult,
  KVTxn,
  KVTxnCompare,
  KVTxnOp,
  KVTxnOpResult,
  KVTxnResult,
} from './client/index.js';
