/**
 * A simulated disk for the WAL tests and the whole-node simulator, in the
 * manner of TigerBeetle's and FoundationDB's simulators: the shipping storage
 * code runs on it unchanged (it implements `FileSystem` and `TextFileStore`),
 * and every choice it makes comes from one seeded random source, so a run
 * replays from its seed.
 *
 * What it models:
 * - Files ({@link SimFile}): the page cache apart from the durable bytes; a
 *   datasync makes durable what was written before it was called.
 * - Directories ({@link SimNamespace}): creations, renames and deletions are
 *   durable only once their directory is synced; unsynced ones survive a power
 *   loss as a prefix, in order.
 * - Processes: {@link SimDisk.process} returns one incarnation's view.
 *   {@link SimDisk.kill} (SIGKILL) ends every view but keeps the page cache;
 *   {@link SimDisk.powerLoss} also replaces every file's unsynced data the ways
 *   a kernel can (a prefix, independent pages kept, lost or zeroed, or one page
 *   torn at sector granularity) and keeps a prefix of the unsynced directory
 *   operations. A dead view's pending operations never settle (the dead process
 *   must not run again) and its new calls reject or throw `ESIMKILLED`.
 * - Time: async operations complete through the injected scheduler (virtual
 *   time in the whole-node simulator) after a latency; without a scheduler each
 *   completes in a microtask. An operation takes effect when it completes.
 * - Faults: {@link SimDisk.corrupt} flips bits of synced data; the latency
 *   functions can be swapped at any time (a slow fsync, seconds long).
 */
import { posix } from 'node:path';
import type { TextFileStore } from '../../src/common/atomic-file.js';
import type { RandomSource } from '../../src/raft/index.js';
import type { FileHandle, FileSystem, OpenMode } from '../../src/raft/storage/index.js';
import { SimFile, type FileLoss, type FileState } from './sim-file.js';
import { normalizePath, SimFileSystemError, SimNamespace } from './sim-namespace.js';

export { PAGE_BYTES, SECTOR_BYTES, type FileLoss, type FileState, type PageFate } from './sim-file.js';
export { SimFileSystemError } from './sim-namespace.js';

/** Runs `run` after `delayMs` of (virtual) time. */
export type Scheduler = (delayMs: number, run: () => void) => void;

/** How a {@link SimDisk} is built. */
export interface SimDiskOptions {
  /** Every random choice of the disk: power-loss outcomes and the default latencies. */
  random: RandomSource;
  /** Completes async operations on (virtual) time. Default: each completes in a microtask, latency ignored. */
  scheduler?: Scheduler;
  /** Latency of a datasync or directory sync, per call. Default 1–4 ms, drawn from `random`. */
  syncLatencyMs?: (path: string) => number;
  /** Latency of every other async operation. Default 0–1 ms, drawn from `random`. */
  operationLatencyMs?: (path: string) => number;
  /**
   * Whether file handles offer `datasyncSync` (the WAL's inline fsync, `fsync-policy.ts`).
   * Default false: every fsync is async.
   */
  inlineSyncs?: boolean;
}

/** Choices a test can make for a {@link SimDisk.powerLoss} instead of leaving them to chance. */
export interface PowerLossPlan {
  /** How many of the unsynced directory operations survive, oldest first. */
  directoryOperationsKept?: number;
  /** What happens to the file at `path`; undefined for a random choice. */
  file?: (path: string, state: FileState) => FileLoss | undefined;
}

/** The error of a call on a dead process's view. */
function killedError(operation: string): SimFileSystemError {
  return new SimFileSystemError('ESIMKILLED', `${operation} by a killed process`, '-');
}

/**
 * One process incarnation, alive until the next kill or power loss.
 * @internal
 */
export interface Incarnation {
  alive: boolean;
}

/** The simulated disk of one machine; see the module comment. */
export class SimDisk {
  /** Latency of a datasync or directory sync; replace it to inject slow fsyncs. */
  syncLatencyMs: (path: string) => number;
  /** Latency of every other async operation. */
  operationLatencyMs: (path: string) => number;
  /** Whether file handles offer `datasyncSync` ({@link SimDiskOptions.inlineSyncs}). */
  readonly inlineSyncs: boolean;
  /**
   * Stalls the current process for an inline fsync's latency (ms): nothing of it runs
   * meanwhile, as a thread blocked in `fdatasync`. Set by whoever attaches a process; without
   * it an inline fsync takes no time.
   */
  stallProcess: ((latencyMs: number) => void) | undefined;
  private readonly random: RandomSource;
  private readonly scheduler: Scheduler | undefined;
  private readonly namespace = new SimNamespace();
  private incarnations: Incarnation[] = [];

