/**
 * Issue 8 "Containers": there is no Docker engine here, so the compose file and the
 * Dockerfile are checked statically — both compose files against the Compose Specification's
 * JSON schema (vendored in test/ops/schema), and then what the schema cannot know: every
 * command and flag the containers run exists in the CLI (`kvstore <cmd> --help`), every node
 * has its own id, volume, advertised service name and published metrics port, healthchecks gate
 * startup, and Prometheus scrapes every process. When Compose v2 is installed (`docker compose`,
 * or a standalone `docker-compose` 2.x), `config -q` checks the files as well; Compose v1
 * rejects the specification's top-level `name:`, so it is detected and the check skipped with
 * the reason (issue 19). The topology itself runs in netns.test.ts.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { runCli } from '../support/cluster.js';
import { chooseCompose, parseComposeVersion, type VersionProbe } from './support/compose-binary.js';
import {
  type ComposeFile, ComposeSchemaError, type ComposeService, flagValue, loadComposeDocument, nodeServices, readComposeFile, REPO_ROOT,
  runsKvstore, validateComposeDocument,
} from './support/compose-file.js';

const COMPOSE_FILES = ['docker-compose.yml', 'docker-compose.tls.yml'] as const;

/** The metrics port the health probe and Prometheus use: `--metrics-port`, else gRPC port + 1000. */
function metricsPortOf(service: ComposeService): number {
  const explicit = flagValue(service.command, '--metrics-port');
  return explicit !== undefined ? Number(explicit) : Number(flagValue(service.command, '--port')) + 1000;
}

/** The CLI command a service runs: its first word, or the first two for `certs create|show`. */
function cliCommand(service: ComposeService): string {
  const [first, second] = service.command;
  return first === 'certs' && second !== undefined ? `certs ${second}` : first ?? '';
}

function healthcheckCommand(service: ComposeService): string {
  const test = service.healthcheck?.test;
  expect(test, `${service.name} healthcheck.test`).to.be.an('array');
  expect(test?.[0], `${service.name} healthcheck runs without a shell`).to.equal('CMD');
  return (test ?? []).slice(1).join(' ');
}

