/**
 * A logger that keeps every line in memory, with the fields of its `child` loggers, for
 * tests that count the lines a node writes (one warn line per refused message). Like the
 * simulator's null logger, only the methods the node calls exist, and they run at once.
 */
import type { Logger } from '../../src/common/index.js';

/** One line as written. */
export interface RecordedLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

/** The lines of every logger made from {@link RecordingLog.logger}. */
export class RecordingLog {
  readonly lines: RecordedLine[] = [];
  /** The root logger to hand to the code under test. */
  readonly logger: Logger = this.make({});

  private make(context: Record<string, unknown>): Logger {
    const write = (level: RecordedLine['level']) => (message: string, fields?: Record<string, unknown>): void => {
      this.lines.push({ level, message, fields: { ...context, ...fields } });
    };
    const logger = {
      child: (fields: Record<string, unknown>) => this.make({ ...context, ...fields }),
      debug: write('debug'),
      info: write('info'),
      warn: write('warn'),
      error: write('error'),
    };
    return logger as unknown as Logger;
  }

  /** Lines at `level` from index `from` on, optionally only from node `nodeId`. */
  at(level: RecordedLine['level'], from = 0, nodeId?: string): RecordedLine[] {
    return this.lines.slice(from).filter((line) => line.level === level && (nodeId === undefined || line.fields['node'] === nodeId));
  }
}
