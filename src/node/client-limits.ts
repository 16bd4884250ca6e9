/**
 * How big a client message may be, and the one gRPC server's hooks that keep the client service
 * to it.
 *
 * One gRPC server serves both `KvService` (clients) and `RaftService` (peers) on one port
 * (DESIGN.md §1), and grpc-js has one receive limit per server, checked on a message's length
 * prefix before it is buffered. That limit is `SERVER_MAX_RECEIVE_MESSAGE_BYTES`
 * (`server-limits.ts`): what the largest Raft message needs. The client service's own, much smaller limits are checked here on
 * the raw bytes BEFORE anything decodes them ({@link KV_SERVICE}), so a client can make the node
 * neither decode nor hold more than its largest legal message: a message past its method's limit
 * ends the call with gRPC status RESOURCE_EXHAUSTED (as grpc-js ends one past the server's), and
 * nothing of it is decoded. {@link clientCallInterceptor} also bounds the client calls open at
 * once, before any of their bytes are read (`admission.ts`).
 * @internal
 */
import {
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status as GrpcStatus,
} from '@grpc/grpc-js';
import { MAX_BATCH_ITEMS, MAX_KEY_BYTES, MAX_TXN_BYTES, MAX_TXN_OPS, MAX_VALUE_BYTES } from '../common/index.js';
import {
  BatchRequest,
  CasRequest,
  DeleteRequest,
  GetRequest,
  KvServiceService,
  PutRequest,
  ReadShardRequest,
  TxnRequest,
} from '../gen/kvstore/v1/kvstore.js';
import type { AdmissionControl, RefusalReason } from './admission.js';
import { MAX_CLIENT_ID_BYTES } from './kv-command.js';

/** Bytes of a varint holding `value` (a non-negative integer). */
function varintBytes(value: number): number {
  let bytes = 1;
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) bytes += 1;
  return bytes;
}

/** Bytes of a length-delimited field of a `length`-byte body, with its one-byte tag. */
function lengthDelimitedFieldBytes(length: number): number {
  return 1 + varintBytes(length) + length;
}

/** Bytes of a uint64 field at its largest (a 10-byte varint), with its tag. */
const UINT64_FIELD_BYTES = 1 + 10;

/** Session: `client_id` (≤ MAX_CLIENT_ID_BYTES) and `seq`. */
const MAX_SESSION_BYTES = lengthDelimitedFieldBytes(MAX_CLIENT_ID_BYTES) + UINT64_FIELD_BYTES;

/**
 * The largest legal request of one operation, encoded: a CasRequest with the longest key, the
 * largest value, the longest client id and every uint64 at 10 bytes (a Put is one uint64
 * smaller): 1,216 bytes with the limits of `src/common/limits.ts`. A unary call's limit.
 */
export const MAX_REQUEST_BYTES =
  lengthDelimitedFieldBytes(MAX_KEY_BYTES) +
  UINT64_FIELD_BYTES + // expected_version
  lengthDelimitedFieldBytes(MAX_VALUE_BYTES) +
  lengthDelimitedFieldBytes(MAX_SESSION_BYTES) +
  UINT64_FIELD_BYTES; // epoch

/**
 * Framing bytes of one compare or operation in a TxnRequest at most: its field tag and length
 * in the request (4), a TxnOp's and TxnPut's tags and lengths (8), the key's tag and length (2)
 * and the value's (3), or a version's tag and 10-byte varint (11). 20 bounds them all.
 */
const TXN_ENTRY_FRAMING_BYTES = 20;

/**
 * The largest legal TxnRequest: keys and values at MAX_TXN_BYTES (64 KiB), every compare and
 * operation framed, the longest session and epoch: 69,415 bytes. A Txn call's limit; inside a
 * Batch, the client sends a transaction in a message of its own when it would not fit beside
 * the items already in one (the Batch message limit below stays what it was).
 */
export const MAX_TXN_REQUEST_BYTES =
  MAX_TXN_BYTES +
  3 * MAX_TXN_OPS * TXN_ENTRY_FRAMING_BYTES +
  lengthDelimitedFieldBytes(MAX_SESSION_BYTES) +
  UINT64_FIELD_BYTES; // epoch

/** A BatchRequestItem holding the largest request: its request id and the request. */
const MAX_BATCH_ITEM_BYTES = UINT64_FIELD_BYTES + lengthDelimitedFieldBytes(MAX_REQUEST_BYTES);

/**
 * The largest legal BatchRequest: MAX_BATCH_ITEMS (256) of the largest item, 315,648 bytes
 * (308 KiB). The Batch stream's per-message limit.
 */
