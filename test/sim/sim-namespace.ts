/**
 * The directory tree of the simulated disk: which name points at which
 * {@link SimFile}, now (what processes see) and durably (what a power loss leaves).
 *
 * Creating, renaming and deleting a file changes the current tree at once and
 * appends an operation to a log; {@link SimNamespace.syncDirectory} makes the
 * logged operations of one directory durable. A power loss keeps a prefix of
 * the unsynced operations, in the order they happened (ext4 journals metadata
 * in order), and a file whose creation did not survive is gone. Every
 * operation touches names in one directory only, so operations on different
 * directories commute and applying one directory's early is sound.
 *
 * Directories themselves are created durably (the WAL creates its directories
 * once and fsyncs their parent at once).
 */
import { posix } from 'node:path';
import type { SimFile } from './sim-file.js';

/** A failed file system call, with Node's `code` (`ENOENT`, …). */
export class SimFileSystemError extends Error {
  readonly code: string;

  constructor(code: string, operation: string, path: string) {
    super(`${code}: ${operation} '${path}'`);
    this.name = 'SimFileSystemError';
    this.code = code;
  }
}

/** Absolute, normalised form of a path: the key of the namespace. */
export function normalizePath(path: string): string {
  return posix.resolve('/', path);
}

type Operation =
  | { kind: 'link'; sequence: number; dir: string; path: string; file: SimFile }
  | { kind: 'unlink'; sequence: number; dir: string; path: string }
  | { kind: 'rename'; sequence: number; dir: string; from: string; to: string };

function apply(names: Map<string, SimFile>, operation: Operation): void {
  switch (operation.kind) {
    case 'link':
      names.set(operation.path, operation.file);
      break;
    case 'unlink':
      names.delete(operation.path);
      break;
    case 'rename': {
      const file = names.get(operation.from);
      if (file === undefined) return;
      names.delete(operation.from);
      names.set(operation.to, file);
      break;
    }
  }
}

/** The simulated directory tree; paths are normalised by the caller ({@link normalizePath}). */
export class SimNamespace {
  private readonly directories = new Set<string>(['/']);
  private readonly names = new Map<string, SimFile>();
  private readonly durableNames = new Map<string, SimFile>();
  private pending: Operation[] = [];
  private sequence = 0;

  /** The file at `path`; throws `ENOENT` (or `EISDIR`). */
  file(path: string, operation: string): SimFile {
    const file = this.names.get(path);
    if (file !== undefined) return file;
    throw new SimFileSystemError(this.directories.has(path) ? 'EISDIR' : 'ENOENT', operation, path);
  }

  /** The file at `path`, or undefined. */
  lookup(path: string): SimFile | undefined {
    return this.names.get(path);
  }

  /** Creates `path` and its missing parents. */
  mkdir(path: string): void {
    for (let dir = path; !this.directories.has(dir); dir = posix.dirname(dir)) {
      if (this.names.has(dir)) throw new SimFileSystemError('ENOTDIR', 'mkdir', dir);
      this.directories.add(dir);
    }
  }

  /** Names in directory `path`, sorted. */
  readdir(path: string): string[] {
    this.checkDirectory(path, 'scandir');
    const entries: string[] = [];
    for (const name of [...this.directories, ...this.names.keys()]) {
      if (name !== '/' && posix.dirname(name) === path) entries.push(posix.basename(name));
    }
    return entries.sort();
  }

  /** Links a new file at `path` (replacing any). */
  create(path: string, file: SimFile): void {
    const dir = posix.dirname(path);
    this.checkDirectory(dir, 'open');
    if (this.directories.has(path)) throw new SimFileSystemError('EISDIR', 'open', path);
    this.log({ kind: 'link', sequence: ++this.sequence, dir, path, file });
  }

  /** Renames within one directory (the only kind the storage code does). */
  rename(from: string, to: string): void {
    this.file(from, 'rename');
    const dir = posix.dirname(from);
    if (posix.dirname(to) !== dir) throw new SimFileSystemError('EXDEV', 'rename across directories', `${from} -> ${to}`);
    if (this.directories.has(to)) throw new SimFileSystemError('EISDIR', 'rename', to);
    this.log({ kind: 'rename', sequence: ++this.sequence, dir, from, to });
  }

  /** Deletes a file. */
  unlink(path: string): void {
    this.file(path, 'unlink');
    this.log({ kind: 'unlink', sequence: ++this.sequence, dir: posix.dirname(path), path });
  }

  /** At a directory sync's call: how far it reaches in the log. Throws `ENOENT` for a missing directory. */
  captureDirectorySync(path: string): number {
    this.checkDirectory(path, 'open');
    return this.sequence;
  }

  /** At its completion: the directory's operations up to `upTo` become durable. */
  applyDirectorySync(path: string, upTo: number): void {
    const kept: Operation[] = [];
    for (const operation of this.pending) {
      if (operation.dir === path && operation.sequence <= upTo) apply(this.durableNames, operation);
      else kept.push(operation);
    }
    this.pending = kept;
  }

  /** Every current path and its file, sorted by path. */
  files(): [string, SimFile][] {
    return [...this.names].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** How many directory operations are not yet durable (for tests). */
  pendingOperations(): number {
    return this.pending.length;
  }

  /**
   * A power loss: the first `kept` unsynced operations become durable, the rest
   * are lost, and the tree becomes the durable one. Returns the surviving files by path.
   */
  losePower(kept: number): Map<string, SimFile> {
    for (const operation of this.pending.slice(0, kept)) apply(this.durableNames, operation);
    this.pending = [];
    this.names.clear();
    for (const [path, file] of this.durableNames) this.names.set(path, file);
    return new Map([...this.durableNames].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  private log(operation: Operation): void {
    apply(this.names, operation);
    this.pending.push(operation);
  }

  private checkDirectory(path: string, operation: string): void {
    if (this.directories.has(path)) return;
    throw new SimFileSystemError(this.names.has(path) ? 'ENOTDIR' : 'ENOENT', operation, path);
  }
}
