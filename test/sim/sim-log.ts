/**
 * Logs of a replayed seed: the nodes' winston lines as JSON, stamped with the simulator's
 * virtual time (`t`, ms) instead of the wall clock, at the level asked for (`SIM_LOG=debug`).
 */
import winston from 'winston';
import { isLogLevel, type Logger } from '../../src/common/index.js';

const ignore = (): void => undefined;
/**
 * A logger that does nothing at all: even a silent winston logger spends microseconds on
 * each call, which a thousand seeds feel. Only the methods the node calls exist.
 */
const NULL_LOGGER = {
  child: () => NULL_LOGGER,
  debug: ignore,
  info: ignore,
  warn: ignore,
  error: ignore,
} as unknown as Logger;

/** A logger at `level` stamped with `nowMs()`, or one that drops everything when no level is given. */
export function simLogger(level: string | undefined, nowMs: () => number): Logger {
  if (level === undefined || !isLogLevel(level)) return NULL_LOGGER;
  const virtualTime = winston.format((info) => ({ ...info, t: Number(nowMs().toFixed(3)) }));
  return winston.createLogger({
    level,
    format: winston.format.combine(virtualTime(), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}
