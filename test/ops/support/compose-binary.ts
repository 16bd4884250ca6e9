/**
 * Which Compose binary may check the compose files with `config -q`. Compose v2 (the
 * `docker compose` plugin, or a standalone `docker-compose` 2.x) implements the Compose
 * Specification; Compose v1 (the Python `docker-compose` 1.x) predates its top-level `name:`
 * and rejects both files, so running it would fail the test for the machine, not the file.
 */
import { spawnSync } from 'node:child_process';

/** A Compose version as `version --short` (or `version`) prints it. */
export interface ComposeVersion {
  major: number;
  minor: number;
  patch: number;
  /** As printed, e.g. `1.29.2`, `v2.27.0` or `2.24.6-desktop.1`. */
  text: string;
}

/** One way to run Compose: `binary [...prefix] <compose arguments>`. */
export interface ComposeCommand {
  binary: string;
  prefix: string[];
}

/** What to do: run `config -q` with `command`, or skip the check for `reason`. */
export type ComposeChoice =
  | { use: true; command: ComposeCommand; version: ComposeVersion }
  | { use: false; reason: string };

/**
 * Runs `binary args` and returns its stdout, or undefined when it cannot be run or exits
 * non-zero (no such binary; `docker` without the compose plugin says "unknown command").
 */
export type VersionProbe = (binary: string, args: readonly string[]) => string | undefined;

/** The candidates, in order of preference: the v2 plugin, then a standalone binary. */
export const COMPOSE_COMMANDS: readonly ComposeCommand[] = [
  { binary: 'docker', prefix: ['compose'] },
  { binary: 'docker-compose', prefix: [] },
];

/**
 * The first `[v]MAJOR.MINOR.PATCH[-suffix]` in `output`: `--short` prints just that
 * (`1.29.2`, `2.24.6-desktop.1`; some v2 builds add a `v`), a plain `version` prints it in a
 * sentence (`docker-compose version 1.29.2, build 5becea4c`, `Docker Compose version v2.27.0`).
 */
export function parseComposeVersion(output: string): ComposeVersion | undefined {
  const match = /\bv?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?/.exec(output);
  if (match === null) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]), text: match[0] };
}

function commandText(command: ComposeCommand): string {
  return [command.binary, ...command.prefix].join(' ');
}

/**
 * Picks the Compose binary for `config -q`: the first candidate that runs and reports 2.x or
 * later. A candidate that reports 1.x is never used; when nothing usable is found, the reason
 * names what was found (Compose v1, an unreadable version) or says that nothing was.
 */
export function chooseCompose(probe: VersionProbe = runProbe): ComposeChoice {
  const rejected: string[] = [];
  for (const command of COMPOSE_COMMANDS) {
    const output = probe(command.binary, [...command.prefix, 'version', '--short']) ??
      probe(command.binary, [...command.prefix, 'version']);
    if (output === undefined) continue;
    const version = parseComposeVersion(output);
    if (version === undefined) {
      rejected.push(`\`${commandText(command)} version\` printed no version (${JSON.stringify(output.trim().slice(0, 80))})`);
    } else if (version.major < 2) {
      rejected.push(`${commandText(command)} ${version.text} is Compose v1, which rejects the Compose Specification's ` +
        'top-level name:; install the docker compose v2 plugin');
    } else {
      return { use: true, command, version };
    }
  }
  if (rejected.length === 0) return { use: false, reason: 'neither `docker compose` nor `docker-compose` is installed' };
  return { use: false, reason: rejected.join('; ') };
}

/** Runs the probe for real, with a deadline so a wedged docker daemon cannot hang the test. */
function runProbe(binary: string, args: readonly string[]): string | undefined {
  const result = spawnSync(binary, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  return result.status === 0 ? result.stdout : undefined;
}
