/**
 * Errors the manager throws. Callers branch on `code`, never on the message.
 */

/** What went wrong: a corrupt or foreign state file, or a port that could not be bound. */
export type ManagerErrorCode = 'STATE_CORRUPT' | 'STATE_MISMATCH' | 'BIND_FAILED';

/** A manager failure with a code the CLI maps to an exit status. */
export class ManagerError extends Error {
  readonly code: ManagerErrorCode;

  constructor(code: ManagerErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ManagerError';
    this.code = code;
  }
}
