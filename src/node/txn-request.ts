/**
 * A `TxnRequest` as the node checks it before proposing (`checkTxn` in `common/limits.ts`:
 * counts, bytes, key and value limits, one shard, no key written twice in a branch).
 * Whatever breaks a rule is refused whole with INVALID_ARGUMENT naming it; nothing is proposed.
 * @internal
 */
import { checkTxn, type TxnKeyUse } from '../common/index.js';
import type { TxnCompare as WireCompare, TxnOp as WireOp, TxnRequest } from '../gen/kvstore/v1/kvstore.js';
import { TxnCompareKind, TxnOpKind, type TxnCompare, type TxnOp, type TxnSpec } from './kv-command.js';

/** A checked transaction: its spec, its first key (which names the shard) and the shard; or why it was refused. */
export type CheckedTxn = { ok: true; spec: TxnSpec<Uint8Array, Uint8Array>; key: Uint8Array; shardId: number } | { ok: false; message: string };

/** Checks `request` for a cluster of `shardCount` shards. */
export function checkTxnRequest(request: TxnRequest, shardCount: number): CheckedTxn {
  const compares: TxnCompare<Uint8Array, Uint8Array>[] = [];
  for (const [i, compare] of request.compares.entries()) {
    const converted = compareOf(compare);
    if (converted === undefined) return { ok: false, message: `compare ${i + 1} has no target (value, version or exists)` };
    compares.push(converted);
  }
  const branches: TxnOp<Uint8Array, Uint8Array>[][] = [];
  for (const [name, wire] of [['success', request.success], ['failure', request.failure]] as const) {
    const ops: TxnOp<Uint8Array, Uint8Array>[] = [];
    for (const [i, op] of wire.entries()) {
      const converted = opOf(op);
      if (converted === undefined) return { ok: false, message: `${name} operation ${i + 1} has no put, delete or get` };
      ops.push(converted);
    }
    branches.push(ops);
  }
  const spec: TxnSpec<Uint8Array, Uint8Array> = { compares, success: branches[0] ?? [], failure: branches[1] ?? [] };
  const checked = checkTxn({
    compares: compares.map((compare) => ({ key: compare.key, value: compare.kind === TxnCompareKind.Value ? compare.value : undefined, writes: false })),
    success: spec.success.map(keyUse),
    failure: spec.failure.map(keyUse),
  }, shardCount);
  return checked.ok ? { ok: true, spec, key: checked.key, shardId: checked.shardId } : checked;
}

function keyUse(op: TxnOp<Uint8Array, Uint8Array>): TxnKeyUse {
  return { key: op.key, value: op.kind === TxnOpKind.Put ? op.value : undefined, writes: op.kind !== TxnOpKind.Get, ttlMs: op.kind === TxnOpKind.Put ? op.ttlMs : undefined };
}

function compareOf(compare: WireCompare): TxnCompare<Uint8Array, Uint8Array> | undefined {
  const target = compare.target;
  switch (target?.$case) {
    case 'value':
      return { kind: TxnCompareKind.Value, key: compare.key, value: target.value };
    case 'version':
      return { kind: TxnCompareKind.Version, key: compare.key, version: target.value };
    case 'exists':
      return { kind: target.value ? TxnCompareKind.Exists : TxnCompareKind.Absent, key: compare.key };
    case undefined:
      return undefined;
  }
}

function opOf(op: WireOp): TxnOp<Uint8Array, Uint8Array> | undefined {
  const inner = op.op;
  switch (inner?.$case) {
    case 'put':
      return { kind: TxnOpKind.Put, key: inner.value.key, value: inner.value.value, ...(inner.value.ttlMs > 0 ? { ttlMs: inner.value.ttlMs } : {}) };
    case 'delete':
      return { kind: TxnOpKind.Delete, key: inner.value.key };
    case 'get':
      return { kind: TxnOpKind.Get, key: inner.value.key };
    case undefined:
      return undefined;
  }
}
