/**
 * The argv src/cluster builds for the manager and the nodes: every flag, for the default layout
 * (`kvstore cluster`, the bench), per-process ports (the tests) and per-node hosts (chaos).
 */
import { expect } from 'chai';
import { childCommand, childCommands, managerAddress, portRange, type ClusterSpec } from '../../src/cluster/index.js';

const BASE: Omit<ClusterSpec, 'manager' | 'node'> = { mainScript: 'main.js', nodes: 2, replicas: 2, shards: 8, dataDir: '/data', downAfterSeconds: 4 };

describe('cluster/child-commands', () => {
  it('lays the manager and the nodes out on a port range on 127.0.0.1 by default', () => {
    const spec: ClusterSpec = { ...BASE, ...portRange(7000) };
    expect(managerAddress(spec)).to.equal('127.0.0.1:7000');
    expect(childCommands(spec)).to.deep.equal([
      { name: 'manager', args: ['main.js', 'manager', '--port', '7000', '--replicas', '2', '--shards', '8', '--data-dir', '/data/manager', '--bootstrap-nodes', '2', '--down-after', '4'] },
      { name: 'n1', args: ['main.js', 'node', '--id', 'n1', '--port', '7001', '--manager', '127.0.0.1:7000', '--data-dir', '/data/n1'] },
      { name: 'n2', args: ['main.js', 'node', '--id', 'n2', '--port', '7002', '--manager', '127.0.0.1:7000', '--data-dir', '/data/n2'] },
    ]);
  });

  it('gives each node its own host, advertised, when the hosts differ', () => {
    const spec: ClusterSpec = { ...BASE, ...portRange(7000, { manager: '10.0.0.2', node: (nodeId) => `10.0.1.${nodeId.slice(1)}` }) };
    expect(managerAddress(spec)).to.equal('10.0.0.2:7000');
    expect(childCommand(spec, 'manager').args).to.include.members(['--host', '10.0.0.2']);
    expect(childCommand(spec, 2).args.slice(2)).to.deep.equal([
      '--id', 'n2', '--port', '7002', '--host', '10.0.1.2', '--manager', '10.0.0.2:7000', '--data-dir', '/data/n2', '--advertise', '10.0.1.2:7002',
    ]);
  });

  it('passes explicit metrics ports, and the node flags only to nodes', () => {
    const spec: ClusterSpec = {
      ...BASE,
      leaseReads: false,
      metricsPerShard: true,
      unsafeStaleReads: true,
      manager: { port: 21000, metricsPort: 21500 },
      node: (index) => ({ port: 22000 + index, metricsPort: 23000 + index }),
    };
    const [manager, ...nodes] = childCommands(spec);
    expect(manager?.args).to.include.members(['--metrics-port', '21500']);
    expect(manager?.args).to.not.include.members(['--no-lease-reads', '--metrics-per-shard', '--unsafe-stale-reads']);
    expect(nodes.map((node) => node.args.slice(-5))).to.deep.equal([
      ['--data-dir', '/data/n1', '--no-lease-reads', '--metrics-per-shard', '--unsafe-stale-reads'],
      ['--data-dir', '/data/n2', '--no-lease-reads', '--metrics-per-shard', '--unsafe-stale-reads'],
    ]);
    expect(childCommand(spec, 2).args).to.include.members(['--port', '22002', '--metrics-port', '23002']);
  });
});
