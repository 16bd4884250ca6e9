/**
 * Issue 19 "Kubernetes": there is no Kubernetes cluster here, so deploy/kubernetes is checked in
 * three steps. (1) Every YAML file parses as Kubernetes parses it, both kustomizations render
 * (test/ops/support/kustomize.ts), and every object is valid against the Kubernetes API with
 * kubernetes-models: its OpenAPI schema, and no field the API does not have. (2) What the schema
 * cannot know: every command and flag exists in the CLI, node ids from the pod ordinals are ids
 * the CLI takes, the advertised names are the headless Service's, probes and scrape annotations
 * hit the metrics port, the PDB selects the nodes and keeps a quorum, pods run as non-root, and
 * the TLS overlay is the base with certificates the documented command makes. (3) The pods'
 * own args, expanded as the kubelet expands them and put on loopback, run as local processes:
 * the walk-through of docs/kubernetes.md from `status --wait` through scaling up and draining.
 */
import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { checkServerIdentity } from 'node:tls';
import { runCli } from '../support/cluster.js';
import { flagValue, REPO_ROOT } from './support/compose-file.js';
import {
  containerPort, onlyContainer, podArgs, podOf, selects, specOf, type Container, type ServiceSpec, type StatefulSetSpec,
} from './support/kubernetes-pods.js';
import { schemaProblems, unknownFieldProblems, type TypedDocument } from './support/kubernetes-schema.js';
import {
  KustomizeError, loadManifests, loadYamlDocuments, readKustomization, renderKustomization, strategicMerge, type KubernetesObject, type Manifest,
} from './support/kustomize.js';
import { runLocalCluster } from './support/kubernetes-local.js';

const DEPLOY_DIR = join(REPO_ROOT, 'deploy/kubernetes');
const TLS_DIR = join(DEPLOY_DIR, 'tls');
/** The namespace the checks deploy to (any works: the pods read theirs from the downward API). */
const NAMESPACE = 'default';
/** The image's user (Dockerfile `USER node`: uid 1000 in node:20-slim). */
const IMAGE_UID = 1000;

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  }).sort();
}

function find(manifests: readonly Manifest[], kind: string, name: string): KubernetesObject {
  const found = manifests.find((manifest) => manifest.object.kind === kind && manifest.object.metadata.name === name);
  if (found === undefined) throw new Error(`no ${kind} ${name} among ${manifests.map((manifest) => `${manifest.object.kind}/${manifest.object.metadata.name}`).join(', ')}`);
  return found.object;
}

/** The kustomization directories, and the files each lists as resources or patches. */
function kustomizationFiles(): Map<string, string[]> {
  const listed = new Map<string, string[]>();
  for (const dir of [DEPLOY_DIR, TLS_DIR]) {
    const kustomization = readKustomization(dir);
    listed.set(dir, [...kustomization.resources, ...kustomization.patches.map((patch) => patch.path)].map((path) => join(dir, path)));
  }
  return listed;
}

