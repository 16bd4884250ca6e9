/**
 * A compose-like network out of Linux network namespaces: a bridge in this (the root) namespace, and
 * one namespace per host, each with its own address on the bridge (like containers on a compose
 * network) and an /etc/hosts that maps every host name to its address (`ip netns exec` bind-mounts
 * /etc/netns/NAME/hosts over /etc/hosts, as compose's DNS resolves service names). This namespace
 * reaches every host through the bridge's gateway address (.1); extra names can get their own
 * address on the bridge here (`rootNames`), e.g. a manager that must be told apart from clients.
 *
 * `kvstore chaos` runs each node in its own namespace to partition them with blackhole routes
 * ({@link NetnsNetwork.blackhole}); the ops tests run the compose topology in it.
 *
 * Needs root and iproute2; {@link netnsUnavailable} says why not when they are missing. Names derive
 * from this process's pid (`kv<pid>-<host>`, bridge `kv<pid>br`), so two processes never clash and a
 * harness that knows the pid can remove what a killed process left ({@link removeNetworkOf}).
 * {@link NetnsNetwork.destroy} removes everything it made, is synchronous (so an `exit` handler can
 * call it) and is safe on a half-built network.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createSilentLogger, type Logger } from '../common/index.js';

/** Linux's limit on interface names (IFNAMSIZ - 1). */
const MAX_INTERFACE_NAME = 15;
/** The /24s handed out are 10.213.0.0/24 … 10.213.255.0/24. */
const SUBNET_PREFIX = '10.213';
/** Namespaced hosts get .10, .11, …; root names .2, .3, … (.1 is the gateway). */
const FIRST_HOST_OCTET = 10;
const FIRST_ROOT_OCTET = 2;
/** Where `ip netns exec` finds a namespace's own /etc files. */
const NETNS_ETC = '/etc/netns';

/** Thrown when an `ip` command fails: names the command and what `ip` said. */
export class NetnsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetnsError';
  }
}

/** Runs `ip ARGS…`; throws {@link NetnsError} with the command line and ip's stderr when it fails. */
function ip(...args: string[]): string {
  try {
    return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim() ?? '';
    throw new NetnsError(`\`ip ${args.join(' ')}\` failed: ${stderr === '' ? String(error) : stderr}`);
  }
}

/** Runs `ip ARGS…` for cleanup: never throws; returns ip's complaint, or undefined when it worked. */
function ipQuiet(...args: string[]): string | undefined {
  const result = spawnSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  return result.status === 0 ? undefined : (result.stderr.trim() || `exit ${result.status ?? result.signal ?? '?'}`);
}

/** Why namespaces cannot be used here, or undefined when they can (it adds and deletes a probe namespace). */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns); run as root to include them';
  if (spawnSync('ip', ['-V'], { stdio: 'ignore' }).status !== 0) return 'the `ip` command (iproute2) is not installed';
  const probe = `kvprobe${process.pid}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (added.status !== 0) return `\`ip netns add\` failed: ${added.stderr.trim()}`;
  ipQuiet('netns', 'del', probe);
  return undefined;
}

/** The name stem of everything a process's network creates: `kv<pid>`. */
export function networkPrefix(ownerPid: number): string {
  return `kv${ownerPid}`;
}

/**
 * Removes whatever the network of process `ownerPid` left behind (namespaces, their /etc/netns
 * dirs, the bridge, veths), for a harness whose child was killed before it could clean up. Only call
 * it once that process is gone (or is this process, about to build its own). Returns the names removed.
 */
export function removeNetworkOf(ownerPid: number): string[] {
  const prefix = `${networkPrefix(ownerPid)}-`;
  const removed: string[] = [];
  for (const namespace of listNamespaces().filter((name) => name.startsWith(prefix))) {
    ipQuiet('netns', 'del', namespace);
    removed.push(namespace);
  }
  for (const entry of safeReaddir(NETNS_ETC).filter((name) => name.startsWith(prefix))) {
    rmSync(`${NETNS_ETC}/${entry}`, { recursive: true, force: true });
  }
  const ours = new RegExp(`^${networkPrefix(ownerPid)}(br|v\\d+)$`); // the bridge and the veths' outer ends
  const interfaces = listInterfaces().filter((name) => ours.test(name));
  for (const name of interfaces) {
    if (ipQuiet('link', 'del', name) === undefined) removed.push(name);
  }
  return removed;
}

