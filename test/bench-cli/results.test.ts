import { expect } from 'chai';
import { perOp, renderRunTable, type BenchRun } from '../../src/bench/results.js';

const percentiles = { p50: 1, p90: 2, p99: 3, p999: 4, mean: 1.5, max: 5, count: 10 };

function run(cpuMicrosPerOp: BenchRun['cpuMicrosPerOp']): BenchRun {
  return {
    nodes: 1, replicas: 1, shards: 1, ops: 20, gets: 10, puts: 10, opsPerSec: 100, elapsedSeconds: 0.2,
    get: percentiles, put: percentiles, errors: 0, errorsByKind: {}, keysPerNode: { n1: 5 }, meanKeysPerNode: 5,
    maxKeyDeviationPercent: 0, leadersPerNode: { n1: 1 }, preloadSeconds: 0.1, preloadFailed: 0, cpuMicrosPerOp,
  };
}

describe('bench/results: CPU per operation', () => {
  it('divides by the operations and rounds to 0.1 µs; null when unknown or nothing succeeded', () => {
    expect(perOp(1_000, 3)).to.equal(333.3);
    expect(perOp(2_717, 10)).to.equal(271.7);
    expect(perOp(null, 10)).to.equal(null);
    expect(perOp(500, 0)).to.equal(null);
  });

  it('prints a line with the nodes, clients and manager, or why the nodes are missing', () => {
    expect(renderRunTable(run({ nodes: 271.4, manager: 1.2, clients: 68.2 }))).to.include('cpu per op: nodes 271.4 µs, clients 68.2 µs, manager 1.2 µs');
    const remote = renderRunTable(run({ nodes: null, manager: null, clients: 68.2 }), '--manager');
    expect(remote).to.include('cpu per op: nodes n/a (--manager), clients 68.2 µs');
    expect(remote).not.to.include('manager 0');
  });
});

describe('bench/results: the named mixes in the run table', () => {
  it('a get/put run prints as before: no op line, get and put rows', () => {
    const text = renderRunTable(run({ nodes: 1, manager: 1, clients: 1 }));
    expect(text).to.not.include('one op:');
    expect(text).to.match(/^ {2}get /m);
    expect(text).to.match(/^ {2}put /m);
    expect(text).to.not.match(/^ {2}txn /m);
  });

  it('a txn run says what one op is and shows the transactions\' row instead of gets and puts', () => {
    const txnRun: BenchRun = { ...run({ nodes: 1, manager: 1, clients: 1 }), gets: 0, puts: 0, txns: 20, txn: { ...percentiles, count: 20 } };
    const text = renderRunTable(txnRun, 'not measured', 'one transaction: if {gN}a exists, put {gN}a and {gN}b');
    expect(text.split('\n')[1]).to.equal('  one op: one transaction: if {gN}a exists, put {gN}a and {gN}b');
    expect(text).to.match(/^ {2}txn +20 +1\.00 +2\.00 +3\.00 +4\.00 +5\.00$/m);
    expect(text).to.not.match(/^ {2}(get|put) /m);
  });
});
