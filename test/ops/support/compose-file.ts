/**
 * Reads docker-compose.yml the way `docker compose config` would for what the ops tests
 * check: YAML with merge keys (`<<: *anchor`) resolved, then validated against the Compose
 * Specification's JSON schema (test/ops/schema/compose-spec.json, vendored from compose-go,
 * the library `docker compose` itself loads files with), then the services with their command,
 * ports, volumes, depends_on and healthcheck. The netns test starts the same commands.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
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

/** The Compose Specification's JSON schema, vendored (see test/ops/schema/README.md). */
export const COMPOSE_SCHEMA_PATH = `${REPO_ROOT}test/ops/schema/compose-spec.json`;

/** A compose file the Compose Specification's schema refuses; `problems` name the paths. */
export class ComposeSchemaError extends Error {
  constructor(readonly problems: string[]) {
    super(`not a valid Compose file:\n  ${problems.join('\n  ')}`);
    this.name = 'ComposeSchemaError';
  }
}

/**
 * The part of a document the checks read, as the schema allows it to be (it has checked
 * these types by the time the document is read as one).
 */
interface ComposeDocument {
  services?: Record<string, ComposeServiceDocument>;
  volumes?: Record<string, unknown>;
}

interface ComposeServiceDocument {
  image?: string;
  build?: unknown;
  init?: boolean;
  profiles?: string[];
  command?: string | string[] | null;
  ports?: unknown[];
  volumes?: unknown[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean; [key: string]: unknown };
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

/** The YAML document of `text`, merge keys resolved: what Compose validates against the schema. */
export function loadComposeDocument(text: string): unknown {
  return resolveMerges(load(text));
}

let compiledSchema: ValidateFunction | undefined;

function composeSchema(): ValidateFunction {
  if (compiledSchema === undefined) {
    // strictTypes is a lint for schema authors (it wants `type` beside every keyword); the
    // rest of strict mode stays on, so a keyword Ajv does not know fails the compile instead
    // of being ignored. The schema uses no `format`, so ajv-formats is not needed.
    const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
    compiledSchema = ajv.compile(JSON.parse(readFileSync(COMPOSE_SCHEMA_PATH, 'utf8')) as object);
  }
  return compiledSchema;
}

/** One schema error as `PATH: problem`, PATH a JSON pointer into the document (`/` the root). */
function describeSchemaError(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'additionalProperties') {
    return `${error.instancePath}/${String(params['additionalProperty'])}: not allowed here (the schema has no such key)`;
  }
  const detail = error.keyword === 'enum' ? ` (${JSON.stringify(params['allowedValues'])})` : '';
  return `${error.instancePath === '' ? '/' : error.instancePath}: ${error.message ?? error.keyword}${detail}`;
}

/** The schema's complaints about `document` (empty when it is valid), one line per problem. */
export function validateComposeDocument(document: unknown): string[] {
  const validate = composeSchema();
  if (validate(document)) return [];
  return [...new Set((validate.errors ?? []).map(describeSchemaError))];
}

/**
 * The short syntax's strings, which the checks read (`"7000:7000"`, `n1-data:/data`, a
 * command's words). The schema also allows numbers and long-syntax objects; these files use
 * strings so that what is checked here is what runs.
 */
function shortSyntax(value: unknown[] | undefined, what: string): string[] {
  if (value === undefined) return [];
  if (!value.every((item): item is string => typeof item === 'string')) throw new Error(`${what}: use the short syntax (strings) the checks read`);
  return value;
}

/** Parses `docker-compose.yml` (or `text`), validated against the Compose Specification's schema. */
export function readComposeFile(text = readFileSync(`${REPO_ROOT}docker-compose.yml`, 'utf8')): ComposeFile {
  const document = loadComposeDocument(text);
  const problems = validateComposeDocument(document);
  if (problems.length > 0) throw new ComposeSchemaError(problems);
  const root = document as ComposeDocument;
  const services = new Map<string, ComposeService>();
  for (const [name, raw] of Object.entries(root.services ?? {})) {
    const dependsOn = new Map<string, string>();
    const rawDepends = raw.depends_on ?? [];
    if (Array.isArray(rawDepends)) for (const dependency of rawDepends) dependsOn.set(dependency, 'service_started');
    else for (const [dependency, spec] of Object.entries(rawDepends)) dependsOn.set(dependency, spec.condition ?? 'service_started');
    if (typeof raw.command === 'string') throw new Error(`${name}.command: use the exec form (a list), so flags are read exactly as they run`);
    const service: ComposeService = {
      name,
      command: raw.command ?? [],
      ports: shortSyntax(raw.ports, `${name}.ports`),
      volumes: shortSyntax(raw.volumes, `${name}.volumes`),
      dependsOn,
    };
    if (raw.image !== undefined) service.image = raw.image;
    if (raw.build !== undefined) service.build = raw.build;
    if (raw.init !== undefined) service.init = raw.init;
    if (raw.profiles !== undefined) service.profiles = raw.profiles;
    if (raw.healthcheck !== undefined) {
      // A string `test` is shorthand for ["CMD-SHELL", test], as Compose reads it.
      const { test, ...rest } = raw.healthcheck;
      service.healthcheck = test === undefined ? rest : { ...rest, test: typeof test === 'string' ? ['CMD-SHELL', test] : test };
    }
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
