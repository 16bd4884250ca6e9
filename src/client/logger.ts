/**
 * The logging interface the client accepts. A winston logger (src/common/logger.ts) fits it; so
 * does `console`-like glue. The client logs routing events at debug and never logs user values.
 */

/** Log metadata: plain fields, never keys or values of the user's data. */
export type LogFields = Record<string, unknown>;

/** What `KVClient` needs from a logger. */
export interface ClientLogger {
  debug(message: string, fields?: LogFields): unknown;
  info(message: string, fields?: LogFields): unknown;
  warn(message: string, fields?: LogFields): unknown;
  error(message: string, fields?: LogFields): unknown;
}

/** The default: drops everything, so a library user sees no output they did not ask for. */
export const SILENT_LOGGER: ClientLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
