/**
 * `kvstore chaos [--manager ADDR] [--duration S] [--clients C] [--keys N]
 * [--faults kill,pause,leader,partition,restart] [--interval S] [--seed N] [--txn-fraction F]
 * [--ttl-fraction F] [--out DIR]` (issue 7; transactions and TTL puts, issue 18):
 * a bounded chaos run checked for linearizability, lost writes and recovery. Prints a summary and
 * the verdict line on stdout, progress on stderr. Exit 0 when every check passed, 1 on a violation
 * (or an undecided check, or a cluster that did not recover), 2 on bad input, 3 when the cluster
 * could not be started or reached. With `partition` (as root) the local cluster's nodes run in
 * network namespaces; the first SIGINT/SIGTERM/SIGHUP heals and checks, a second exits at once, and either
 * way the run's exit handler removes the namespaces (src/chaos/netns.ts).
 */
import { randomInt } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import {
  ChaosSetupError,
  DEFAULT_TRANSACTION_FRACTION,
  DEFAULT_TTL_FRACTION,
  FAULT_KINDS,
  MAX_TTL_MS,
  MIN_TTL_MS,
  passed,
  runChaos,
  summaryLines,
  verdictLine,
  writeOutputs,
  type ChaosOptions,
  type FaultKind,
} from '../chaos/index.js';
import { BadInputError, checkAddress, EXIT, failWith, onStopSignals, parseInteger, parseSeconds, reportError } from './client-util.js';
import { addClientSecurityOptions, clientSecurityFromFlags, type ClientSecurityFlags } from './security-flags.js';

/** The environment variable that must be `1` before any test-only unsafe flag is accepted. */
export const ALLOW_UNSAFE_TESTING_ENV = 'KVSTORE_ALLOW_UNSAFE_TESTING';

interface ChaosFlags extends ClientSecurityFlags {
  manager?: string;
  duration: string;
  clients: string;
  keys: string;
  faults: string;
  interval: string;
  seed?: string;
  out?: string;
  unsafeStaleReads?: boolean;
  tls?: boolean;
  txnFraction?: string;
  ttlFraction?: string;
}

/** Registers `chaos` on the root program. */
export function registerChaosCommand(program: Command): void {
  addClientSecurityOptions(program
    .command('chaos'))
    .description('run a workload while injecting faults, then check linearizability, lost writes and recovery')
    .option('--manager <host:port>', 'an existing cluster to test (no faults: they need processes this run started); default: start a local 5-node cluster')
    .option('--duration <seconds>', 'how long the workload and faults run', '60')
    .option('--clients <c>', 'concurrent clients', '4')
    .option('--keys <n>', 'keys the clients contend on', '8')
    .option('--faults <list>', `comma-separated faults: ${FAULT_KINDS.join(',')}`, FAULT_KINDS.join(','))
    .option('--interval <seconds>', 'fault pacing: each fault starts 0.5–1 intervals after the last one healed and lasts 0.3–0.9 intervals', '5')
    .option('--seed <n>', 'seed of the fault schedule and the workload (default: random, printed)')
    .option('--out <dir>', 'write history.jsonl, timeline.txt, report.txt (and violation.txt) here; the cluster data and logs go to DIR/cluster')
    .option('--tls', 'start the local cluster with mutual TLS (certificates made in its data dir); the clients present a client certificate')
    .option('--txn-fraction <f>', 'fraction of the calls that are transactions on hash-tagged key groups, 0…1 (0: none)', String(DEFAULT_TRANSACTION_FRACTION))
    .option('--ttl-fraction <f>', `fraction of the puts that carry a TTL of ${MIN_TTL_MS} ms–${MAX_TTL_MS / 1000} s, 0…1 (0: none)`, String(DEFAULT_TTL_FRACTION))
    .addHelpText(
      'after',
      '\nPrints a summary and the verdict line "linearizable: yes|NO  ops checked: N  faults injected: F  lost writes: L  recovered: yes|NO".\n' +
        'Exit codes: 0 every check passed; 1 a violation, an undecided check or a cluster that did not recover; 2 bad input; 3 the cluster could not be started or reached.\n' +
        'partition needs root and iproute2: the local cluster then runs each node in its own network namespace; otherwise (or with --manager) it is skipped with a note.',
    )
    .addOption(new Option('--unsafe-stale-reads', `test only: start nodes that serve reads without ReadIndex (needs ${ALLOW_UNSAFE_TESTING_ENV}=1)`).hideHelp())
    .action(async (flags: ChaosFlags) => {
      let options: ChaosOptions;
      try {
        options = parseChaosFlags(flags);
      } catch (error) {
        reportError(error);
        return;
      }
      process.exitCode = await runChaosCommand(options, flags.out === undefined ? undefined : resolve(flags.out));
    });
}

