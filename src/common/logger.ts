/**
 * Logging setup shared by every process: winston, one JSON object per line, with
 * `component`, `node` and `shard` fields where they apply.
 */
import winston from 'winston';

/** Levels accepted by `--log-level`. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The fields every child logger may carry. */
export interface LogContext {
  component?: string;
  node?: string;
  shard?: number;
}

export type Logger = winston.Logger;

/**
 * Creates the process's root logger writing JSON lines to stderr (stdout is kept
 * for command output such as `ready manager=…`), or appending them to `file`. The level
 * comes from the argument, else `KVSTORE_LOG_LEVEL`, else `info`.
 */
export function createLogger(level?: LogLevel, context: LogContext = {}, file?: string): Logger {
  const envLevel = process.env['KVSTORE_LOG_LEVEL'];
  const chosen: string = level ?? (isLogLevel(envLevel) ? envLevel : 'info');
  return winston.createLogger({
    level: chosen,
    defaultMeta: context,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [file === undefined ? new winston.transports.Console({ stderrLevels: [...LOG_LEVELS] }) : new winston.transports.File({ filename: file })],
  });
}

/** A logger that drops everything, for libraries used without a logger and for tests. */
export function createSilentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

/** True when `value` names a log level. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}
