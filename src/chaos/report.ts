/**
 * What a chaos run prints and writes: the verdict line (`linearizable: yes|NO`, ops checked, faults
 * injected, lost writes), a short summary (with a `transactions:` line when the workload ran any,
 * and a `ttl:` line when it put keys with a TTL), and with `--out DIR` the files `history.jsonl`,
 * `timeline.txt`, `report.txt`, and for a violation `violation.txt` — the smallest failing
 * sub-history found, rendered as a table and a time diagram.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeOperation, historyToJsonLines, isIndeterminate, possibleWrites, type Operation } from './history.js';
import type { KeyCheck } from './checker.js';
import type { ChaosResult, Violation } from './runner.js';

/** True when the run passed every check: linearizable, nothing lost, every key read, cluster recovered. */
export function passed(result: ChaosResult): boolean {
  return (
    result.check.verdict === 'linearizable' && result.lostWrites.length === 0 && result.unreadKeys.length === 0 && result.settleProblems.length === 0
  );
}

/** The one line scripts grep: `linearizable: yes  ops checked: 4210  faults injected: 7  lost writes: 0  recovered: yes`. */
export function verdictLine(result: ChaosResult): string {
  const verdict = result.check.verdict === 'linearizable' ? 'yes' : result.check.verdict === 'violation' ? 'NO' : 'unknown';
  const recovered = result.settleProblems.length === 0 && result.unreadKeys.length === 0 ? 'yes' : 'NO';
  return `linearizable: ${verdict}  ops checked: ${result.check.operationsChecked}  faults injected: ${result.faultsInjected}  lost writes: ${result.lostWrites.length}  recovered: ${recovered}`;
}

/** The summary printed before the verdict line. */
export function summaryLines(result: ChaosResult): string[] {
  const history = result.history;
  const count = (predicate: (operation: Operation) => boolean): number => history.filter(predicate).length;
  const faults = Object.entries(result.faultCounts)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  const transactions = count((op) => op.type === 'txn');
  const lines = [
    `seed: ${result.seed}`,
    `operations: ${history.length} recorded (${count((op) => op.type === 'get')} get, ${count((op) => op.type === 'put')} put, ${count((op) => op.type === 'cas')} cas` +
      `${transactions > 0 ? `, ${transactions} txn` : ''}); ` +
      `${count((op) => isIndeterminate(op) && possibleWrites(op).length > 0)} indeterminate writes, ${count((op) => op.type === 'get' && op.status === 'failed')} failed reads dropped`,
    ...(transactions > 0 ? [transactionLine(result)] : []),
    ...(ttlPuts(history).total > 0 ? [ttlLine(result)] : []),
    `faults: ${result.faultsInjected} injected${faults === '' ? '' : ` (${faults})`}; ${result.probes} stale-read probes`,
    `cluster: ${result.settleProblems.length === 0 ? 'recovered: every shard has a leader and K live replicas' : `NOT recovered: ${result.settleProblems.slice(0, 3).join('; ')}`}`,
  ];
  if (result.unreadKeys.length > 0) lines.push(`final read failed for ${result.unreadKeys.length} keys: ${result.unreadKeys.slice(0, 5).join(', ')}`);
  for (const lost of result.lostWrites.slice(0, 10)) {
    lines.push(`lost write: ${lost.key} = "${lost.value}" (op #${lost.operationId}) acknowledged, final value ${lost.finalValue === null ? 'absent' : `"${lost.finalValue}"`}`);
  }
  for (const key of result.check.keys.filter((check) => check.verdict !== 'linearizable')) {
    lines.push(`${objectName(key)}: ${key.verdict === 'violation' ? 'NOT linearizable' : 'undecided'}: ${key.reason ?? ''}`);
  }
  for (const note of result.notes) lines.push(`note: ${note}`);
  return lines;
}

/**
 * `transactions: 412 (250 committed, 130 compares failed, 32 unknown) on 2 key groups checked as one object each`:
 * committed means the compares held and the success branch ran.
 */
export function transactionLine(result: ChaosResult): string {
  let committed = 0;
  let compareFailed = 0;
  let unknown = 0;
  for (const operation of result.history) {
    if (operation.type !== 'txn') continue;
    if (operation.status !== 'ok' || operation.succeeded === undefined) unknown++;
    else if (operation.succeeded) committed++;
    else compareFailed++;
  }
  const groups = result.check.keys.filter((check) => check.keys.length > 1).length;
  return (
    `transactions: ${committed + compareFailed + unknown} (${committed} committed, ${compareFailed} compares failed, ${unknown} unknown)` +
    ` on ${groups} key group${groups === 1 ? '' : 's'} checked as one object each`
  );
}

