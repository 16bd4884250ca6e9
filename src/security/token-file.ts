/**
 * Bearer tokens from `--auth-token-file`: one token per line, blank lines and lines starting with
 * `#` ignored. Several tokens may be valid at once, which is how a token is rotated: add the new one,
 * reload (SIGHUP), move the clients over, remove the old one, reload again.
 *
 * Tokens are compared as SHA-256 digests in constant time, so the comparison's timing gives none
 * away. The first token is kept as it is too: a node sends it when it calls another process.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Shortest token accepted: 16 characters (e.g. `openssl rand -hex 16` gives 32). */
export const MIN_TOKEN_LENGTH = 16;
/** Longest token accepted (an HTTP/2 header has to carry it). */
export const MAX_TOKEN_LENGTH = 4096;
/** At most this many tokens in a file. */
export const MAX_TOKENS = 1024;

export class TokenFileError extends Error {
  override readonly name = 'TokenFileError';
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Checks a token as a client would send it (the same rules the file's lines obey).
 * @returns the problem, or undefined when it is acceptable.
 */
export function tokenProblem(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH) return `is ${token.length} characters; at least ${MIN_TOKEN_LENGTH} are needed`;
  if (token.length > MAX_TOKEN_LENGTH) return `is ${token.length} characters; at most ${MAX_TOKEN_LENGTH}`;
  if (!/^[\x21-\x7e]+$/.test(token)) return 'holds spaces or characters outside printable ASCII';
  return undefined;
}

/** Parses a token file's text. @throws TokenFileError naming the line and the limit. */
export function parseTokens(text: string, path: string): string[] {
  const tokens: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const problem = tokenProblem(line);
    if (problem !== undefined) throw new TokenFileError(`${path} line ${index + 1}: the token ${problem}`);
    tokens.push(line);
  }
  if (tokens.length === 0) throw new TokenFileError(`${path} holds no token (one per line; blank lines and # comments are skipped)`);
  if (tokens.length > MAX_TOKENS) throw new TokenFileError(`${path} holds ${tokens.length} tokens; at most ${MAX_TOKENS}`);
  return tokens;
}

/** The tokens of one file; {@link reload} re-reads it. */
export class TokenFile {
  private digests: Buffer[];
  private first: string;

  private constructor(readonly path: string, tokens: string[]) {
    this.digests = tokens.map(digest);
    this.first = tokens[0] as string;
  }

  /** Reads `path`. @throws TokenFileError when it cannot be read or holds no valid token. */
  static load(path: string): TokenFile {
    return new TokenFile(path, parseTokens(TokenFile.read(path), path));
  }

  private static read(path: string): string {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new TokenFileError(`--auth-token-file ${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  }

  /**
   * Re-reads the file. On an error the tokens in use stay (a half-edited file must not lock
   * everyone out) and the error is thrown for the caller to log.
   * @returns how many tokens are now valid.
   */
  reload(): number {
    const tokens = parseTokens(TokenFile.read(this.path), this.path);
    this.digests = tokens.map(digest);
    this.first = tokens[0] as string;
    return tokens.length;
  }

  /** How many tokens are valid. */
  get size(): number {
    return this.digests.length;
  }

  /** The first token: what this process sends when it calls another (node → manager, node → node). */
  get ownToken(): string {
    return this.first;
  }

  /** Whether `token` is one of the file's, in time independent of which or how much matched. */
  accepts(token: string): boolean {
    const candidate = digest(token);
    let found = false;
    for (const known of this.digests) found = timingSafeEqual(known, candidate) || found;
    return found;
  }
}
