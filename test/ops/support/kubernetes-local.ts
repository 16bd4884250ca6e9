/**
 * The walk-through of docs/kubernetes.md on local processes: the manager pod and the node pods
 * of a rendered kustomization, started at once (podManagementPolicy Parallel) with the args the
 * kubelet would give them (kubernetes-pods.ts), addresses on loopback and volumes in temporary
 * directories. Then what an operator does with `kubectl exec kvstore-manager-0 -- kvstore …`:
 * `status --wait`, a put and a get, the probes; optionally a drain refused with K nodes, a scale
 * up (the new pod gets replicas), its drain and its stop, and the same pod back later (still
 * drained until `--cancel`). Every process is stopped by PID, and its log shown, whatever happens.
 */
import { expect } from 'chai';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterStatusJson } from '../../../src/cli/status-util.js';
import { freePort, runCli } from '../../support/cluster.js';
import { waitFor } from '../../support/wait-for.js';
import { flagValue } from './compose-file.js';
import {
  localArgs, onlyContainer, podArgs, podOf, SUBSTITUTED_FLAGS, specOf, type Container, type LocalSubstitution, type StatefulSetSpec,
} from './kubernetes-pods.js';
import type { KubernetesObject, Manifest } from './kustomize.js';
import { LocalPods } from './local-pods.js';

/** What {@link runLocalCluster} does besides start, wait, write and read. */
export interface LocalClusterOptions {
  namespace: string;
  /** Refuse a drain at K nodes, scale up by one node, drain it and stop it. */
  scale: boolean;
  /** `certs create …` args (paths relative to a scratch dir) making the Secret the pods mount. */
  certsCommand?: string[];
}

/** The one StatefulSet named `name`. */
function statefulSet(manifests: readonly Manifest[], name: string): KubernetesObject {
  const found = manifests.find(({ object }) => object.kind === 'StatefulSet' && object.metadata.name === name);
  if (found === undefined) throw new Error(`no StatefulSet ${name}`);
  return found.object;
}

/** A pod started locally: its name and where its endpoints are. */
interface StartedPod {
  name: string;
  port: number;
  metricsPort: number;
  container: Container;
}

/** Runs the walk-through; throws (after stopping everything) on the first thing that differs. */
export async function runLocalCluster(manifests: readonly Manifest[], options: LocalClusterOptions): Promise<void> {
  const pods = new LocalPods();
  try {
    await walkThrough(pods, manifests, options);
    expect(pods.strayFiles(), 'the processes wrote nothing outside their volumes').to.deep.equal([]);
  } catch (error) {
    process.stderr.write(`--- last lines of ${pods.logFile} ---\n${pods.tail()}\n`);
    throw error;
  } finally {
    await pods.stopAll();
  }
}

