/**
 * Small state files written so that a crash leaves either the old or the new
 * contents, never a torn mix: write a temp file, fsync it, rename it over the old
 * one, fsync the directory so the rename itself is durable. Used for the
 * manager's state.json and a node's node.json and peers.json.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Replaces `path` with `text` atomically and durably; returns once both are on disk. */
export function writeFileAtomicSync(path: string, text: string): void {
  const temporary = `${path}.tmp`;
  const descriptor = openSync(temporary, 'w', 0o644);
  try {
    const bytes = Buffer.from(text, 'utf8');
    let written = 0;
    while (written < bytes.length) written += writeSync(descriptor, bytes, written, bytes.length - written);
    fsyncSync(descriptor);
  } finally {
    closeSync(descriptor);
  }
  renameSync(temporary, path);
  const directory = openSync(dirname(path), 'r');
  try {
    fsyncSync(directory);
  } finally {
    closeSync(directory);
  }
}

/** The file's text, or undefined when it does not exist; other I/O errors throw. */
export function readFileIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof Error && 'code' in error && error.code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Small state files as an interface, so the whole-node simulator can keep them on its
 * simulated disk; {@link diskTextFiles} is the real one.
 */
export interface TextFileStore {
  /** The file's text, or undefined when it does not exist. */
  readIfExists(path: string): string | undefined;
  /** Replaces the file's text atomically; durable when this returns. */
  writeAtomic(path: string, text: string): void;
}

/** Small state files on the real disk. */
export const diskTextFiles: TextFileStore = { readIfExists: readFileIfExists, writeAtomic: writeFileAtomicSync };