export const MAX_BATCH_REQUEST_BYTES = MAX_BATCH_ITEMS * lengthDelimitedFieldBytes(MAX_BATCH_ITEM_BYTES);

/** What a client method's deserializer hands on for a message past its limit, instead of decoding it. */
export class OversizedMessage {
  constructor(
    /** The method's path. */
    readonly path: string,
    /** The message's size. */
    readonly bytes: number,
    /** The method's limit. */
    readonly limit: number,
  ) {}

  /** The status details: what was too large, and the limit. */
  get details(): string {
    return `${this.path}: a message of ${this.bytes} bytes is larger than the client limit of ${this.limit} bytes`;
  }
}

/** A deserializer that decodes only messages of at most `limit` bytes. */
function limited<T>(path: string, limit: number, decode: (bytes: Buffer) => T): (bytes: Buffer) => T | OversizedMessage {
  return (bytes) => (bytes.length > limit ? new OversizedMessage(path, bytes.length, limit) : decode(bytes));
}

/**
 * `KvService` as the node serves it: the generated definition, with every request decoded only
 * once its size is known to be legal ({@link MAX_REQUEST_BYTES} for a unary call,
 * {@link MAX_BATCH_REQUEST_BYTES} for a Batch message). {@link clientCallInterceptor} turns
 * what is not into the call's end.
 */
export const KV_SERVICE = {
  get: { ...KvServiceService.get, requestDeserialize: limited(KvServiceService.get.path, MAX_REQUEST_BYTES, (bytes) => GetRequest.decode(bytes)) },
  put: { ...KvServiceService.put, requestDeserialize: limited(KvServiceService.put.path, MAX_REQUEST_BYTES, (bytes) => PutRequest.decode(bytes)) },
  delete: {
    ...KvServiceService.delete,
    requestDeserialize: limited(KvServiceService.delete.path, MAX_REQUEST_BYTES, (bytes) => DeleteRequest.decode(bytes)),
  },
  cas: { ...KvServiceService.cas, requestDeserialize: limited(KvServiceService.cas.path, MAX_REQUEST_BYTES, (bytes) => CasRequest.decode(bytes)) },
  readShard: {
    ...KvServiceService.readShard,
    requestDeserialize: limited(KvServiceService.readShard.path, MAX_REQUEST_BYTES, (bytes) => ReadShardRequest.decode(bytes)),
  },
  txn: { ...KvServiceService.txn, requestDeserialize: limited(KvServiceService.txn.path, MAX_TXN_REQUEST_BYTES, (bytes) => TxnRequest.decode(bytes)) },
  batch: {
    ...KvServiceService.batch,
    requestDeserialize: limited(KvServiceService.batch.path, MAX_BATCH_REQUEST_BYTES, (bytes) => BatchRequest.decode(bytes)),
  },
} as const;

const CLIENT_SERVICE_PREFIX = '/kvstore.v1.KvService/';

/**
 * A server interceptor for the client service (other services pass through untouched):
 * - a call past `MAX_NODE_CLIENT_CALLS` open ends at once with RESOURCE_EXHAUSTED, before its
 *   handler runs or any of its bytes are read;
 * - a message {@link KV_SERVICE} did not decode (past its method's limit) ends its call with
 *   RESOURCE_EXHAUSTED, naming the limit.
 * Both are counted through `refused`.
 */
export function clientCallInterceptor(admission: AdmissionControl, refused: (reason: RefusalReason) => void): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface): ServerInterceptingCall => {
    if (!method.path.startsWith(CLIENT_SERVICE_PREFIX)) return new ServerInterceptingCall(call);
    let open = false;
    const close = (): void => {
      if (!open) return;
      open = false;
      admission.closeCall();
    };
    const listener = new ServerListenerBuilder()
      .withOnReceiveMessage((message: unknown, next: (message: unknown) => void) => {
        if (message instanceof OversizedMessage) {
          refused('message_bytes');
          call.sendStatus({ code: GrpcStatus.RESOURCE_EXHAUSTED, details: message.details });
          return;
        }
        next(message);
      })
      .withOnCancel(close)
      .build();
    return new ServerInterceptingCall(call, {
      start: (next) => {
        if (!admission.openCall()) {
          // The handler never runs and nothing is read: the call ends here.
          call.sendStatus({ code: GrpcStatus.RESOURCE_EXHAUSTED, details: admission.refusalMessage('node_calls') });
          return;
        }
        open = true;
        next(listener);
      },
    });
  };
}
