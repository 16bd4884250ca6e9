/**
 * Errors of the durable storage. Corruption and I/O failure are not outcomes a
 * caller can handle: the node logs the fields and exits non-zero (STYLE.md §4).
 */

/** Codes of {@link WalCorruptionError}; branch on these, never on message text. */
export type WalCorruptionCode =
  /**
   * A record whose CRC does not match where a crash cannot explain it: in a
   * segment that is not the last, or followed by a later batch of its segment
   * (in a segment without batch headers: by any well-formed record).
   */
  | 'CRC_MISMATCH'
  /** A length prefix that is impossible (too small, too large, past the end of its batch or segment), where a crash cannot explain it. */
  | 'BAD_LENGTH'
  /**
   * A record whose CRC matches but whose payload does not decode, or that is
   * out of place (a record outside any batch, a batch header of another
   * segment or out of sequence): a bug or a foreign file.
   */
  | 'BAD_RECORD'
  /** A group's entries after its snapshot do not start right after it. */
  | 'LOG_GAP'
  /** A snapshot marker names a data file that is absent. */
  | 'SNAPSHOT_MISSING'
  /** A snapshot data file whose length or CRC differs from its marker's. */
  | 'SNAPSHOT_CORRUPT';

/**
 * The WAL or a snapshot file is damaged somewhere a crash cannot explain (not a
 * torn tail). Recovery refuses to guess: `file` and `offset` say where to look.
 */
export class WalCorruptionError extends Error {
  /** What is wrong. */
  readonly code: WalCorruptionCode;
  /** The damaged file's path. */
  readonly file: string;
  /** Byte offset of the damaged record within `file` (0 for whole-file problems). */
  readonly offset: number;

  constructor(code: WalCorruptionCode, file: string, offset: number, detail: string) {
    super(`wal corruption (${code}) in ${file} at offset ${offset}: ${detail}`);
    this.name = 'WalCorruptionError';
    this.code = code;
    this.file = file;
    this.offset = offset;
  }
}

/** Codes of {@link WalError}. */
export type WalErrorCode =
  /** A write or fsync failed; the WAL refuses all further syncs (an fsync cannot be retried safely). */
  | 'IO_FAILED'
  /** The WAL was closed. */
  | 'CLOSED'
  /** `openGroup` for a group whose storage is already open. */
  | 'GROUP_ALREADY_OPEN'
  /** A write to the storage of a group that was dropped. */
  | 'GROUP_DROPPED'
  /** A value that cannot be encoded (negative, not an integer, beyond 2^53 or 2^32 where the format says so). */
  | 'INVALID_VALUE';

/** Misuse of the WAL or a failure of the disk under it. */
export class WalError extends Error {
  /** What went wrong. */
  readonly code: WalErrorCode;

  constructor(code: WalErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WalError';
    this.code = code;
  }
}
