/**
 * What a pod of deploy/kubernetes runs, read from its rendered StatefulSet: the container's
 * environment as the kubelet builds it (plain values, and the downward API's pod name and
 * namespace), its args with `$(VAR)` expanded as Kubernetes expands them (no shell), and the same
 * args made to run here: the pod's addresses become free loopback ports and its volumes temporary
 * directories, every other argument unchanged.
 */
import type { KubernetesObject } from './kustomize.js';

/** The parts of a container spec the tests read. */
export interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  args?: string[];
  command?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
}

/** An HTTP probe. */
export interface Probe {
  httpGet?: { path: string; port: number | string; scheme?: string };
  failureThreshold?: number;
  periodSeconds?: number;
}

/** The parts of a StatefulSet the tests read. */
export interface StatefulSetSpec {
  serviceName: string;
  replicas?: number;
  podManagementPolicy?: string;
  selector: { matchLabels: Record<string, string> };
  template: {
    metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
    spec: {
      containers: Container[];
      securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number; fsGroup?: number };
      volumes?: { name: string; secret?: { secretName: string; defaultMode?: number; items?: unknown[] } }[];
    };
  };
  volumeClaimTemplates?: { metadata: { name: string } }[];
}

/** A Service's spec, as far as the tests read it. */
export interface ServiceSpec {
  clusterIP?: string;
  publishNotReadyAddresses?: boolean;
  selector: Record<string, string>;
  ports: { name?: string; port: number; targetPort?: number | string }[];
}

/** `object.spec`, typed as the caller says its kind is. */
export function specOf<T>(object: KubernetesObject): T {
  return object['spec'] as T;
}

/** The only container of a StatefulSet's pods. */
export function onlyContainer(statefulSet: KubernetesObject): Container {
  const containers = specOf<StatefulSetSpec>(statefulSet).template.spec.containers;
  if (containers.length !== 1 || containers[0] === undefined) throw new Error(`${statefulSet.metadata.name}: expected one container`);
  return containers[0];
}

/** A pod of a StatefulSet: its name is `STATEFULSET-ORDINAL`. */
export interface PodIdentity {
  name: string;
  namespace: string;
}

/** The pod of `statefulSet` with `ordinal`, in `namespace`. */
export function podOf(statefulSet: KubernetesObject, ordinal: number, namespace: string): PodIdentity {
  return { name: `${statefulSet.metadata.name}-${ordinal}`, namespace };
}

/** The container's environment in `pod`: values, and `fieldRef`s to the pod's name and namespace. */
export function containerEnv(container: Container, pod: PodIdentity): Map<string, string> {
  const env = new Map<string, string>();
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) {
      env.set(variable.name, expand(variable.value, env));
      continue;
    }
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    if (fieldPath === 'metadata.name') env.set(variable.name, pod.name);
    else if (fieldPath === 'metadata.namespace') env.set(variable.name, pod.namespace);
    else throw new Error(`${container.name}: env ${variable.name}: only values and fieldRefs to metadata.name/namespace are simulated`);
  }
  return env;
}

/**
 * `text` with `$(VAR)` replaced by VAR's value, as the kubelet does for a container's command,
 * args and env: `$$` is a literal `$`, and a reference to an undefined variable stays as it is.
 */
export function expand(text: string, env: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && env.has(name) ? env.get(name) ?? match : match;
  });
}

/** The args `pod` runs: the container's args, expanded in its environment. */
export function podArgs(container: Container, pod: PodIdentity): string[] {
  const env = containerEnv(container, pod);
  return (container.args ?? []).map((arg) => expand(arg, env));
}

/** How a pod's args become a local command. */
export interface LocalSubstitution {
  /** Ports for `--port` and `--metrics-port`. */
  port: number;
  metricsPort: number;
  /** `--advertise` becomes 127.0.0.1:port. */
  advertise?: boolean;
  /** `--manager HOST:PORT` becomes this address. */
  manager?: string;
  /** A mount path of the container → the local directory standing in for its volume. */
  mounts: ReadonlyMap<string, string>;
}

/** Flags whose values the substitution changes: addresses and paths; nothing else differs. */
export const SUBSTITUTED_FLAGS = ['--host', '--port', '--metrics-port', '--advertise', '--manager'] as const;

/** `args` (a pod's, expanded) with its addresses on loopback and its volumes in local directories. */
export function localArgs(args: readonly string[], substitution: LocalSubstitution): string[] {
  const local: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const previous = args[i - 1];
    if (previous === '--host') local.push('127.0.0.1');
    else if (previous === '--port') local.push(String(substitution.port));
    else if (previous === '--metrics-port') local.push(String(substitution.metricsPort));
    else if (previous === '--advertise' && substitution.advertise === true) local.push(`127.0.0.1:${substitution.port}`);
    else if (previous === '--manager' && substitution.manager !== undefined) local.push(substitution.manager);
    else local.push(mapPath(arg, substitution.mounts));
  }
  return local;
}

function mapPath(arg: string, mounts: ReadonlyMap<string, string>): string {
  for (const [mountPath, directory] of mounts) {
    if (arg === mountPath) return directory;
    if (arg.startsWith(`${mountPath}/`)) return `${directory}${arg.slice(mountPath.length)}`;
  }
  return arg;
}

/** The container port named or numbered `port` (a probe's or a Service's target). */
export function containerPort(container: Container, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((candidate) => candidate.name === port)?.containerPort;
}

/** Whether a `matchLabels` selector selects pods labelled `labels`. */
export function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}