async function walkThrough(pods: LocalPods, manifests: readonly Manifest[], options: LocalClusterOptions): Promise<void> {
  const secretDirs = await makeSecrets(pods, options.certsCommand);
  const managerSet = statefulSet(manifests, 'kvstore-manager');
  const nodeSet = statefulSet(manifests, 'kvstore-node');

  const start = async (set: KubernetesObject, ordinal: number, manager?: string): Promise<StartedPod> => {
    const container = onlyContainer(set);
    const pod = podOf(set, ordinal, options.namespace);
    const args = podArgs(container, pod);
    const substitution: LocalSubstitution = {
      port: await freePort(), metricsPort: await freePort(), mounts: mountsOf(pods, set, container, pod.name, secretDirs),
      ...(manager === undefined ? {} : { advertise: true, manager }),
    };
    const local = localArgs(args, substitution);
    // Only addresses and volume paths differ from what the pod runs.
    args.forEach((arg, index) => {
      if (local[index] === arg) return;
      const flag = args[index - 1] ?? '';
      const isMountPath = [...substitution.mounts.keys()].some((mountPath) => arg === mountPath || arg.startsWith(`${mountPath}/`));
      expect((SUBSTITUTED_FLAGS as readonly string[]).includes(flag) || isMountPath, `${pod.name}: ${flag} ${arg} changed`).to.equal(true);
    });
    pods.start(pod.name, local);
    return { name: pod.name, port: substitution.port, metricsPort: substitution.metricsPort, container };
  };

  const manager = await start(managerSet, 0);
  const managerAddress = `127.0.0.1:${manager.port}`;
  const nodeCount = specOf<StatefulSetSpec>(nodeSet).replicas ?? 1;
  const nodes: StartedPod[] = [];
  for (let ordinal = 0; ordinal < nodeCount; ordinal++) nodes.push(await start(nodeSet, ordinal, managerAddress));

  // What `kubectl exec kvstore-manager-0 -- kvstore …` passes: the manager on loopback, and with
  // TLS the certificates the pod mounts (the server certificate is a client certificate too).
  const serverCerts = secretDirs.get('kvstore-server-tls');
  const credentials = serverCerts === undefined ? [] : ['--tls-ca', join(serverCerts, 'ca.crt'), '--cert', join(serverCerts, 'server.crt'), '--key', join(serverCerts, 'server.key')];
  const kvstore = (...args: string[]): ReturnType<typeof runCli> => runCli([...args, '--manager', managerAddress, ...credentials], { timeoutMs: 150_000 });
  const status = async (): Promise<ClusterStatusJson> => {
    const result = await kvstore('status', '--json');
    expect(result.code, result.stderr).to.equal(0);
    return JSON.parse(result.stdout) as ClusterStatusJson;
  };

  await waitFor('the manager\'s /healthz', async () => (await fetch(`http://127.0.0.1:${manager.metricsPort}/healthz`)).ok, 30_000);
  const ready = await kvstore('status', '--wait', '--timeout', '60');
  expect(ready.code, ready.stderr).to.equal(0);
  expect((await status()).nodes.map((node) => node.id).sort()).to.deep.equal(nodes.map((node) => node.name));

  // The probes, as the kubelet sends them: plain HTTP GETs of their paths on the metrics port.
  for (const pod of [manager, ...nodes]) {
    for (const probe of [pod.container.startupProbe, pod.container.readinessProbe, pod.container.livenessProbe]) {
      const path = probe?.httpGet?.path;
      if (path === undefined) continue;
      await waitFor(`${pod.name} ${path}`, async () => (await fetch(`http://127.0.0.1:${pod.metricsPort}${path}`)).status === 200, 30_000);
    }
  }

  const put = await kvstore('put', 'k8s:greeting', 'hello');
  expect(put.code, put.stderr).to.equal(0);
  const get = await kvstore('get', 'k8s:greeting');
  expect(get.stdout).to.equal('hello\n');
  if (!options.scale) return;

  // Scaling down below K+1 nodes: the drain is refused and the node keeps its replicas.
  const replicationFactor = Number(flagValue(podArgs(manager.container, podOf(managerSet, 0, options.namespace)), '--replicas'));
  const last = nodes[nodes.length - 1]?.name ?? '';
  const refused = await kvstore('node', 'drain', last);
  expect(refused.code, refused.stderr).to.equal(4);
  expect(refused.stderr).to.contain(`would leave shards under ${replicationFactor} live replicas`);

  // `kubectl scale statefulset kvstore-node --replicas N+1`: the new pod registers and the
  // manager moves replicas to it.
  const added = await start(nodeSet, nodeCount, managerAddress);
  await waitFor(`${added.name} to get replicas`, async () => ((await status()).nodes.find((node) => node.id === added.name)?.replicas ?? 0) > 0, 60_000, 500);

  // Scaling back down: drain the highest ordinal, then its pod goes.
  const drain = await kvstore('node', 'drain', added.name, '--timeout', '120');
  expect(drain.code, drain.stderr).to.equal(0);
  expect(drain.stderr).to.contain(`${added.name}: drained: it holds no replica and no leadership`);
  expect(await pods.stop(added.name), `${added.name} stops cleanly on SIGTERM`).to.equal(0);
  const after = await status();
  expect(after.shards.every((shard) => shard.replicas.length === replicationFactor && !shard.replicas.includes(added.name))).to.equal(true);
  const again = await kvstore('get', 'k8s:greeting');
  expect(again.stdout).to.equal('hello\n');

  // Scaling up again brings the same pod back with its claim: it is still drained, and gets
  // nothing until the drain is cancelled.
  pods.restart(added.name);
  const readiness = added.container.readinessProbe?.httpGet?.path ?? '/readyz';
  await waitFor(`${added.name} Ready again (registered)`, async () => (await fetch(`http://127.0.0.1:${added.metricsPort}${readiness}`)).status === 200, 30_000);
  const back = (await status()).nodes.find((node) => node.id === added.name);
  expect(back).to.deep.include({ draining: true, replicas: 0 });
  const cancel = await kvstore('node', 'drain', added.name, '--cancel');
  expect(cancel.code, cancel.stderr).to.equal(0);
  await waitFor(`${added.name} to get replicas once the drain is cancelled`, async () => ((await status()).nodes.find((node) => node.id === added.name)?.replicas ?? 0) > 0, 60_000, 500);
}

/** Runs `certs create` into a scratch dir; returns each `--server-dir`/`--client-dir` as its Secret. */
async function makeSecrets(pods: LocalPods, certsCommand: readonly string[] | undefined): Promise<Map<string, string>> {
  const secrets = new Map<string, string>();
  if (certsCommand === undefined) return secrets;
  const dir = join(pods.dir, 'certs-made-here');
  mkdirSync(dir);
  const args = certsCommand.map((arg, index) => (['--dir', '--server-dir', '--client-dir'].includes(certsCommand[index - 1] ?? '') ? join(dir, arg) : arg));
  const result = await runCli(args);
  expect(result.code, result.stderr).to.equal(0);
  secrets.set('kvstore-server-tls', flagValue(args, '--server-dir') ?? '');
  secrets.set('kvstore-client-tls', flagValue(args, '--client-dir') ?? '');
  return secrets;
}

/** The container's mount paths → local directories: a claim's is fresh, a Secret's is its files. */
function mountsOf(pods: LocalPods, set: KubernetesObject, container: Container, podName: string, secretDirs: ReadonlyMap<string, string>): Map<string, string> {
  const spec = specOf<StatefulSetSpec>(set);
  const mounts = new Map<string, string>();
  for (const mount of container.volumeMounts ?? []) {
    const claim = spec.volumeClaimTemplates?.find((template) => template.metadata.name === mount.name);
    const secretName = spec.template.spec.volumes?.find((volume) => volume.name === mount.name)?.secret?.secretName;
    const directory = claim !== undefined ? pods.volume(podName, mount.name) : secretDirs.get(secretName ?? '');
    if (directory === undefined) throw new Error(`${podName}: volume ${mount.name} is neither a claim template nor a Secret the test made`);
    mounts.set(mount.mountPath, directory);
  }
  return mounts;
}