describe('ops: docker-compose.yml and Dockerfile', function () {
  this.timeout(60_000);
  let compose: ComposeFile;
  const helpText = new Map<string, string>();

  before(async () => {
    compose = readComposeFile();
    const tlsCompose = readComposeFile(readFileSync(`${REPO_ROOT}docker-compose.tls.yml`, 'utf8'));
    const commands = new Set<string>();
    for (const service of [...compose.services.values(), ...tlsCompose.services.values()]) {
      if (runsKvstore(service) && service.command[0] !== undefined) commands.add(cliCommand(service));
    }
    for (const command of commands) {
      const result = await runCli([...command.split(' '), '--help']);
      // An unknown command's `--help` prints the root help: only the command's own usage counts.
      helpText.set(command, result.code === 0 && result.stdout.startsWith(`Usage: kvstore ${command} `) ? result.stdout : '');
    }
  });

  it('runs a manager and five nodes from the kvstore image, with init so signals reach kvstore', () => {
    const manager = compose.services.get('manager');
    expect(manager?.command[0]).to.equal('manager');
    expect(nodeServices(compose).map((service) => service.name)).to.deep.equal(['n1', 'n2', 'n3', 'n4', 'n5']);
    for (const service of compose.services.values()) {
      if (!runsKvstore(service)) continue;
      expect(service.init, `${service.name}.init`).to.equal(true);
    }
  });

  it('uses only commands and flags the CLI has (docker-compose.yml and docker-compose.tls.yml)', () => {
    const tlsCompose = readComposeFile(readFileSync(`${REPO_ROOT}docker-compose.tls.yml`, 'utf8'));
    for (const service of [...compose.services.values(), ...tlsCompose.services.values()]) {
      if (!runsKvstore(service)) continue;
      const command = cliCommand(service);
      const args = service.command.slice(command.split(' ').length);
      expect(command, `${service.name}.command`).to.be.a('string');
      const help = helpText.get(command) ?? '';
      expect(help, `\`kvstore ${command} --help\` (service ${service.name})`).to.not.equal('');
      const known = new Set(help.match(/--[a-z][a-z-]*/g) ?? []);
      for (const arg of args) {
        if (!arg.startsWith('--')) continue;
        expect(known.has(arg), `service ${service.name}: \`kvstore ${command}\` has no ${arg} (known: ${[...known].join(' ')})`).to.equal(true);
      }
    }
  });

  it('gives every node a stable id, its own named volume, an advertised service name and a published metrics port', () => {
    const managerPort = flagValue(compose.services.get('manager')?.command ?? [], '--port');
    const volumesSeen = new Set<string>();
    for (const node of nodeServices(compose)) {
      const command = node.command;
      expect(flagValue(command, '--id'), `${node.name} --id`).to.equal(node.name);
      const port = flagValue(command, '--port');
      expect(flagValue(command, '--advertise'), `${node.name} --advertise`).to.equal(`${node.name}:${port}`);
      expect(flagValue(command, '--host'), `${node.name} --host`).to.equal('0.0.0.0');
      expect(flagValue(command, '--manager'), `${node.name} --manager`).to.equal(`manager:${managerPort}`);
      const dataDir = flagValue(command, '--data-dir');
      const mount = node.volumes.find((volume) => volume.split(':')[1] === dataDir);
      expect(mount, `${node.name}: a volume mounted at --data-dir ${dataDir}`).to.be.a('string');
      const volumeName = mount?.split(':')[0] ?? '';
      expect(compose.volumes.has(volumeName), `${node.name}: volume ${volumeName} is a declared named volume`).to.equal(true);
      expect(volumesSeen.has(volumeName), `${node.name}: volume ${volumeName} is not shared`).to.equal(false);
      volumesSeen.add(volumeName);
      const metricsPort = metricsPortOf(node);
      expect(node.ports, `${node.name} publishes its metrics port`).to.include(`${metricsPort}:${metricsPort}`);
    }
  });

  it('configures the manager for five nodes with its data on a volume and its ports published', () => {
    const manager = compose.services.get('manager');
    if (manager === undefined) throw new Error('no manager service');
    const command = manager.command;
    expect(flagValue(command, '--host')).to.equal('0.0.0.0');
    expect(Number(flagValue(command, '--bootstrap-nodes'))).to.equal(nodeServices(compose).length);
    expect(Number(flagValue(command, '--replicas'))).to.be.at.most(nodeServices(compose).length);
    const dataDir = flagValue(command, '--data-dir');
    const mount = manager.volumes.find((volume) => volume.split(':')[1] === dataDir);
    expect(compose.volumes.has(mount?.split(':')[0] ?? ''), 'manager data on a named volume').to.equal(true);
    const port = flagValue(command, '--port');
    expect(manager.ports).to.include(`${port}:${port}`);
    expect(manager.ports).to.include(`${metricsPortOf(manager)}:${metricsPortOf(manager)}`);
  });

  it('probes health over HTTP with node fetch and starts nodes only once the manager is healthy', () => {
    const manager = compose.services.get('manager');
    if (manager === undefined) throw new Error('no manager service');
    // The manager's check is liveness: its readiness needs a majority of nodes up, and the nodes wait for it.
    expect(healthcheckCommand(manager)).to.contain(`fetch('http://127.0.0.1:${metricsPortOf(manager)}/healthz')`);
    for (const node of nodeServices(compose)) {
      expect(healthcheckCommand(node)).to.match(new RegExp(`^node -e fetch\\('http://127\\.0\\.0\\.1:${metricsPortOf(node)}/readyz'\\)`));
      expect(node.dependsOn.get('manager'), `${node.name} depends_on manager`).to.equal('service_healthy');
    }
  });

  it('has a client profile that drives the cluster once every node is healthy', () => {
    const client = compose.services.get('client');
    if (client === undefined) throw new Error('no client service');
    expect(client.profiles).to.deep.equal(['client']);
    expect(client.command[0]).to.equal('driver');
    expect(flagValue(client.command, '--manager')).to.equal(`manager:${flagValue(compose.services.get('manager')?.command ?? [], '--port')}`);
    for (const service of ['manager', ...nodeServices(compose).map((node) => node.name)]) {
      expect(client.dependsOn.get(service), `client depends_on ${service}`).to.equal('service_healthy');
    }
  });

  it('has a prometheus profile scraping every process', () => {
    const prometheus = compose.services.get('prometheus');
    expect(prometheus?.profiles).to.deep.equal(['prometheus']);
    const config = load(readFileSync(`${REPO_ROOT}prometheus/prometheus.yml`, 'utf8')) as {
      scrape_configs: { static_configs: { targets: string[] }[] }[];
    };
    const targets = new Set(config.scrape_configs.flatMap((job) => job.static_configs.flatMap((group) => group.targets)));
    for (const service of compose.services.values()) {
      if (!runsKvstore(service) || !['manager', 'node'].includes(service.command[0] ?? '')) continue;
      expect(targets.has(`${service.name}:${metricsPortOf(service)}`), `prometheus scrapes ${service.name}`).to.equal(true);
    }
    expect(prometheus?.volumes.some((volume) => volume.startsWith('./prometheus/prometheus.yml:'))).to.equal(true);
  });

  it('builds a multi-stage, non-root image with kvstore as entrypoint and a /readyz healthcheck', () => {
    const dockerfile = readFileSync(`${REPO_ROOT}Dockerfile`, 'utf8');
    const stages = dockerfile.match(/^FROM node:20-slim AS \w+$/gm) ?? [];
    expect(stages.length, 'build and runtime stages').to.equal(2);
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(runtime).to.match(/npm ci --omit=dev --ignore-scripts/);
    expect(runtime).to.match(/COPY --from=build \/app\/dist\/src/);
    expect(runtime).to.match(/^USER node$/m);
    expect(runtime).to.match(/^VOLUME \["\/data"\]$/m);
    expect(runtime).to.match(/^ENTRYPOINT \["kvstore"\]$/m);
    expect(runtime).to.match(/^HEALTHCHECK [\s\S]*fetch\([\s\S]*\/readyz/m);
    const ignore = readFileSync(`${REPO_ROOT}.dockerignore`, 'utf8').split('\n');
    expect(ignore).to.include.members(['node_modules', 'dist', '.git']);
  });

  it('says --insecure on every server that listens beyond loopback in plaintext', () => {
    for (const service of compose.services.values()) {
      if (!runsKvstore(service) || !['manager', 'node'].includes(service.command[0] ?? '')) continue;
      expect(flagValue(service.command, '--host'), `${service.name} --host`).to.equal('0.0.0.0');
      expect(service.command, `${service.name} says --insecure`).to.include('--insecure');
    }
  });

  it('passes `docker compose config` when Compose v2 is installed', function () {
    const choice = chooseCompose();
    if (!choice.use) {
      // The schema tests above check the files either way; this adds Compose's own loader.
      process.stderr.write(`      skipped: ${choice.reason}\n`);
      this.skip();
      return;
    }
    const { binary, prefix } = choice.command;
    for (const file of COMPOSE_FILES) {
      execFileSync(binary, [...prefix, '-f', `${REPO_ROOT}${file}`, '--profile', 'client', '--profile', 'prometheus', 'config', '-q'], { stdio: 'pipe' });
    }
  });
});

describe('ops: the compose files against the Compose Specification schema', function () {
  this.timeout(30_000);

  const documentOf = (file: string): Record<string, unknown> =>
    loadComposeDocument(readFileSync(`${REPO_ROOT}${file}`, 'utf8')) as Record<string, unknown>;

  for (const file of COMPOSE_FILES) {
    it(`${file} is valid, top-level name: included`, () => {
      const document = documentOf(file);
      expect(document['name'], `${file} names its project`).to.be.a('string');
      expect(validateComposeDocument(document), file).to.deep.equal([]);
    });
  }

  it('names the path of every violation: an unknown top-level key, ports that are not a list, an unknown depends_on condition', () => {
    const document = documentOf('docker-compose.yml');
    const services = document['services'] as Record<string, Record<string, unknown>>;
    document['servics'] = {};
    const manager = services['manager'] ?? {};
    manager['ports'] = 5;
    services['n1'] = { ...services['n1'], depends_on: { manager: { condition: 'service_ready' } } };
    const problems = validateComposeDocument(document);
    expect(problems).to.include('/servics: not allowed here (the schema has no such key)');
    expect(problems).to.include('/services/manager/ports: must be array');
    expect(problems.some((problem) => problem.startsWith('/services/n1/depends_on/manager/condition: must be equal to one of the allowed values')),
      problems.join('\n')).to.equal(true);
  });

  it('refuses such a file when it is read: readComposeFile throws with the paths', () => {
    const text = readFileSync(`${REPO_ROOT}docker-compose.yml`, 'utf8');
    const broken = text.replace(/^ {4}ports:\n {6}- "7000:7000"\n {6}- "8000:8000"$/m, '    ports: 5').replace(/^name: kvstore$/m, 'name: kvstore\nversio: "3"');
    expect(broken).to.not.equal(text);
    expect(() => readComposeFile(broken)).to.throw(ComposeSchemaError, '/services/manager/ports: must be array')
      .with.property('problems').that.includes('/versio: not allowed here (the schema has no such key)');
  });
});

describe('ops: which Compose binary checks the files', () => {
  it('reads the version from `version --short` and from the long form', () => {
    expect(parseComposeVersion('1.29.2\n')).to.deep.equal({ major: 1, minor: 29, patch: 2, text: '1.29.2' });
    expect(parseComposeVersion('v2.27.0\n')).to.deep.equal({ major: 2, minor: 27, patch: 0, text: 'v2.27.0' });
    expect(parseComposeVersion('2.24.6-desktop.1\n')).to.deep.equal({ major: 2, minor: 24, patch: 6, text: '2.24.6-desktop.1' });
    expect(parseComposeVersion('docker-compose version 1.29.2, build 5becea4c')?.text).to.equal('1.29.2');
    expect(parseComposeVersion('Docker Compose version v2.27.0')?.text).to.equal('v2.27.0');
    expect(parseComposeVersion('unknown flag: --short')).to.equal(undefined);
  });

  /** A probe answering from a table of `binary args` → stdout; anything else "fails". */
  const fakeProbe = (answers: Record<string, string>): VersionProbe => (binary, args) => answers[[binary, ...args].join(' ')];

  it('prefers the docker compose v2 plugin', () => {
    const choice = chooseCompose(fakeProbe({ 'docker compose version --short': 'v2.27.0\n', 'docker-compose version --short': '1.29.2\n' }));
    expect(choice).to.deep.include({ use: true, command: { binary: 'docker', prefix: ['compose'] } });
  });

  it('uses a standalone docker-compose 2.x', () => {
    const choice = chooseCompose(fakeProbe({ 'docker-compose version --short': '2.24.6-desktop.1\n' }));
    expect(choice.use).to.equal(true);
    if (choice.use) expect(choice.command).to.deep.equal({ binary: 'docker-compose', prefix: [] });
  });

  it('never uses Compose v1, and says why', () => {
    const choice = chooseCompose(fakeProbe({ 'docker-compose version --short': '1.29.2\n' }));
    expect(choice).to.deep.equal({
      use: false,
      reason: "docker-compose 1.29.2 is Compose v1, which rejects the Compose Specification's top-level name:; install the docker compose v2 plugin",
    });
    // An old v1 without --short: the long form still identifies it.
    const old = chooseCompose(fakeProbe({ 'docker-compose version': 'docker-compose version 1.21.0, build 5920eb0' }));
    expect(old.use).to.equal(false);
    if (!old.use) expect(old.reason).to.match(/^docker-compose 1\.21\.0 is Compose v1/);
  });

  it('says when nothing is installed or the version cannot be read', () => {
    expect(chooseCompose(fakeProbe({}))).to.deep.equal({ use: false, reason: 'neither `docker compose` nor `docker-compose` is installed' });
    const garbled = chooseCompose(fakeProbe({ 'docker-compose version --short': 'dev\n' }));
    expect(garbled.use).to.equal(false);
    if (!garbled.use) expect(garbled.reason).to.equal('`docker-compose version` printed no version ("dev")');
  });
});

describe('ops: docker-compose.tls.yml (mutual TLS, certificates made by a one-shot service)', function () {
  this.timeout(60_000);
  let compose: ComposeFile;
  let plain: ComposeFile;
  let dir: string;

  before(() => {
    compose = readComposeFile(readFileSync(`${REPO_ROOT}docker-compose.tls.yml`, 'utf8'));
    plain = readComposeFile();
    dir = mkdtempSync(join(tmpdir(), 'kvstore-compose-certs-'));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const servers = (): ComposeService[] => [...compose.services.values()]
    .filter((service) => runsKvstore(service) && ['manager', 'node'].includes(service.command[0] ?? ''));

  it('runs the same manager and nodes as docker-compose.yml, with the TLS flags instead of --insecure', () => {
    const strip = (command: string[]): string[] => {
      const kept: string[] = [];
      for (let i = 0; i < command.length; i++) {
        const arg = command[i] ?? '';
        if (['--tls-ca', '--tls-cert', '--tls-key'].includes(arg)) i++;
        else if (arg !== '--insecure') kept.push(arg);
      }
      return kept;
    };
    expect(servers().map((service) => service.name)).to.deep.equal(['manager', 'n1', 'n2', 'n3', 'n4', 'n5']);
    for (const service of servers()) {
      expect(strip(service.command), `${service.name}: the plain file's command`).to.deep.equal(strip(plain.services.get(service.name)?.command ?? []));
      expect(service.command, service.name).to.not.include('--insecure');
      expect(flagValue(service.command, '--tls-ca')).to.equal('/certs/ca.crt');
      expect(flagValue(service.command, '--tls-cert')).to.equal('/certs/server.crt');
      expect(flagValue(service.command, '--tls-key')).to.equal('/certs/server.key');
      expect(service.volumes, `${service.name} mounts the servers' certificates read-only`).to.deep.equal([
        ...service.volumes.filter((volume) => !volume.endsWith(':/certs:ro')), 'server-certs:/certs:ro',
      ]);
      expect(service.init, `${service.name}.init`).to.equal(true);
    }
    for (const volume of ['ca', 'server-certs', 'client-certs']) expect(compose.volumes.has(volume), volume).to.equal(true);
    // The CA's key is in the `ca` volume, which only the one-shot certs service mounts.
    for (const service of compose.services.values()) {
      if (service.name !== 'certs') expect(service.volumes.some((volume) => volume.startsWith('ca:')), service.name).to.equal(false);
    }
  });

  it('creates the certificates once, before the manager starts, valid for every service name', async () => {
    const certs = compose.services.get('certs');
    if (certs === undefined) throw new Error('no certs service');
    expect(certs.command.slice(0, 2)).to.deep.equal(['certs', 'create']);
    expect(flagValue(certs.command, '--dir')).to.equal('/ca');
    expect(flagValue(certs.command, '--server-dir')).to.equal('/server-certs');
    expect(flagValue(certs.command, '--client-dir')).to.equal('/client-certs');
    expect(certs.command).to.include('--if-missing');
    expect(certs.volumes).to.include.members(['ca:/ca', 'server-certs:/server-certs', 'client-certs:/client-certs']);
    expect(compose.services.get('manager')?.dependsOn.get('certs')).to.equal('service_completed_successfully');
    for (const node of nodeServices(compose)) expect(node.dependsOn.get('manager'), node.name).to.equal('service_healthy');
    const hosts = (flagValue(certs.command, '--hosts') ?? '').split(',');
    for (const service of servers()) expect(hosts, `--hosts names ${service.name}`).to.include(service.name);

    // Run the service's command here, into temporary dirs standing in for the volumes.
    const args = [...certs.command];
    for (const [flag, name] of [['--dir', 'ca'], ['--server-dir', 'server-certs'], ['--client-dir', 'client-certs']] as const) {
      args[args.indexOf(flag) + 1] = join(dir, name);
    }
    const first = await runCli(args);
    expect(first.code, first.stderr).to.equal(0);
    expect(readdirSync(join(dir, 'server-certs')).sort()).to.deep.equal(['ca.crt', 'server.crt', 'server.key']);
    expect(readdirSync(join(dir, 'client-certs')).sort()).to.deep.equal(['ca.crt', 'client.crt', 'client.key']);
    expect(statSync(join(dir, 'server-certs', 'server.key')).mode & 0o077, 'server.key readable by its owner only').to.equal(0);
    const shown = await runCli(['certs', 'show', join(dir, 'server-certs', 'server.crt'), '--json']);
    expect(shown.code, shown.stderr).to.equal(0);
    const summary = JSON.parse(shown.stdout) as { subjectAltNames: string[]; expiresInDays: number };
    for (const service of servers()) expect(summary.subjectAltNames).to.include(`DNS:${service.name}`);
    expect(summary.expiresInDays).to.be.greaterThan(365);
    // A later `up` runs it again: it must succeed and keep the certificates every process holds.
    const before = readFileSync(join(dir, 'server-certs', 'server.crt'), 'utf8');
    const again = await runCli(args);
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout).to.contain('nothing new made');
    expect(readFileSync(join(dir, 'server-certs', 'server.crt'), 'utf8')).to.equal(before);
  });

  it('drives the cluster with the client certificate', () => {
    const client = compose.services.get('client');
    if (client === undefined) throw new Error('no client service');
    expect(client.command[0]).to.equal('driver');
    expect(flagValue(client.command, '--tls-ca')).to.equal('/certs/ca.crt');
    expect(flagValue(client.command, '--cert')).to.equal('/certs/client.crt');
    expect(flagValue(client.command, '--key')).to.equal('/certs/client.key');
    expect(client.volumes).to.include('client-certs:/certs:ro');
  });

  it('makes the volumes\' mount points in the image, owned by the user the services run as, so the named volumes are writable', () => {
    const dockerfile = readFileSync(`${REPO_ROOT}Dockerfile`, 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    for (const mount of ['/certs', '/ca', '/server-certs', '/client-certs']) {
      expect(runtime).to.match(new RegExp(`mkdir -p [^\\n]*${mount}( |$)`, 'm'));
      expect(runtime).to.match(new RegExp(`chown node:node [^\\n]*${mount}( |$)`, 'm'));
    }
  });
});
