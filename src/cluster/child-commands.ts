/**
 * The argv of a local cluster's processes: the manager and nodes n1…nN, as `kvstore cluster`,
 * `kvstore bench`/`driver`, `kvstore chaos` and the integration tests start them. {@link childCommand}
 * is the one function every caller goes through, so a flag every process needs (TLS, an auth token)
 * is added to {@link ClusterSpec} and there, once.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { securityArgs, type ServerSecurityFiles } from './security.js';

/** The compiled CLI entry point (`dist/src/cli/main.js`) the children run. A path, not an import. */
export const CLI_MAIN_SCRIPT = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** The name of the manager process. */
export const MANAGER_NAME = 'manager';

/** Where one server process listens. */
export interface Endpoint {
  /**
   * `--host`: the address it listens on; a node also advertises `host:port` to peers and clients.
   * Omitted: the servers' default, 127.0.0.1.
   */
  host?: string;
  /** `--port`. */
  port: number;
  /** `--metrics-port`. Omitted: the servers' default, port + 1000. */
  metricsPort?: number;
}

/**
 * Where the children listen when they do not all share 127.0.0.1: `kvstore chaos` runs each node in
 * its own network namespace with its own address, and the manager on an address they can reach.
 */
export interface ChildHosts {
  /** The manager's listen address; nodes register with it there. */
  manager: string;
  /** The address node `nodeId` listens on and advertises to peers and clients. */
  node: (nodeId: string) => string;
}

/** Everything that decides the argv of a cluster's processes. */
export interface ClusterSpec {
  /** The CLI entry point the children run; default {@link CLI_MAIN_SCRIPT}. */
  mainScript?: string;
  /** `--bootstrap-nodes`: the nodes the manager waits for before placing shards; {@link childCommands} starts n1…n`nodes`. */
  nodes: number;
  /** `--replicas`: replicas per shard. */
  replicas: number;
  /** `--shards`: fixed when the cluster is created. */
  shards: number;
  /** Data dirs: `<dataDir>/manager` and `<dataDir>/n<i>`. */
  dataDir: string;
  /** The manager's `--down-after`: how long a silent node is suspect before it is down and re-replicated. */
  downAfterSeconds: number;
  /** False: every node runs with `--no-lease-reads` (each read batch confirmed by a ReadIndex round). Default true. */
  leaseReads?: boolean;
  /** True: every node runs with `--metrics-per-shard`. Default false. */
  metricsPerShard?: boolean;
  /**
   * True: every node runs with `--unsafe-stale-reads`, which breaks linearizability on purpose (the
   * chaos negative test). The children also need its environment variable. Default false.
   */
  unsafeStaleReads?: boolean;
  /** TLS and token flags every server child gets (`security.ts`); none: plaintext, open. */
  security?: ServerSecurityFiles | undefined;
  /** Where the manager listens. */
  manager: Endpoint;
  /** Where node n`index` (from 1) listens. */
  node: (index: number) => Endpoint;
}

/** One child: its name (`manager`, `n1`…) and its argv after the node binary. */
export interface ChildCommand {
  name: string;
  args: string[];
}

/** The name of node `index` (from 1): `n1`, `n2`…. */
export function nodeName(index: number): string {
  return `n${index}`;
}

/**
 * The usual layout: the manager on `port`, node nI on port+I, metrics ports the servers' default
 * (+1000). Without `hosts` every process listens on 127.0.0.1.
 */
export function portRange(port: number, hosts?: ChildHosts): Pick<ClusterSpec, 'manager' | 'node'> {
  return {
    manager: hosts === undefined ? { port } : { host: hosts.manager, port },
    node: (index) => (hosts === undefined ? { port: port + index } : { host: hosts.node(nodeName(index)), port: port + index }),
  };
}

/** `host:port` where clients and nodes reach the manager. */
export function managerAddress(spec: ClusterSpec): string {
  return `${spec.manager.host ?? '127.0.0.1'}:${spec.manager.port}`;
}

/** The argv (after the node binary) of the manager, or of node n`member`. */
export function childCommand(spec: ClusterSpec, member: typeof MANAGER_NAME | number): ChildCommand {
  const mainScript = spec.mainScript ?? CLI_MAIN_SCRIPT;
  if (member === MANAGER_NAME) {
    return {
      name: MANAGER_NAME,
      args: [
        mainScript, 'manager',
        ...listenFlags(spec.manager),
        '--replicas', String(spec.replicas),
        '--shards', String(spec.shards),
        '--data-dir', join(spec.dataDir, MANAGER_NAME),
        '--bootstrap-nodes', String(spec.nodes),
        '--down-after', String(spec.downAfterSeconds),
        ...securityArgs(spec.security),
      ],
    };
  }
  const name = nodeName(member);
  const endpoint = spec.node(member);
  return {
    name,
    args: [
      mainScript, 'node',
      '--id', name,
      ...listenFlags(endpoint),
      '--manager', managerAddress(spec),
      '--data-dir', join(spec.dataDir, name),
      ...(endpoint.host === undefined ? [] : ['--advertise', `${endpoint.host}:${endpoint.port}`]),
      ...(spec.leaseReads === false ? ['--no-lease-reads'] : []),
      ...(spec.metricsPerShard === true ? ['--metrics-per-shard'] : []),
      ...(spec.unsafeStaleReads === true ? ['--unsafe-stale-reads'] : []),
      ...securityArgs(spec.security),
    ],
  };
}

/** Every child of the cluster: the manager first, then n1…n`nodes`. */
export function childCommands(spec: ClusterSpec): ChildCommand[] {
  const commands = [childCommand(spec, MANAGER_NAME)];
  for (let index = 1; index <= spec.nodes; index++) commands.push(childCommand(spec, index));
  return commands;
}

function listenFlags(endpoint: Endpoint): string[] {
  return [
    '--port', String(endpoint.port),
    ...(endpoint.metricsPort === undefined ? [] : ['--metrics-port', String(endpoint.metricsPort)]),
    ...(endpoint.host === undefined ? [] : ['--host', endpoint.host]),
  ];
}