  constructor(options: SimDiskOptions) {
    this.random = options.random;
    this.scheduler = options.scheduler;
    this.syncLatencyMs = options.syncLatencyMs ?? (() => 1 + this.random.nextInt(4));
    this.operationLatencyMs = options.operationLatencyMs ?? (() => this.random.nextInt(2));
    this.inlineSyncs = options.inlineSyncs ?? false;
  }

  /** A new process's view of the disk: the disk as it is now (after any crash). */
  process(): SimProcess {
    const incarnation: Incarnation = { alive: true };
    this.incarnations.push(incarnation);
    return new SimProcess(this, this.namespace, incarnation);
  }

  /** SIGKILL: every process is gone; the page cache, and so every write, stays (unsynced). */
  kill(): void {
    for (const incarnation of this.incarnations) incarnation.alive = false;
    this.incarnations = [];
  }

  /**
   * Power loss: kills every process, keeps a prefix of the unsynced directory
   * operations, and replaces each surviving file's unsynced data (see
   * {@link FileLoss}); synced data is never touched. `plan` fixes choices for scripted tests.
   */
  powerLoss(plan: PowerLossPlan = {}): void {
    this.kill();
    const pending = this.namespace.pendingOperations();
    const kept = plan.directoryOperationsKept ?? this.random.nextInt(pending + 1);
    for (const [path, file] of this.namespace.losePower(kept)) {
      const loss = plan.file?.(path, file.state());
      if (loss === undefined) file.losePower(this.random);
      else file.losePower(this.random, loss);
    }
  }

  /** Flips the bits of `mask` in the synced byte at `offset` of `path`: damage recovery must refuse. */
  corrupt(path: string, offset: number, mask = 0x01): void {
    this.namespace.file(normalizePath(path), 'corrupt').corrupt(offset, mask);
  }

  /** The current content of `path` (what a process reads), or undefined when it does not exist. */
  read(path: string): Uint8Array | undefined {
    return this.namespace.lookup(normalizePath(path))?.read();
  }

  /** Lengths and dirty pages of `path`, or undefined when it does not exist. */
  fileState(path: string): FileState | undefined {
    return this.namespace.lookup(normalizePath(path))?.state();
  }

  /** Paths of the files holding unsynced data (written or truncated since their last datasync), sorted. */
  unsyncedFiles(): string[] {
    return this.namespace.files().flatMap(([path, file]) => {
      const { length, durableLength, dirtyPages } = file.state();
      return dirtyPages.length > 0 || length !== durableLength ? [path] : [];
    });
  }

  /** How many directory operations are not yet durable. */
  pendingDirectoryOperations(): number {
    return this.namespace.pendingOperations();
  }

  /**
   * Runs `effect` after `latencyMs`, settling the returned promise with its
   * result, unless the process died first: then it never settles.
   * @internal For {@link SimProcess} and its handles.
   */
  perform<T>(incarnation: Incarnation, operation: string, latencyMs: number, effect: () => T): Promise<T> {
    if (!incarnation.alive) return Promise.reject(killedError(operation));
    return new Promise<T>((resolve, reject) => {
      const run = (): void => {
        if (!incarnation.alive) return;
        let value: T;
        try {
          value = effect();
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        resolve(value);
      };
      if (this.scheduler === undefined) queueMicrotask(run);
      else this.scheduler(latencyMs, run);
    });
  }
}

/** One process's view of a {@link SimDisk}: a `FileSystem` for the WAL and a `TextFileStore` for small state files. */
export class SimProcess implements FileSystem, TextFileStore {
  /** @internal Use {@link SimDisk.process}. */
  constructor(
    private readonly disk: SimDisk,
    private readonly namespace: SimNamespace,
    private readonly incarnation: Incarnation,
  ) {}

  /** False once the disk was killed or lost power. */
  get alive(): boolean {
    return this.incarnation.alive;
  }

  mkdir(path: string): Promise<void> {
    const key = normalizePath(path);
    return this.disk.perform(this.incarnation, 'mkdir', this.disk.operationLatencyMs(key), () => this.namespace.mkdir(key));
  }

  readdir(path: string): Promise<string[]> {
    const key = normalizePath(path);
    return this.disk.perform(this.incarnation, 'readdir', this.disk.operationLatencyMs(key), () => this.namespace.readdir(key));
  }

  readFile(path: string): Promise<Uint8Array> {
    const key = normalizePath(path);
    return this.disk.perform(this.incarnation, 'readFile', this.disk.operationLatencyMs(key), () => this.namespace.file(key, 'open').read());
  }

