/**
 * Reads docker-compose.yml the way `docker compose config` would for what the ops tests
 * check: YAML with merge keys (`<<: *anchor`) resolved, services with their command,
 * ports, volumes, depends_on and healthcheck. The netns test starts the same commands.
 */
import { load } from 'js-yaml';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (dist/test/ops/support → ../../../..). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** One service, as much of it as the tests look at. */
export interface ComposeService {
  name: string;
  image?: string;
  build?: unknown;
  init?: boolean;
  profiles?: string[];
  command: string[];
  ports: string[];
  volumes: string[];
  dependsOn: Map<string, string>;
  healthcheck?: { test?: string[]; disable?: boolean; [key: string]: unknown };
}

/** The parsed file. */
export interface ComposeFile {
  services: Map<string, ComposeService>;
  volumes: Set<string>;
}

/** Resolves YAML merge keys (`<<`) recursively: later keys win over merged ones, as in compose. */
function resolveMerges(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolveMerges);
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  const merged: Record<string, unknown> = {};
  const sources = record['<<'];
  for (const source of Array.isArray(sources) ? sources : sources === undefined ? [] : [sources]) {
    Object.assign(merged, resolveMerges(source));
  }
  for (const [key, child] of Object.entries(record)) if (key !== '<<') merged[key] = resolveMerges(child);
  return merged;
}

function asStrings(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new Error(`${what} must be a list of strings`);
  return value;
}

/** Parses `docker-compose.yml` (or `text`). */
export function readComposeFile(text = readFileSync(`${REPO_ROOT}docker-compose.yml`, 'utf8')): ComposeFile {
  const root = resolveMerges(load(text)) as { services?: Record<string, Record<string, unknown>>; volumes?: Record<string, unknown> };
  const services = new Map<string, ComposeService>();
  for (const [name, raw] of Object.entries(root.services ?? {})) {
    const dependsOn = new Map<string, string>();
    const rawDepends = raw['depends_on'];
    if (Array.isArray(rawDepends)) for (const dependency of asStrings(rawDepends, `${name}.depends_on`)) dependsOn.set(dependency, 'service_started');
    else if (typeof rawDepends === 'object' && rawDepends !== null) {
      for (const [dependency, spec] of Object.entries(rawDepends as Record<string, { condition?: string }>)) {
        dependsOn.set(dependency, spec.condition ?? 'service_started');
      }
    }
    const service: ComposeService = {
      name,
      command: asStrings(raw['command'], `${name}.command`),
      ports: asStrings(raw['ports'], `${name}.ports`),
      volumes: asStrings(raw['volumes'], `${name}.volumes`),
      dependsOn,
    };
    if (typeof raw['image'] === 'string') service.image = raw['image'];
    if (raw['build'] !== undefined) service.build = raw['build'];
    if (typeof raw['init'] === 'boolean') service.init = raw['init'];
    if (raw['profiles'] !== undefined) service.profiles = asStrings(raw['profiles'], `${name}.profiles`);
    if (typeof raw['healthcheck'] === 'object' && raw['healthcheck'] !== null) service.healthcheck = raw['healthcheck'] as ComposeService['healthcheck'] & object;
    services.set(name, service);
  }
  return { services, volumes: new Set(Object.keys(root.volumes ?? {})) };
}

/** True for services that run the kvstore image (its entrypoint is the `kvstore` CLI). */
export function runsKvstore(service: ComposeService): boolean {
  return service.build !== undefined || service.image?.startsWith('kvstore') === true;
}

/** The value after `flag` in a command, or undefined. */
export function flagValue(command: readonly string[], flag: string): string | undefined {
  const index = command.indexOf(flag);
  return index < 0 ? undefined : command[index + 1];
}

/** Services whose command is `kvstore node …`, in name order. */
export function nodeServices(compose: ComposeFile): ComposeService[] {
  return [...compose.services.values()].filter((service) => runsKvstore(service) && service.command[0] === 'node')
    .sort((a, b) => a.name.localeCompare(b.name));
}