describe('ops: deploy/kubernetes against the Kubernetes API (kubernetes-models)', function () {
  this.timeout(60_000);
  let base: Manifest[];
  let tls: Manifest[];
  let patches: Manifest[];
  /** The unknown-field check's findings, by label (one TypeScript compile for all of them). */
  const fieldProblems = new Map<string, string[]>();
  let misspelt: KubernetesObject;

  before(() => {
    base = renderKustomization(DEPLOY_DIR, REPO_ROOT);
    tls = renderKustomization(TLS_DIR, REPO_ROOT);
    patches = readKustomization(TLS_DIR).patches.flatMap((patch) => loadManifests(join(TLS_DIR, patch.path), REPO_ROOT));
    misspelt = structuredClone(find(base, 'StatefulSet', 'kvstore-node'));
    const container = onlyContainer(misspelt) as Container & { readinesProbe?: unknown };
    container.readinesProbe = container.readinessProbe;
    delete container.readinessProbe;
    const documents: (TypedDocument & { label: string })[] = [
      ...base.map(({ object, source }) => ({ label: `${source}: ${object.kind}/${object.metadata.name}`, object, partial: false })),
      ...tls.map(({ object, source }) => ({ label: `tls: ${source}: ${object.kind}/${object.metadata.name}`, object, partial: false })),
      ...patches.map(({ object, source }) => ({ label: `patch ${source}`, object, partial: true })),
      { label: 'misspelt', object: misspelt, partial: false },
    ];
    unknownFieldProblems(documents, REPO_ROOT).forEach((problems, index) => fieldProblems.set(documents[index]?.label ?? '', problems));
  });

  it('parses every YAML file under deploy/kubernetes; each is a kustomization, or a resource or patch one lists', () => {
    const listed = new Set([...kustomizationFiles().values()].flat());
    for (const file of yamlFiles(DEPLOY_DIR)) {
      const documents = loadYamlDocuments(file);
      expect(documents.length, relative(REPO_ROOT, file)).to.be.greaterThan(0);
      if (file.endsWith('/kustomization.yaml')) continue;
      expect(listed.has(file), `${relative(REPO_ROOT, file)} is listed by a kustomization.yaml`).to.equal(true);
    }
  });

  it('renders the base as the manager and node StatefulSets, their Services and the nodes\' PDB; the TLS overlay as the same objects', () => {
    const ids = (manifests: Manifest[]): string[] => manifests.map(({ object }) => `${object.kind}/${object.metadata.name}`).sort();
    expect(ids(base)).to.deep.equal([
      'PodDisruptionBudget/kvstore-node', 'Service/kvstore-manager', 'Service/kvstore-node', 'StatefulSet/kvstore-manager', 'StatefulSet/kvstore-node',
    ]);
    expect(ids(tls)).to.deep.equal(ids(base));
    for (const { object } of [...base, ...tls]) {
      expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}: the namespace is the user's choice`).to.equal(undefined);
      expect(object.metadata.name, 'a DNS-1123 label').to.match(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    }
  });

  it('every object of the base and of the TLS overlay is valid against the API schema', () => {
    for (const { object, source } of [...base, ...tls]) {
      expect(schemaProblems(object), `${source}: ${object.kind}/${object.metadata.name}`).to.deep.equal([]);
    }
  });

  it('no object, and no patch, has a field the API does not have', () => {
    for (const [label, problems] of fieldProblems) {
      if (label !== 'misspelt') expect(problems, label).to.deep.equal([]);
    }
    expect([...fieldProblems.keys()].filter((label) => label.startsWith('patch ')).length, 'both patches were checked').to.equal(2);
  });

  it('refuses a wrong type, a missing required field, a value outside an enum and a misspelt field, naming the path', () => {
    const wrongType = structuredClone(find(base, 'StatefulSet', 'kvstore-node'));
    const port = onlyContainer(wrongType).ports?.[0] as { containerPort: unknown };
    port.containerPort = '7001';
    expect(schemaProblems(wrongType)).to.deep.equal(['/spec/template/spec/containers/0/ports/0/containerPort: must be integer']);
    const noTemplate = structuredClone(find(base, 'StatefulSet', 'kvstore-manager'));
    delete specOf<{ template?: unknown }>(noTemplate).template;
    expect(schemaProblems(noTemplate)).to.deep.equal(['/spec: must have required property template']);
    const wrongEnum = structuredClone(find(base, 'Service', 'kvstore-node'));
    (specOf<ServiceSpec>(wrongEnum).ports[0] as { protocol?: string }).protocol = 'HTTP';
    expect(schemaProblems(wrongEnum)[0]).to.match(/^\/spec\/ports\/0\/protocol: must be equal to one of the allowed values \(\["SCTP","TCP","UDP"\]\)$/);
    // A misspelt field passes the OpenAPI schema (it allows extra fields) but not the API's field list.
    expect(schemaProblems(misspelt)).to.deep.equal([]);
    expect(fieldProblems.get('misspelt')).to.deep.equal([
      "/spec/template/spec/containers/0/readinesProbe: Object literal may only specify known properties, and 'readinesProbe' does not exist in type 'IContainer'.",
    ]);
  });

  it('renders as kustomize does: strategic merge by name and mountPath, args replaced whole; refuses what it does not implement', () => {
    const target = { containers: [{ name: 'a', args: ['x', 'y'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }, { name: 'b' }], dnsPolicy: 'Default' };
    const patch = { containers: [{ name: 'a', args: ['z'], volumeMounts: [{ name: 'certs', mountPath: '/certs' }] }], dnsPolicy: null };
    expect(strategicMerge(target, patch, '')).to.deep.equal({
      containers: [{ name: 'a', args: ['z'], volumeMounts: [{ name: 'data', mountPath: '/data' }, { name: 'certs', mountPath: '/certs' }] }, { name: 'b' }],
    });
    expect(target.containers[0]?.args, 'the target is not modified').to.deep.equal(['x', 'y']);
    expect(() => strategicMerge(target, { $patch: 'replace' }, '')).to.throw(KustomizeError, '/$patch: the patch directive $patch is not implemented');
    expect(() => strategicMerge(target, { ports: [] }, '/spec')).to.throw(KustomizeError, '/spec/ports: patching ports is not implemented');
    const node = find(tls, 'StatefulSet', 'kvstore-node');
    const volumes = specOf<StatefulSetSpec>(node).template.spec.volumes ?? [];
    expect(volumes.map((volume) => volume.name)).to.deep.equal(['server-tls']);
    expect(onlyContainer(node).volumeMounts?.map((mount) => mount.mountPath)).to.deep.equal(['/data', '/certs']);
  });
});

describe('ops: what the Kubernetes manifests run', function () {
  this.timeout(60_000);
  let base: Manifest[];
  let tls: Manifest[];
  const helpText = new Map<string, string>();

  before(async () => {
    base = renderKustomization(DEPLOY_DIR, REPO_ROOT);
    tls = renderKustomization(TLS_DIR, REPO_ROOT);
    await Promise.all(['manager', 'node'].map(async (command) => {
      const result = await runCli([command, '--help']);
      helpText.set(command, result.code === 0 && result.stdout.startsWith(`Usage: kvstore ${command} `) ? result.stdout : '');
    }));
  });

  const statefulSets = (manifests: Manifest[]): KubernetesObject[] => manifests.map(({ object }) => object).filter((object) => object.kind === 'StatefulSet');
  const managerArgs = (manifests: Manifest[]): string[] => onlyContainer(find(manifests, 'StatefulSet', 'kvstore-manager')).args ?? [];
  const metricsPortOf = (args: readonly string[]): number => Number(flagValue(args, '--metrics-port') ?? Number(flagValue(args, '--port')) + 1000);

  it('runs `kvstore manager` and `kvstore node` from the kvstore image (its entrypoint), with flags the CLI has', () => {
    for (const statefulSet of [...statefulSets(base), ...statefulSets(tls)]) {
      const container = onlyContainer(statefulSet);
      expect(container.image, statefulSet.metadata.name).to.equal('kvstore:latest');
      expect(container.imagePullPolicy, 'a locally loaded image (kind, minikube) is used as it is').to.equal('IfNotPresent');
      expect(container.command, 'the image\'s entrypoint, kvstore, runs').to.equal(undefined);
      const [command, ...args] = container.args ?? [];
      const help = helpText.get(command ?? '') ?? '';
      expect(help, `\`kvstore ${command} --help\``).to.not.equal('');
      const known = new Set(help.match(/--[a-z][a-z-]*/g) ?? []);
      for (const arg of args) {
        if (arg.startsWith('--')) expect(known.has(arg), `${statefulSet.metadata.name}: \`kvstore ${command}\` has no ${arg}`).to.equal(true);
      }
    }
  });

  it('derives node ids from the pod ordinals, ids the CLI accepts', async () => {
    const nodes = find(base, 'StatefulSet', 'kvstore-node');
    const container = onlyContainer(nodes);
    expect(container.args?.[0]).to.equal('node');
    const ordinals = [0, 1, 2, 3, 99];
    for (const ordinal of ordinals) {
      const args = podArgs(container, podOf(nodes, ordinal, NAMESPACE));
      expect(flagValue(args, '--id')).to.equal(`kvstore-node-${ordinal}`);
      expect(args.join(' '), 'every $(VAR) is defined in the container\'s env').to.not.contain('$(');
    }
    // The CLI's own parser: a bad id fails on --id; a good one gets as far as the missing options.
    const results = await Promise.all([0, 99].map((ordinal) => runCli(['node', '--id', podOf(nodes, ordinal, NAMESPACE).name])));
    for (const result of results) expect(result.stderr).to.contain("required option '--port <port>' not specified");
    const refused = await runCli(['node', '--id', 'kvstore node 0']);
    expect(refused.stderr).to.contain('expected 1-64 letters, digits');
  });

  it('advertises each node under the headless Service that governs the StatefulSet, which publishes unready pods', () => {
    for (const manifests of [base, tls]) {
      const nodes = find(manifests, 'StatefulSet', 'kvstore-node');
      const spec = specOf<StatefulSetSpec>(nodes);
      const service = specOf<ServiceSpec>(find(manifests, 'Service', spec.serviceName));
      expect(service.clusterIP).to.equal('None');
      expect(service.publishNotReadyAddresses, 'peers must reach a node before it is ready').to.equal(true);
      expect(selects(service.selector, spec.template.metadata.labels)).to.equal(true);
      expect(selects(spec.selector.matchLabels, spec.template.metadata.labels)).to.equal(true);
      const container = onlyContainer(nodes);
      const args = podArgs(container, podOf(nodes, 2, NAMESPACE));
      const port = Number(flagValue(args, '--port'));
      expect(flagValue(args, '--advertise')).to.equal(`kvstore-node-2.${spec.serviceName}.${NAMESPACE}.svc:${port}`);
      expect(flagValue(args, '--host'), 'listens on the pod\'s address').to.equal('0.0.0.0');
      expect(containerPort(container, 'grpc')).to.equal(port);
      const grpc = service.ports.find((candidate) => candidate.port === port);
      expect(containerPort(container, grpc?.targetPort)).to.equal(port);
      expect(spec.podManagementPolicy, 'every node starts at once: placement waits for --bootstrap-nodes').to.equal('Parallel');
    }
  });

  it('registers the nodes with the manager\'s Service, which routes to the manager before it is ready', () => {
    for (const manifests of [base, tls]) {
      const manager = find(manifests, 'StatefulSet', 'kvstore-manager');
      const managerSpec = specOf<StatefulSetSpec>(manager);
      expect(managerSpec.replicas).to.equal(1);
      const args = managerArgs(manifests);
      const nodes = find(manifests, 'StatefulSet', 'kvstore-node');
      const [host, port] = (flagValue(podArgs(onlyContainer(nodes), podOf(nodes, 0, NAMESPACE)), '--manager') ?? '').split(':');
      const service = specOf<ServiceSpec>(find(manifests, 'Service', host ?? ''));
      expect(service.publishNotReadyAddresses, 'the manager is ready only once nodes register through this Service').to.equal(true);
      expect(selects(service.selector, managerSpec.template.metadata.labels)).to.equal(true);
      const servicePort = service.ports.find((candidate) => candidate.port === Number(port));
      expect(containerPort(onlyContainer(manager), servicePort?.targetPort)).to.equal(Number(flagValue(args, '--port')));
      expect(flagValue(args, '--host')).to.equal('0.0.0.0');
    }
  });

  it('sizes the cluster so that shards are placed and a quorum survives the PodDisruptionBudget', () => {
    const args = managerArgs(base);
    const replicas = Number(flagValue(args, '--replicas'));
    const bootstrapNodes = Number(flagValue(args, '--bootstrap-nodes') ?? replicas);
    const nodes = find(base, 'StatefulSet', 'kvstore-node');
    const nodeCount = specOf<StatefulSetSpec>(nodes).replicas ?? 1;
    expect(bootstrapNodes, 'placement waits for --bootstrap-nodes nodes').to.be.at.most(nodeCount);
    expect(replicas, 'K').to.be.at.most(bootstrapNodes);
    const pdb = specOf<{ maxUnavailable: number; selector: { matchLabels: Record<string, string> } }>(find(base, 'PodDisruptionBudget', 'kvstore-node'));
    expect(selects(pdb.selector.matchLabels, specOf<StatefulSetSpec>(nodes).template.metadata.labels), 'the PDB selects the node pods').to.equal(true);
    expect(selects(pdb.selector.matchLabels, specOf<StatefulSetSpec>(find(base, 'StatefulSet', 'kvstore-manager')).template.metadata.labels)).to.equal(false);
    expect(pdb.maxUnavailable).to.equal(1);
    expect(replicas - pdb.maxUnavailable, 'each shard keeps a majority of its K replicas').to.be.greaterThan(replicas / 2);
  });

  it('probes /readyz and /healthz on the metrics port, gives WAL recovery a startup probe, and says where Prometheus scrapes', () => {
    for (const manifests of [base, tls]) {
      for (const statefulSet of statefulSets(manifests)) {
        const name = statefulSet.metadata.name;
        const container = onlyContainer(statefulSet);
        const metricsPort = metricsPortOf(podArgs(container, podOf(statefulSet, 0, NAMESPACE)));
        expect(containerPort(container, 'metrics'), name).to.equal(metricsPort);
        const probes = { startup: container.startupProbe, readiness: container.readinessProbe, liveness: container.livenessProbe };
        expect(probes.readiness?.httpGet?.path, `${name} readiness`).to.equal('/readyz');
        expect(probes.liveness?.httpGet?.path, `${name} liveness`).to.equal('/healthz');
        for (const [kind, probe] of Object.entries(probes)) {
          if (probe === undefined) continue;
          expect(containerPort(container, probe.httpGet?.port), `${name} ${kind} probe port`).to.equal(metricsPort);
          expect(probe.httpGet?.scheme ?? 'HTTP', 'metrics stay plain HTTP (no --metrics-tls)').to.equal('HTTP');
        }
        expect(container.args, 'plain metrics').to.not.include('--metrics-tls');
        const annotations = specOf<StatefulSetSpec>(statefulSet).template.metadata.annotations ?? {};
        expect(annotations).to.deep.include({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(metricsPort), 'prometheus.io/path': '/metrics' });
      }
      const node = onlyContainer(find(manifests, 'StatefulSet', 'kvstore-node'));
      const startup = node.startupProbe;
      expect(startup?.httpGet?.path).to.equal('/healthz');
      expect((startup?.failureThreshold ?? 0) * (startup?.periodSeconds ?? 0), 'seconds a node may take to recover its WAL').to.be.at.least(300);
    }
  });

  it('runs as the image\'s non-root user, with no privilege, a read-only root, resources requested and the data on a claim per pod', () => {
    const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile.slice(dockerfile.lastIndexOf('\nFROM '))).to.match(/^USER node$/m);
    for (const statefulSet of [...statefulSets(base), ...statefulSets(tls)]) {
      const name = statefulSet.metadata.name;
      const spec = specOf<StatefulSetSpec>(statefulSet);
      expect(spec.template.spec.securityContext, name).to.deep.include({ runAsNonRoot: true, runAsUser: IMAGE_UID, runAsGroup: IMAGE_UID, fsGroup: IMAGE_UID });
      const container = onlyContainer(statefulSet);
      expect(container.securityContext, name).to.deep.equal({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
      expect(Object.keys(container.resources?.requests ?? {}).sort(), `${name} requests`).to.deep.equal(['cpu', 'memory']);
      expect(container.resources?.limits?.['memory'], `${name} memory limit`).to.be.a('string');
      const dataDir = flagValue(container.args ?? [], '--data-dir');
      const mount = container.volumeMounts?.find((candidate) => candidate.mountPath === dataDir);
      expect(mount, `${name}: a volume at --data-dir`).to.not.equal(undefined);
      expect(spec.volumeClaimTemplates?.map((claim) => claim.metadata.name), `${name}: --data-dir on a PersistentVolumeClaim`).to.include(mount?.name);
    }
  });

  it('the TLS overlay runs the base\'s args with the TLS flags instead of --insecure, the certificates from a read-only Secret', () => {
    /** The args without --insecure and without the TLS flags and their values. */
    const strip = (args: readonly string[]): string[] => args.filter((arg, index) => arg !== '--insecure' && !arg.startsWith('--tls-') && !(args[index - 1] ?? '').startsWith('--tls-'));
    for (const name of ['kvstore-manager', 'kvstore-node']) {
      const plain = onlyContainer(find(base, 'StatefulSet', name));
      const secure = onlyContainer(find(tls, 'StatefulSet', name));
      expect(plain.args, `${name}: the plain base says --insecure`).to.include('--insecure');
      expect(secure.args, name).to.not.include('--insecure');
      expect(strip(secure.args ?? []), `${name}: otherwise the base's args`).to.deep.equal(strip(plain.args ?? []));
      expect(flagValue(secure.args ?? [], '--tls-ca')).to.equal('/certs/ca.crt');
      expect(flagValue(secure.args ?? [], '--tls-cert')).to.equal('/certs/server.crt');
      expect(flagValue(secure.args ?? [], '--tls-key')).to.equal('/certs/server.key');
      const mount = secure.volumeMounts?.find((candidate) => candidate.mountPath === '/certs');
      expect(mount?.readOnly).to.equal(true);
      const volume = specOf<StatefulSetSpec>(find(tls, 'StatefulSet', name)).template.spec.volumes?.find((candidate) => candidate.name === mount?.name);
      expect(volume?.secret).to.deep.equal({ secretName: 'kvstore-server-tls', defaultMode: 0o440 });
      expect({ ...secure, args: [], volumeMounts: [] }, `${name}: nothing else changes`).to.deep.equal({ ...plain, args: [], volumeMounts: [] });
    }
  });

  it('the documented `kvstore certs create` makes the Secret\'s files, valid for the manager\'s Service and every advertised node name', async () => {
    const { certsArgs, secretDirs } = documentedCertsCommand();
    const dir = mkdtempSync(join(tmpdir(), 'kvstore-k8s-certs-'));
    try {
      const result = await runCli(certsArgs.map((arg, index) => (['--dir', '--server-dir', '--client-dir'].includes(certsArgs[index - 1] ?? '') ? join(dir, arg) : arg)));
      expect(result.code, result.stderr).to.equal(0);
      const serverDir = join(dir, flagValue(certsArgs, '--server-dir') ?? '');
      expect(secretDirs.get('kvstore-server-tls'), 'the Secret the overlay mounts is made from --server-dir').to.equal(flagValue(certsArgs, '--server-dir'));
      expect(secretDirs.get('kvstore-client-tls'), 'the clients\' Secret from --client-dir').to.equal(flagValue(certsArgs, '--client-dir'));
      expect(readdirSync(serverDir).sort(), 'the files the TLS flags name').to.deep.equal(['ca.crt', 'server.crt', 'server.key']);
      const certificate = new X509Certificate(readFileSync(join(serverDir, 'server.crt')));
      const [managerHost] = (flagValue(podArgs(onlyContainer(find(tls, 'StatefulSet', 'kvstore-node')), podOf(find(tls, 'StatefulSet', 'kvstore-node'), 0, NAMESPACE)), '--manager') ?? '').split(':');
      const names = [managerHost ?? '', '127.0.0.1'];
      const nodes = find(tls, 'StatefulSet', 'kvstore-node');
      for (const ordinal of [0, 1, 2, 7]) {
        names.push((flagValue(podArgs(onlyContainer(nodes), podOf(nodes, ordinal, NAMESPACE)), '--advertise') ?? '').replace(/:\d+$/, ''));
      }
      for (const host of names) {
        expect(checkServerIdentity(host, certificate.toLegacyObject()), `the server certificate is valid for ${host}`).to.equal(undefined);
      }
      expect(checkServerIdentity('kvstore-node-0.kvstore-node.other.svc', certificate.toLegacyObject()), 'another namespace is not covered').to.be.instanceOf(Error);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The `npx kvstore certs create …` line of docs/kubernetes.md as args (`$NS` the test's namespace),
 * and the directory each `kubectl create secret generic NAME --from-file=DIR` line reads.
 */
function documentedCertsCommand(): { certsArgs: string[]; secretDirs: Map<string, string> } {
  const docs = readFileSync(join(REPO_ROOT, 'docs/kubernetes.md'), 'utf8');
  const line = /^npx kvstore (certs create .*)$/m.exec(docs)?.[1];
  if (line === undefined) throw new Error('docs/kubernetes.md has no `npx kvstore certs create` line');
  const certsArgs = (line.match(/"[^"]*"|\S+/g) ?? []).map((word) => word.replace(/^"|"$/g, '').replaceAll('$NS', NAMESPACE));
  const secretDirs = new Map<string, string>();
  for (const match of docs.matchAll(/^kubectl create secret generic (\S+) --from-file=(\S+)$/gm)) secretDirs.set(match[1] ?? '', match[2] ?? '');
  return { certsArgs, secretDirs };
}

describe('ops: the Kubernetes pods\' commands as local processes', function () {
  this.timeout(300_000);

  it('plain: status --wait, put/get, a drain refused at K nodes; scale up, the new node gets replicas, drains, stops, comes back drained until --cancel', async () => {
    await runLocalCluster(renderKustomization(DEPLOY_DIR, REPO_ROOT), { namespace: NAMESPACE, scale: true });
  });

  it('TLS: the same commands with the documented certificates: status --wait and put/get with the Secret\'s files', async () => {
    await runLocalCluster(renderKustomization(TLS_DIR, REPO_ROOT), { namespace: NAMESPACE, scale: false, certsCommand: documentedCertsCommand().certsArgs });
  });
});