/** The interface names in this namespace (`ip -o link show`: `7: NAME@PEER: <…>`). */
function listInterfaces(): string[] {
  const result = spawnSync('ip', ['-o', 'link', 'show'], { stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8' });
  if (result.status !== 0) return [];
  return result.stdout.split('\n').map((line) => line.split(': ')[1]?.split('@')[0] ?? '').filter((name) => name !== '');
}

/** The names `ip netns list` shows (each line is `NAME` or `NAME (id: N)`). */
export function listNamespaces(): string[] {
  const result = spawnSync('ip', ['netns', 'list'], { stdio: ['ignore', 'pipe', 'ignore'], encoding: 'utf8' });
  if (result.status !== 0) return [];
  return result.stdout.split('\n').map((line) => line.split(' ')[0] ?? '').filter((name) => name !== '');
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** One namespace on the network. */
export interface NetnsHost {
  /** The host name, resolvable from every namespace. */
  name: string;
  /** The namespace's name for `ip netns exec` / `ip -n`. */
  namespace: string;
  address: string;
}

/** What else {@link NetnsNetwork.create} sets up. */
export interface NetnsCreateOptions {
  /**
   * Names that get an address of their own on the bridge in this (root) namespace, e.g. a manager
   * started here: a host can then cut it off with a blackhole route without losing the gateway,
   * which is where everything else in this namespace (clients) connects from.
   */
  rootNames?: readonly string[];
}

/** The networks of this process that are up: names derive from the pid, so there can be one. */
const liveNetworks = new Set<NetnsNetwork>();

/** A bridge plus one namespace per host; see the file comment. */
export class NetnsNetwork {
  /** The namespaced hosts, by name. */
  readonly hosts = new Map<string, NetnsHost>();
  /** Addresses of the root names (see {@link NetnsCreateOptions.rootNames}). */
  private readonly rootAddresses = new Map<string, string>();
  /** Blackhole routes in place: `namespace` → destination addresses. */
  private readonly blackholes = new Map<string, Set<string>>();
  private readonly prefix: string;
  private readonly bridge: string;
  private subnet = '';
  private bridgeCreated = false;

  /** Picks names from this process's pid; nothing is created until {@link create}. */
  constructor(private readonly logger: Logger = createSilentLogger()) {
    this.prefix = networkPrefix(process.pid);
    this.bridge = `${this.prefix}br`;
  }

  /** The root namespace's address on the bridge: what this process connects from. Set by {@link create}. */
  get gateway(): string {
    return `${this.subnet}.1`;
  }

  /**
   * Creates the bridge (gateway .1), one namespace per name (.10, .11, …) and the hosts files. On
   * failure it throws {@link NetnsError}; call {@link destroy} then to remove the half-built part.
   */
  create(names: readonly string[], options: NetnsCreateOptions = {}): void {
    if (liveNetworks.size > 0) throw new NetnsError(`this process already has a network (${this.bridge}); destroy it first`);
    liveNetworks.add(this);
    const stale = removeNetworkOf(process.pid); // what a dead process with our pid left behind
    if (stale.length > 0) this.logger.warn('removed a stale network', { component: 'netns', removed: stale });
    this.checkInterfaceName(this.bridge);
    names.forEach((_, index) => this.checkInterfaceName(this.vethName(index)));
    this.subnet = pickFreeSubnet(process.pid);
    ip('link', 'add', this.bridge, 'type', 'bridge');
    this.bridgeCreated = true;
    ip('addr', 'add', `${this.gateway}/24`, 'dev', this.bridge);
    (options.rootNames ?? []).forEach((name, index) => {
      const address = `${this.subnet}.${FIRST_ROOT_OCTET + index}`;
      ip('addr', 'add', `${address}/24`, 'dev', this.bridge); // secondary: the gateway stays the source address
      this.rootAddresses.set(name, address);
    });
    ip('link', 'set', this.bridge, 'up');
    names.forEach((name, index) => this.addHost(name, index));
    this.writeHostsFiles();
    this.logger.info('network created', {
      component: 'netns', bridge: this.bridge, subnet: `${this.subnet}.0/24`, namespaces: [...this.hosts.values()].map((host) => host.namespace),
    });
  }

  /** The namespaced host named `name`. */
  host(name: string): NetnsHost {
    const host = this.hosts.get(name);
    if (host === undefined) throw new Error(`no namespace for ${name}`);
    return host;
  }

  /** The address of `name`: a namespaced host or a root name. */
  address(name: string): string {
    const address = this.hosts.get(name)?.address ?? this.rootAddresses.get(name);
    if (address === undefined) throw new Error(`no address for ${name} on ${this.bridge}`);
    return address;
  }

  /**
   * Drops every packet host `from` sends to `toAddress` (a blackhole route in its namespace): TCP
   * cannot get a segment through, so connections stall and new ones fail. Cut the other side too
   * for a symmetric partition. Adding a route that is already there does nothing.
   */
  blackhole(from: string, toAddress: string): void {
    const namespace = this.host(from).namespace;
    const routes = this.blackholes.get(namespace) ?? new Set<string>();
    if (routes.has(toAddress)) return;
    ip('-n', namespace, 'route', 'add', 'blackhole', `${toAddress}/32`);
    routes.add(toAddress);
    this.blackholes.set(namespace, routes);
    this.logger.debug('blackhole added', { component: 'netns', namespace, to: toAddress });
  }

  /** Removes every blackhole route {@link blackhole} added; returns how many there were. */
  removeBlackholes(): number {
    let removed = 0;
    for (const [namespace, routes] of this.blackholes) {
      for (const toAddress of routes) {
        ip('-n', namespace, 'route', 'del', 'blackhole', `${toAddress}/32`);
        routes.delete(toAddress);
        removed++;
        this.logger.debug('blackhole removed', { component: 'netns', namespace, to: toAddress });
      }
    }
    this.blackholes.clear();
    return removed;
  }

  /**
   * Deletes every veth pair, namespace, the bridge and the hosts files. Synchronous and never
   * throws, so an `exit` handler can call it; what it could not remove is logged as a warning.
   * Calling it again, or on a half-built network, is fine.
   *
   * The veths are deleted explicitly rather than left to go with their namespace: a namespace
   * outlives `ip netns del` while anything references it — a process still dying, or a killed
   * process's orphaned TCP socket retransmitting into a blackhole for minutes — and its veth would
   * linger in this namespace that long.
   */
  destroy(): void {
    const failures: string[] = [];
    [...this.hosts.values()].forEach((host, index) => {
      const vethFailure = ipQuiet('link', 'del', this.vethName(index));
      if (vethFailure !== undefined && !vethFailure.includes('Cannot find device')) failures.push(`${this.vethName(index)}: ${vethFailure}`);
      const failure = ipQuiet('netns', 'del', host.namespace);
      if (failure !== undefined && !failure.includes('No such file')) failures.push(`${host.namespace}: ${failure}`);
      rmSync(`${NETNS_ETC}/${host.namespace}`, { recursive: true, force: true });
    });
    if (this.bridgeCreated) {
      const failure = ipQuiet('link', 'del', this.bridge);
      if (failure !== undefined && !failure.includes('Cannot find device')) failures.push(`${this.bridge}: ${failure}`);
    }
    if (this.hosts.size > 0 || this.bridgeCreated) {
      if (failures.length > 0) this.logger.warn('network not fully removed', { component: 'netns', failures });
      else this.logger.info('network removed', { component: 'netns', bridge: this.bridge });
    }
    this.hosts.clear();
    this.rootAddresses.clear();
    this.blackholes.clear();
    this.bridgeCreated = false;
    liveNetworks.delete(this);
  }

  /** Adds namespace `index` with a veth pair: `eth0` inside, the other end on the bridge. */
  private addHost(name: string, index: number): void {
    const host: NetnsHost = { name, namespace: `${this.prefix}-${name}`, address: `${this.subnet}.${FIRST_HOST_OCTET + index}` };
    this.hosts.set(name, host); // before `netns add`, so destroy() removes it even if a later step fails
    const outside = this.vethName(index);
    ip('netns', 'add', host.namespace);
    ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.namespace);
    ip('link', 'set', outside, 'master', this.bridge);
    ip('link', 'set', outside, 'up');
    ip('-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
    ip('-n', host.namespace, 'link', 'set', 'eth0', 'up');
    ip('-n', host.namespace, 'link', 'set', 'lo', 'up');
  }

  private writeHostsFiles(): void {
    const entries = [...[...this.rootAddresses].map(([name, address]) => `${address} ${name}`), ...[...this.hosts.values()].map((host) => `${host.address} ${host.name}`)];
    const hostsFile = ['127.0.0.1 localhost', ...entries, ''].join('\n');
    for (const host of this.hosts.values()) {
      mkdirSync(`${NETNS_ETC}/${host.namespace}`, { recursive: true });
      writeFileSync(`${NETNS_ETC}/${host.namespace}/hosts`, hostsFile);
    }
  }

  private vethName(index: number): string {
    return `${this.prefix}v${index}`;
  }

  private checkInterfaceName(name: string): void {
    if (name.length > MAX_INTERFACE_NAME) throw new NetnsError(`interface name ${name} is longer than ${MAX_INTERFACE_NAME} characters`);
  }
}

/**
 * A /24 under 10.213 that no interface or route in this namespace uses yet, starting from one the
 * pid picks: another process's network holds its gateway address here, so two never share a subnet
 * (short of two processes choosing in the same instant).
 */
function pickFreeSubnet(pid: number): string {
  const inUse = `${ip('-4', '-o', 'addr', 'show')}\n${ip('-4', 'route', 'show', 'table', 'all')}`;
  for (let attempt = 0; attempt < 256; attempt++) {
    const subnet = `${SUBNET_PREFIX}.${(pid + attempt) % 256}`;
    if (!inUse.includes(`${subnet}.`)) return subnet;
  }
  throw new NetnsError(`every /24 under ${SUBNET_PREFIX}.0.0/16 is in use`);
}
