/**
 * `kvstore txn`: one transaction from a JSON document (DESIGN.md §6), on stdin or `--file`:
 * ```json
 * {"compare": [{"key": "{u1}a", "version": 3} | {"key": …, "value": "v"} | {"key": …, "exists": false}],
 *  "success": [{"put": {"key": …, "value": …, "ttl": "30s"}} | {"delete": {"key": …}} | {"get": {"key": …}}],
 *  "failure": […]}
 * ```
 * Prints `{"succeeded": true|false, "results": [{"put": {"key", "version"}} | {"delete": {"key",
 * "existed"}} | {"get": {"key", "value" (null when absent), "version"}}]}`; exit 0 when the compares
 * held, 4 when they did not, 2 for bad input (keys in two shards among it).
 */
import { readFile } from 'node:fs/promises';
import type { KVTxn, KVTxnOpResult, KVTxnResult } from '../client/index.js';
import { isValidUtf8 } from '../common/index.js';
import { BadInputError, parseDuration } from './client-util.js';

const DOCUMENT_FIELDS = ['compare', 'success', 'failure'];
const OP_FIELDS: Record<string, readonly string[]> = { put: ['key', 'value', 'ttl'], delete: ['key'], get: ['key'] };
const COMPARE_FIELDS = ['key', 'value', 'version', 'exists'];

/** The document's text: `--file F`, else stdin. */
export async function readTxnDocument(file: string | undefined, stdin: () => Promise<Uint8Array>): Promise<string> {
  if (file === undefined) return Buffer.from(await stdin()).toString('utf8');
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new BadInputError(`--file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/**
 * Parses a transaction document. Unknown fields are refused by name (a typo must not turn a
 * compare into no compare); the client checks keys, values, counts and shards when it runs.
 */
export function parseTxnDocument(text: string): KVTxn {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new BadInputError(`the transaction is not JSON: ${(error as Error).message}`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new BadInputError('the transaction is a JSON object: {"compare": […], "success": […], "failure": […]}');
  }
  onlyFields(document, DOCUMENT_FIELDS, 'the transaction');
  const fields = document as Record<string, unknown>;
  for (const name of DOCUMENT_FIELDS) {
    const list = fields[name];
    if (list !== undefined && !Array.isArray(list)) throw new BadInputError(`"${name}" must be an array`);
  }
  for (const [i, compare] of listAt(fields.compare).entries()) {
    if (typeof compare !== 'object' || compare === null) throw new BadInputError(`compare ${i + 1} must be an object`);
    onlyFields(compare, COMPARE_FIELDS, `compare ${i + 1}`);
  }
  for (const branch of ['success', 'failure'] as const) {
    for (const [i, op] of listAt(fields[branch]).entries()) {
      const where = `${branch} operation ${i + 1}`;
      if (typeof op !== 'object' || op === null) throw new BadInputError(`${where} must be an object`);
      const kinds = Object.keys(op);
      const kind = kinds[0];
      const allowed = kind === undefined ? undefined : OP_FIELDS[kind];
      if (kinds.length !== 1 || kind === undefined || allowed === undefined) {
        throw new BadInputError(`${where} must be one of {"put": {…}}, {"delete": {…}}, {"get": {…}}`);
      }
      const body: unknown = (op as Record<string, unknown>)[kind];
      if (typeof body !== 'object' || body === null) throw new BadInputError(`${where}: "${kind}" takes an object`);
      onlyFields(body, allowed, `${where} (${kind})`);
      if (kind === 'put' && 'ttl' in body) {
        // The document's "ttl" is a duration ("30s"); the client takes ttlMs.
        const put = body as { ttl?: unknown; ttlMs?: number };
        if (typeof put.ttl !== 'string') throw new BadInputError(`${where}: "ttl" is a duration string such as "30s"`);
        put.ttlMs = parseDuration(put.ttl, `${where}: "ttl"`);
        delete put.ttl;
      }
    }
  }
  return document;
}

/** The result as the command prints it. */
export function txnResultJson(result: KVTxnResult): Record<string, unknown> {
  return { succeeded: result.succeeded, results: result.results.map(resultJson) };
}

function resultJson(result: KVTxnOpResult): Record<string, unknown> {
  switch (result.op) {
    case 'put':
      return { put: { key: result.key, version: result.version } };
    case 'delete':
      return { delete: { key: result.key, existed: result.existed } };
    case 'get': {
      const entry = result.entry;
      if (entry === null) return { get: { key: result.key, value: null, version: 0 } };
      return isValidUtf8(entry.bytes)
        ? { get: { key: result.key, value: entry.value, version: entry.version } }
        : { get: { key: result.key, value: Buffer.from(entry.bytes).toString('base64'), encoding: 'base64', version: entry.version } };
    }
  }
}

function listAt(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

function onlyFields(object: object, allowed: readonly string[], where: string): void {
  for (const field of Object.keys(object)) {
    if (!allowed.includes(field)) throw new BadInputError(`${where} has an unknown field "${field}" (it takes ${allowed.map((f) => `"${f}"`).join(', ')})`);
  }
}
