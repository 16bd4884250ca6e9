/**
 * A compose-like network out of Linux network namespaces: one namespace per service,
 * each with its own address on a bridge (like containers on a compose network) and an
 * /etc/hosts that maps every service name to its address (`ip netns exec` bind-mounts
 * /etc/netns/NAME/hosts over /etc/hosts, as compose's DNS resolves service names).
 * Needs root and iproute2; {@link netnsUnavailable} says why not when they are missing.
 * {@link NetnsNetwork.destroy} removes everything it made and is safe to call on a
 * half-built network.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the tests as root to include this one)';
  if (spawnSync('ip', ['-V'], { stdio: 'ignore' }).status !== 0) return 'the `ip` command (iproute2) is not installed';
  const probe = `kvprobe${process.pid % 100_000}`;
  const added = spawnSync('ip', ['netns', 'add', probe], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (added.status !== 0) return `\`ip netns add\` failed: ${added.stderr.toString().trim()}`;
  spawnSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  return undefined;
}

/** One namespace on the network. */
export interface NetnsHost {
  /** The service name, resolvable from every namespace. */
  name: string;
  /** The namespace's name for `ip netns exec`. */
  namespace: string;
  address: string;
}

/** A bridge plus one namespace per service. */
export class NetnsNetwork {
  readonly hosts = new Map<string, NetnsHost>();
  private readonly prefix: string;
  private readonly subnet: string;
  private readonly bridge: string;
  private bridgeCreated = false;

  /** Picks names and a /24 unique to this process; nothing is created until {@link create}. */
  constructor() {
    const id = process.pid % 250;
    this.prefix = `kvops${process.pid % 10_000}`;
    this.subnet = `10.213.${id}`;
    this.bridge = `${this.prefix}br`.slice(0, 15);
  }

  /** Creates the bridge (gateway .1, reachable from the test process) and one namespace per name. */
  create(names: readonly string[]): void {
    ip('link', 'add', this.bridge, 'type', 'bridge');
    this.bridgeCreated = true;
    ip('addr', 'add', `${this.subnet}.1/24`, 'dev', this.bridge);
    ip('link', 'set', this.bridge, 'up');
    names.forEach((name, index) => {
      const host: NetnsHost = { name, namespace: `${this.prefix}-${name}`, address: `${this.subnet}.${10 + index}` };
      this.hosts.set(name, host);
      const outside = `${this.prefix}v${index}`.slice(0, 15);
      ip('netns', 'add', host.namespace);
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.namespace);
      ip('link', 'set', outside, 'master', this.bridge);
      ip('link', 'set', outside, 'up');
      ip('-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
      ip('-n', host.namespace, 'link', 'set', 'eth0', 'up');
      ip('-n', host.namespace, 'link', 'set', 'lo', 'up');
    });
    const hostsFile = ['127.0.0.1 localhost', ...[...this.hosts.values()].map((host) => `${host.address} ${host.name}`), ''].join('\n');
    for (const host of this.hosts.values()) {
      mkdirSync(`/etc/netns/${host.namespace}`, { recursive: true });
      writeFileSync(`/etc/netns/${host.namespace}/hosts`, hostsFile);
    }
  }

  /** The host named `name`. */
  host(name: string): NetnsHost {
    const host = this.hosts.get(name);
    if (host === undefined) throw new Error(`no namespace for ${name}`);
    return host;
  }

  /** Deletes every namespace (their veths go with them), the bridge and the hosts files. */
  destroy(): void {
    for (const host of this.hosts.values()) {
      spawnSync('ip', ['netns', 'del', host.namespace], { stdio: 'ignore' });
      rmSync(`/etc/netns/${host.namespace}`, { recursive: true, force: true });
    }
    if (this.bridgeCreated) spawnSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' });
    this.hosts.clear();
  }
}
