/**
 * Helpers shared by the client-side commands (put/get/del/cas, status, cluster): the `--manager`
 * option, exit codes, and one-line errors (DESIGN.md §6).
 */
import { Option, type Command } from 'commander';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { KVError, type ManagerUnreachableError } from '../client/index.js';

/** Signals that end a long-running command the way Ctrl-C does (SIGHUP: the terminal went away). */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Calls `handler` on each of {@link STOP_SIGNALS}; returns the function that stops listening. */
export function onStopSignals(handler: (signal: NodeJS.Signals) => void): () => void {
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, handler);
  };
}

/** Exit codes of every kvstore command (DESIGN.md §6). */
export const EXIT = {
  ok: 0,
  notFound: 1,
  badInput: 2,
  unavailable: 3,
  conflict: 4,
  unauthenticated: 5,
} as const;

/** The manager address used when neither `--manager` nor `KVSTORE_MANAGER` is given. */
export const DEFAULT_MANAGER = '127.0.0.1:7000';

/** Adds `--manager HOST:PORT`, defaulting to `KVSTORE_MANAGER`, else 127.0.0.1:7000. */
export function addManagerOption(command: Command): Command {
  const fromEnv = process.env['KVSTORE_MANAGER'];
  return command.addOption(
    new Option('--manager <host:port>', 'the manager to ask for the cluster map (env KVSTORE_MANAGER)').default(
      fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_MANAGER,
    ),
  );
}

/** Thrown by option parsers and checks: printed as one line, exit 2. */
export class BadInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadInputError';
  }
}

/** Checks a `host:port` address; throws {@link BadInputError} naming the flag otherwise. */
export function checkAddress(address: string, flag: string): string {
  const match = /^(.+):(\d{1,5})$/.exec(address);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || port < 1 || port > 65535) {
    throw new BadInputError(`${flag} wants HOST:PORT, got "${address}"`);
  }
  return address;
}

/** Parses a whole number within [min, max] for `flag`; throws {@link BadInputError} otherwise. */
export function parseInteger(text: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in ${min}…${max}`;
    throw new BadInputError(`${flag} wants a whole number ${range}, got "${text}"`);
  }
  return value;
}

/** Parses a positive number of seconds (fractions allowed) for `flag`. */
export function parseSeconds(text: string, flag: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new BadInputError(`${flag} wants a positive number of seconds, got "${text}"`);
  }
  return value;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration such as `500ms`, `30s`, `10m`, `2h` or `7d` into whole ms for `flag`
 * (a bare number is seconds); throws {@link BadInputError} naming the forms otherwise.
 */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const unit = DURATION_UNITS_MS[match?.[2] ?? 's'] ?? 1000;
  const ms = match === null ? NaN : Math.round(Number(match[1]) * unit);
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new BadInputError(`${flag} wants a duration such as 500ms, 30s, 10m, 2h or 7d, got "${text}"`);
  }
  return ms;
}

/** Prints one line on stderr and sets the exit code. */
export function failWith(message: string, exitCode: number): void {
  process.stderr.write(`${oneLine(message)}\n`);
  process.exitCode = exitCode;
}

/**
 * The exit code for a KVError code: 2 bad input, 3 unavailable/timeout/told to back off
 * (RESOURCE_EXHAUSTED)/closed, 4 conflict, 5 not authenticated.
 */
export function exitCodeFor(error: KVError): number {
  switch (error.code) {
    case 'INVALID_ARGUMENT':
      return EXIT.badInput;
    case 'CONFLICT':
      return EXIT.conflict;
    case 'UNAUTHENTICATED':
      return EXIT.unauthenticated;
    default:
      return EXIT.unavailable;
  }
}

/** The exit code for a failed manager call: 5 when it refused the credentials, else 3. */
export function exitForManagerError(error: ManagerUnreachableError): number {
  return error.grpcCode === GrpcStatus.UNAUTHENTICATED ? EXIT.unauthenticated : EXIT.unavailable;
}

/**
 * Reports an error from a command as one line with the right exit code. Errors that are neither
 * KVError nor bad input are bugs: they propagate.
 */
export function reportError(error: unknown): void {
  if (error instanceof BadInputError) failWith(`error: ${error.message}`, EXIT.badInput);
  else if (error instanceof KVError) failWith(`error: ${error.message}`, exitCodeFor(error));
  else throw error;
}

/** Collapses a message to one line. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

/** Reads all of stdin as bytes (for `VALUE` given as `-`). */
export async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return new Uint8Array(Buffer.concat(chunks));
}
