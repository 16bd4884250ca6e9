/**
 * The bench workload: a fixed keyspace of `keys` keys of exactly `keyBytes` bytes, values of exactly
 * `valueBytes` bytes, and a get/put mix. Key i is `k` followed by i zero-padded to the key length, so
 * every run with the same settings touches the same keys (and the key distribution is repeatable).
 */
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../common/index.js';

/** The shape of the load, shared by every worker. */
export interface WorkloadSettings {
  /** Size of the keyspace; every key is preloaded before the measured phase. */
  keys: number;
  /** Bytes per key (1…20 by the protocol's limit); must fit `k` plus the largest index. */
  keyBytes: number;
  /** Bytes per value (0…1024). */
  valueBytes: number;
  /** Percentage of gets (0…100); the rest are puts. */
  getPercent: number;
}

/** Why a workload cannot be built, as one line naming the flag. */
export class WorkloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkloadError';
  }
}

/** Checks the settings against the protocol limits; throws {@link WorkloadError}. */
export function checkWorkload(settings: WorkloadSettings): void {
  const digits = String(Math.max(0, settings.keys - 1)).length;
  if (settings.keyBytes > MAX_KEY_BYTES) throw new WorkloadError(`--key-bytes ${settings.keyBytes} is over the key limit of ${MAX_KEY_BYTES} bytes`);
  if (settings.keyBytes < 1 + digits) {
    throw new WorkloadError(`--key-bytes ${settings.keyBytes} is too short for ${settings.keys} keys: they need ${1 + digits} bytes ("k" + ${digits} digits)`);
  }
  if (settings.valueBytes > MAX_VALUE_BYTES) throw new WorkloadError(`--value-bytes ${settings.valueBytes} is over the value limit of ${MAX_VALUE_BYTES} bytes`);
  if (settings.getPercent < 0 || settings.getPercent > 100) throw new WorkloadError(`--mix wants a percentage of gets in 0…100, got ${settings.getPercent}`);
}

/** Key number `index`: `k` + the index zero-padded to exactly `keyBytes` bytes. */
export function benchKey(index: number, keyBytes: number): string {
  return `k${String(index).padStart(keyBytes - 1, '0')}`;
}

/** Every key of the keyspace, in index order. */
export function benchKeys(settings: Pick<WorkloadSettings, 'keys' | 'keyBytes'>): string[] {
  return Array.from({ length: settings.keys }, (_, index) => benchKey(index, settings.keyBytes));
}

/** A value of exactly `valueBytes` printable bytes (the content does not matter to the store). */
export function benchValue(valueBytes: number): Uint8Array {
  const value = new Uint8Array(valueBytes);
  for (let i = 0; i < valueBytes; i++) value[i] = 97 + (i % 26);
  return value;
}