/**
 * `ttl: 312 puts with a TTL (41 in transactions); 88 reads found a key expired (57 expirations)`:
 * the reads that found a key absent because a TTL write's value expired, and those expiries, in
 * the linearization the checker found (it expires a key only when a read needs it gone); 0 when
 * the history is not linearizable.
 */
export function ttlLine(result: ChaosResult): string {
  const { total, inTransactions } = ttlPuts(result.history);
  const { expiredReads, expirations } = result.check;
  return (
    `ttl: ${total} put${total === 1 ? '' : 's'} with a TTL (${inTransactions} in transactions); ` +
    `${expiredReads} read${expiredReads === 1 ? '' : 's'} found a key expired (${expirations} expiration${expirations === 1 ? '' : 's'})`
  );
}

/** Puts the workload issued with a TTL: single ones, and transaction puts (either branch). */
function ttlPuts(history: readonly Operation[]): { total: number; inTransactions: number } {
  let single = 0;
  let inTransactions = 0;
  for (const operation of history) {
    if (operation.type === 'put' && operation.ttlMs !== undefined) single++;
    if (operation.type !== 'txn') continue;
    for (const step of [...operation.success, ...operation.failure]) if (step.op === 'put' && step.ttlMs !== undefined) inTransactions++;
  }
  return { total: single + inTransactions, inTransactions };
}

/** `key k` or `keys {g0}a+{g0}b+{g0}c`. */
function objectName(check: KeyCheck): string {
  return `${check.keys.length > 1 ? 'keys' : 'key'} ${check.key}`;
}

/** Writes the run's files into `outDir` (created if needed). */
export function writeOutputs(outDir: string, result: ChaosResult): string[] {
  mkdirSync(outDir, { recursive: true });
  const written = ['history.jsonl', 'timeline.txt', 'report.txt'];
  writeFileSync(join(outDir, 'history.jsonl'), historyToJsonLines(result.history));
  writeFileSync(join(outDir, 'timeline.txt'), result.timeline.render());
  writeFileSync(join(outDir, 'report.txt'), [...summaryLines(result), verdictLine(result)].join('\n') + '\n');
  if (result.violations.length > 0) {
    writeFileSync(join(outDir, 'violation.txt'), result.violations.map(renderViolation).join('\n'));
    written.push('violation.txt');
  }
  return written;
}

/**
 * A failing sub-history as text: one row per operation in invocation order, and a diagram of the
 * intervals (`|----|` completed, `|----?` indeterminate) on a shared time axis.
 */
export function renderViolation(violation: Violation): string {
  const operations = [...violation.minimized].sort((a, b) => a.invokedAtMs - b.invokedAtMs);
  const lines = [
    `${objectName(violation.check)}: NOT linearizable`,
    `why: ${violation.check.reason ?? 'no order of the operations explains them'}`,
    `smallest failing sub-history found: ${operations.length} of ${violation.check.operations} operations on ${violation.check.keys.length > 1 ? 'these keys' : 'this key'}`,
    '',
  ];
  if (operations.length === 0) return lines.join('\n');
  const startMs = Math.min(...operations.map((op) => op.invokedAtMs));
  const endMs = Math.max(...operations.map((op) => op.completedAtMs));
  const width = 40;
  const column = (ms: number): number => Math.round(((ms - startMs) / Math.max(endMs - startMs, 1)) * (width - 1));
  for (const operation of operations) {
    const from = column(operation.invokedAtMs);
    const to = Math.max(column(operation.completedAtMs), from + 1);
    const bar = ' '.repeat(from) + '|' + '-'.repeat(Math.max(to - from - 1, 0)) + (isIndeterminate(operation) ? '?' : '|');
    const times = `${operation.invokedAtMs.toFixed(1)}–${isIndeterminate(operation) ? '?' : operation.completedAtMs.toFixed(1)} ms`;
    lines.push(`#${String(operation.id).padEnd(6)} ${bar.padEnd(width + 1)} ${times.padEnd(24)} ${describeOperation(operation)}`);
  }
  return lines.join('\n') + '\n';
}
