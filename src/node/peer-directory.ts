/**
 * Where each peer node lives: node id → `host:port`, learned from the manager's
 * heartbeat answers and kept in `<data-dir>/peers.json`, so a node restarted while
 * the manager is down still reaches its peers.
 * @internal
 */
import { diskTextFiles, type TextFileStore } from '../common/index.js';
import { join } from 'node:path';

/** Node id → address, persisted on change (temp file + fsync + rename). */
export class PeerDirectory {
  private readonly addresses = new Map<string, string>();
  private readonly file: string | undefined;

  /**
   * `dataDir` undefined keeps the directory in memory only (tests); `files` is where the
   * file lives (default the real disk; the simulator's disk in test/sim).
   */
  constructor(dataDir?: string, private readonly files: TextFileStore = diskTextFiles) {
    this.file = dataDir === undefined ? undefined : join(dataDir, 'peers.json');
    if (this.file !== undefined) this.load(this.file);
  }

  private load(file: string): void {
    const text = this.files.readIfExists(file);
    if (text === undefined) return;
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null) throw new Error(`${file}: expected an object of node id → address`);
    for (const [nodeId, address] of Object.entries(parsed)) {
      if (typeof address === 'string') this.addresses.set(nodeId, address);
    }
  }

  /** The address of `nodeId`, when known. */
  get(nodeId: string): string | undefined {
    return this.addresses.get(nodeId);
  }

  /** Every known node id → address. */
  entries(): IterableIterator<[string, string]> {
    return this.addresses.entries();
  }

  /**
   * Records addresses; persists and returns the ids whose address changed (their
   * connections must be re-made). Nodes missing from `known` are kept: a manager
   * that restarted may not list them yet.
   */
  update(known: Iterable<{ nodeId: string; address: string }>): string[] {
    const changed: string[] = [];
    for (const { nodeId, address } of known) {
      if (nodeId === '' || address === '' || this.addresses.get(nodeId) === address) continue;
      this.addresses.set(nodeId, address);
      changed.push(nodeId);
    }
    if (changed.length > 0 && this.file !== undefined) this.save(this.file);
    return changed;
  }

  private save(file: string): void {
    this.files.writeAtomic(file, JSON.stringify(Object.fromEntries(this.addresses), null, 2) + '\n');
  }
}