  open(path: string, mode: OpenMode): Promise<FileHandle> {
    const key = normalizePath(path);
    return this.disk.perform(this.incarnation, 'open', this.disk.operationLatencyMs(key), () => {
      let file = this.namespace.lookup(key);
      if (file === undefined) {
        if (mode === 'existing') throw new SimFileSystemError('ENOENT', 'open', path);
        file = new SimFile();
        this.namespace.create(key, file);
      } else if (mode === 'truncate') {
        file.truncate(0);
      }
      return new SimHandle(this.disk, this.incarnation, file, key);
    });
  }

  rename(from: string, to: string): Promise<void> {
    const fromKey = normalizePath(from);
    const toKey = normalizePath(to);
    return this.disk.perform(this.incarnation, 'rename', this.disk.operationLatencyMs(fromKey), () => this.namespace.rename(fromKey, toKey));
  }

  unlink(path: string): Promise<void> {
    const key = normalizePath(path);
    return this.disk.perform(this.incarnation, 'unlink', this.disk.operationLatencyMs(key), () => this.namespace.unlink(key));
  }

  syncDirectory(path: string): Promise<void> {
    const key = normalizePath(path);
    if (!this.incarnation.alive) return Promise.reject(killedError('syncDirectory'));
    let upTo: number;
    try {
      upTo = this.namespace.captureDirectorySync(key);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return this.disk.perform(this.incarnation, 'syncDirectory', this.disk.syncLatencyMs(key), () => this.namespace.applyDirectorySync(key, upTo));
  }

  /** The file's text, or undefined when it does not exist. Synchronous, like the real one. */
  readIfExists(path: string): string | undefined {
    if (!this.incarnation.alive) throw killedError('readIfExists');
    const file = this.namespace.lookup(normalizePath(path));
    return file === undefined ? undefined : new TextDecoder().decode(file.read());
  }

  /**
   * Replaces the file's text atomically and durably before returning, like the
   * real one (temp file, fsync, rename, fsync of the directory; the directory
   * sync also makes its earlier operations durable).
   */
  writeAtomic(path: string, text: string): void {
    if (!this.incarnation.alive) throw killedError('writeAtomic');
    const key = normalizePath(path);
    const file = new SimFile();
    const bytes = new TextEncoder().encode(text);
    file.write(bytes, 0, bytes.length, 0);
    file.syncNow();
    this.namespace.create(key, file);
    const dir = posix.dirname(key);
    this.namespace.applyDirectorySync(dir, this.namespace.captureDirectorySync(dir));
  }
}

/** An open file of one process. */
class SimHandle implements FileHandle {
  private closed = false;
  datasyncSync?: () => void;

  constructor(
    private readonly disk: SimDisk,
    private readonly incarnation: Incarnation,
    private readonly file: SimFile,
    private readonly path: string,
  ) {
    if (disk.inlineSyncs) this.datasyncSync = () => this.syncInline();
  }

  /** An inline datasync: durable at once, then the process stalls for the fsync's latency. */
  private syncInline(): void {
    if (!this.incarnation.alive) throw killedError('datasync');
    if (this.closed) throw new SimFileSystemError('EBADF', 'datasync', this.path);
    this.file.applySync(this.file.captureSync());
    this.disk.stallProcess?.(this.disk.syncLatencyMs(this.path));
  }

  writeSync(data: Uint8Array, offset: number, length: number, position: number): number {
    if (!this.incarnation.alive) throw killedError('write');
    if (this.closed) throw new SimFileSystemError('EBADF', 'write', this.path);
    return this.file.write(data, offset, length, position);
  }

  datasync(): Promise<void> {
    if (!this.incarnation.alive) return Promise.reject(killedError('datasync'));
    const point = this.file.captureSync();
    return this.disk.perform(this.incarnation, 'datasync', this.disk.syncLatencyMs(this.path), () => {
      if (this.closed) throw new SimFileSystemError('EBADF', 'datasync', this.path);
      this.file.applySync(point);
    });
  }

  truncate(length: number): Promise<void> {
    return this.disk.perform(this.incarnation, 'truncate', this.disk.operationLatencyMs(this.path), () => {
      if (this.closed) throw new SimFileSystemError('EBADF', 'truncate', this.path);
      this.file.truncate(length);
    });
  }

  close(): Promise<void> {
    return this.disk.perform(this.incarnation, 'close', this.disk.operationLatencyMs(this.path), () => {
      this.closed = true;
    });
  }
}