/** Validates the flags; throws {@link BadInputError} with one clear line. */
export function parseChaosFlags(flags: ChaosFlags): ChaosOptions {
  const faults = flags.faults
    .split(',')
    .map((fault) => fault.trim())
    .filter((fault) => fault !== '' && fault !== 'none');
  for (const fault of faults) {
    if (!(FAULT_KINDS as readonly string[]).includes(fault)) {
      throw new BadInputError(`--faults wants a comma-separated list of ${FAULT_KINDS.join(', ')} (or none), got "${fault}"`);
    }
  }
  if (flags.unsafeStaleReads === true) {
    if (process.env[ALLOW_UNSAFE_TESTING_ENV] !== '1') {
      throw new BadInputError(`--unsafe-stale-reads is for tests only and needs ${ALLOW_UNSAFE_TESTING_ENV}=1`);
    }
    if (flags.manager !== undefined) throw new BadInputError('--unsafe-stale-reads applies only to the local cluster a run starts, not with --manager');
  }
  if (flags.manager === undefined && (flags.tlsCa !== undefined || flags.token !== undefined)) {
    throw new BadInputError('--tls-ca, --cert, --key and --token are for --manager; the local cluster takes --tls');
  }
  if (flags.manager !== undefined && flags.tls === true) throw new BadInputError('--tls starts the local cluster with TLS; with --manager give --tls-ca');
  const out = flags.out === undefined ? undefined : resolve(flags.out);
  return {
    ...(flags.tls === true ? { tls: true } : {}),
    ...(flags.manager === undefined ? {} : { credentials: clientSecurityFromFlags(flags) }),
    ...(flags.manager === undefined ? {} : { managerAddress: checkAddress(flags.manager, '--manager') }),
    durationSeconds: parseSeconds(flags.duration, '--duration'),
    clients: parseInteger(flags.clients, '--clients', 1, 256),
    keys: parseInteger(flags.keys, '--keys', 1, 1000),
    faults: [...new Set(faults)] as FaultKind[],
    intervalSeconds: parseSeconds(flags.interval, '--interval'),
    ...(flags.txnFraction === undefined ? {} : { transactionFraction: parseFraction(flags.txnFraction, '--txn-fraction') }),
    ...(flags.ttlFraction === undefined ? {} : { ttlFraction: parseFraction(flags.ttlFraction, '--ttl-fraction') }),
    seed: flags.seed === undefined ? randomInt(2 ** 31) : parseInteger(flags.seed, '--seed', 0, 2 ** 32 - 1),
    ...(out === undefined ? {} : { clusterDir: join(out, 'cluster') }),
    mainScript: fileURLToPath(new URL('./main.js', import.meta.url)),
    ...(flags.unsafeStaleReads === true ? { unsafeStaleReads: true, env: { [ALLOW_UNSAFE_TESTING_ENV]: '1' } } : {}),
    progress: (line) => process.stderr.write(`chaos: ${line}\n`),
  };
}

/** A fraction flag: a decimal number from 0 to 1 (`0.25`, `1`, `.1`); throws {@link BadInputError} otherwise. */
function parseFraction(text: string, flag: string): number {
  const value = /^(\d+(\.\d*)?|\.\d+)$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(value >= 0 && value <= 1)) throw new BadInputError(`${flag} wants a fraction from 0 to 1, got "${text}"`);
  return value;
}

/** Runs, prints, writes `--out`; resolves to the exit code. Ctrl-C ends the workload early (a second one exits at once). */
async function runChaosCommand(options: ChaosOptions, outDir: string | undefined): Promise<number> {
  const interrupt = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    if (++interrupts > 1) process.exit(EXIT.unavailable); // the run's exit handler kills the cluster
    process.stderr.write('chaos: interrupted; healing and checking what was recorded (again to quit at once)\n');
    interrupt.abort();
  };
  const stopListening = onStopSignals(onSignal);
  try {
    process.stderr.write(`chaos: seed ${options.seed}\n`);
    const result = await runChaos(options, interrupt.signal);
    for (const line of summaryLines(result)) process.stdout.write(`${line}\n`);
    if (outDir !== undefined) process.stdout.write(`wrote ${writeOutputs(outDir, result).join(', ')} to ${outDir}\n`);
    process.stdout.write(`${verdictLine(result)}\n`);
    return passed(result) ? EXIT.ok : 1;
  } catch (error) {
    if (error instanceof ChaosSetupError) {
      failWith(`error: ${error.message}`, EXIT.unavailable);
      return EXIT.unavailable;
    }
    throw error;
  } finally {
    stopListening();
  }
}
