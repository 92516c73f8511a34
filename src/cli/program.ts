import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { escapeControlChars } from '../core/logger.js';
import { checkpointCommand } from './checkpoint.js';
import { describePipelineFile } from './describe.js';
import { formatError } from './errors.js';
import { kafkaStartCommand, kafkaStatusCommand, kafkaStopCommand, type CommandResult } from './kafka.js';
import { offsetsCommand } from './offsets.js';
import { exitEvenIfHandlesRemain, runPipelineFile } from './run.js';
import { groupStatusCommand } from './group.js';
import { DEFAULT_INSTANCES_STOP_TIMEOUT_MS, parseInstances, runInstances } from './instances.js';
import { superviseRun } from './supervise.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function print(result: CommandResult): void {
  for (const line of result.lines) process.stdout.write(`${line}\n`);
  process.exitCode = result.exitCode;
}

/** A commander parser for an integer option >= `min`. */
function wholeNumber(option: string, min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${option} takes a whole number >= ${min}`);
    return n;
  };
}

/**
 * Runs a command body; an error is printed as one line `sluice <what>: CODE: message` (control
 * characters escaped, see {@link formatError}) with exit code 1.
 */
async function guarded(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    process.stderr.write(`sluice ${escapeControlChars(what)}: ${formatError(e)}\n`);
    process.exitCode = 1;
  }
}

/**
 * Commander's usage errors quote the arguments as given: one is written as one line with its
 * control characters escaped, like every other line the CLI writes that is not a JSON log entry.
 */
function escapeUsageErrors(cmd: Command): void {
  cmd.configureOutput({
    outputError: (text, write) =>
      write(text.endsWith('\n') ? `${escapeControlChars(text.slice(0, -1))}\n` : escapeControlChars(text)),
  });
  for (const sub of cmd.commands) escapeUsageErrors(sub);
}

/** The `sluice` command line. Only wiring: each command's logic is a function in this folder. */
export function createProgram(): Command {
  const program = new Command('sluice')
    .description(
      'Sluice: micro-batch stream processing for TypeScript (Spark Streaming DStreams on Node.js, Kafka in and out)',
    )
    .version(version(), '-V, --version')
    .option(
      '--kafka-config <file>',
      'librdkafka properties of the Kafka cluster (security.protocol, sasl.*, ssl.*) for every Kafka client; as env SLUICE_KAFKA_CONFIG. Secrets go in the file, never on the command line',
    )
    .hook('preAction', (cmd) => {
      // Every Kafka client of this process (and of a supervised child) reads it from there.
      const file = (cmd.opts() as { kafkaConfig?: string }).kafkaConfig;
      if (file !== undefined) process.env.SLUICE_KAFKA_CONFIG = file;
    })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Examples:
  $ sluice run examples/socket-wordcount.ts        run a pipeline until Ctrl-C
  $ sluice describe examples/kafka-offset-ranges.ts --json
  $ sluice kafka start                              a local broker on 127.0.0.1:9092`,
    );

  program
    .command('run')
    .description(
      'run a pipeline file until it is stopped (Ctrl-C / SIGTERM stop it gracefully after the running batch)',
    )
    .argument(
      '<pipeline>',
      'a .ts or .js file whose default export is definePipeline({ batchInterval, build(ctx) })',
    )
    .addOption(
      new Option(
        '--log-level <level>',
        'log level of the JSON logs on stderr (default: SLUICE_LOG_LEVEL or info)',
      ).choices(LOG_LEVELS),
    )
    .option('--supervise', 'run the pipeline as a child process and restart it when it fails or is killed')
    .option(
      '--instances <n>',
      "run n instances (a whole number >= 1, or 'auto': one per core) as supervised child processes in group membership: Kafka assigns the input's partitions among them (and the same pipeline's instances on other machines)",
      parseInstances,
    )
    .option(
      '--max-restarts <n>',
      'with --supervise / --instances: give up after n restarts in a row (default: no limit)',
      wholeNumber('--max-restarts', 0),
    )
    .option(
      '--backoff-ms <ms>',
      'with --supervise / --instances: wait before the first restart, doubled for each further one in a row, up to 30 s (default 1000)',
      wholeNumber('--backoff-ms', 1),
    )
    .option(
      '--stop-timeout-ms <ms>',
      `with --supervise / --instances: after SIGINT/SIGTERM, kill (SIGKILL) a pipeline still running this long (default: ${DEFAULT_INSTANCES_STOP_TIMEOUT_MS} with --instances, no limit with --supervise)`,
      wholeNumber('--stop-timeout-ms', 1),
    )
    .addHelpText(
      'after',
      `
The pipeline id is the definition's pipelineId, else the file name without extension.
Exit code: 0 after a graceful stop; 1 when the file cannot be loaded, the pipeline is invalid, a source
cannot be opened or a batch fails (the error's code and message are printed on stderr).

With --supervise, a pipeline that exits with an error or is killed is restarted and resumes from its
checkpoint (or offset store); each restart is reported with the count and the last error. A run that
lasted 60 s or more resets the back-off and the count in a row. SIGINT/SIGTERM are passed on to the
pipeline, which stops gracefully; the exit code is then the pipeline's (0), or after giving up the
last failed run's.

With --instances N, N such supervised children run, each with env SLUICE_MEMBERSHIP=group and a
stable SLUICE_INSTANCE_ID <host>-<i> (i = 0..N-1; <yours>-<i> when SLUICE_INSTANCE_ID is set), kept
across its restarts. The children's output is passed through unchanged (JSON log lines whole; their
pid field tells the instance, see the "started" lines); the supervisor's own lines start with
"sluice run --instances:", one of them per rebalance: "instance host-1: gained orders-2; lost -;
owns orders-0, orders-2". SIGINT/SIGTERM stop every instance gracefully (killed after
--stop-timeout-ms); exit code 0 when all stopped cleanly. An instance that gives up stops the others.
The same pipeline started on another machine with the same id and cluster joins the same group.`,
    )
    .action(
      async (
        file: string,
        opts: {
          logLevel?: string;
          supervise?: boolean;
          instances?: number | 'auto';
          maxRestarts?: number;
          backoffMs?: number;
          stopTimeoutMs?: number;
        },
        cmd: Command,
      ) => {
        const supervised = opts.supervise || opts.instances !== undefined;
        if (
          !supervised &&
          (opts.maxRestarts !== undefined || opts.backoffMs !== undefined || opts.stopTimeoutMs !== undefined)
        ) {
          cmd.error(
            'error: --max-restarts, --backoff-ms and --stop-timeout-ms need --supervise or --instances',
          );
        }
        const supervision = {
          logLevel: opts.logLevel,
          maxRestarts: opts.maxRestarts,
          backoffMs: opts.backoffMs,
          stopTimeoutMs: opts.stopTimeoutMs,
        };
        await guarded(`run ${file}`, async () => {
          process.exitCode =
            opts.instances !== undefined
              ? await runInstances(file, opts.instances, supervision)
              : opts.supervise
                ? await superviseRun(file, supervision)
                : await runPipelineFile(file, { logLevel: opts.logLevel });
        });
        exitEvenIfHandlesRemain();
      },
    );

  program
    .command('describe')
    .description("print a pipeline's plan (operators, names, parents, options) without running it")
    .argument(
      '<pipeline>',
      'a .ts or .js file whose default export is definePipeline({ batchInterval, build(ctx) })',
    )
    .option('--json', 'print the plan as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      await guarded(`describe ${file}`, async () => {
        process.stdout.write(`${await describePipelineFile(file, { json: opts.json })}\n`);
      });
      exitEvenIfHandlesRemain();
    });

  const kafka = program
    .command('kafka')
    .description(
      'manage the local development Kafka broker (127.0.0.1:9092; KAFKA_BOOTSTRAP points at another cluster)',
    );
  kafka
    .command('start')
    .description('start the local broker detached (or reuse a running one) and print its bootstrap servers')
    .action(() => guarded('kafka start', async () => print(await kafkaStartCommand())));
  kafka
    .command('stop')
    .description('stop the local broker Sluice started (a broker it did not start is left alone)')
    .action(() => guarded('kafka stop', async () => print(await kafkaStopCommand())));
  kafka
    .command('status')
    .description(
      'say whether the broker answers (with the cluster settings of SLUICE_KAFKA_CONFIG / --kafka-config: as a client would, logging in); exit code 0 when running, 3 when not',
    )
    .option('--json', 'print the status as JSON')
    .option(
      '--bootstrap <host:port>',
      'ask this cluster (with the process cluster settings) instead of the local broker',
    )
    .action((opts: { json?: boolean; bootstrap?: string }) =>
      guarded('kafka status', async () => print(await kafkaStatusCommand(opts))),
    );

  program
    .command('group')
    .description('inspect the consumer group of a job running in group membership (--instances)')
    .command('status')
    .description(
      "a job's consumer group through Kafka's admin API: its members and the partitions each owns, the committed offset, log end and lag of every partition, and each member's last batch (from the commit metadata); exit code 0 when it has members, 3 when it has none",
    )
    .argument('<pipelineId>', 'the pipeline id, which is the group unless --group says otherwise')
    .option('--group <id>', "the consumer group, when it is not the pipeline id (the Kafka source's groupId)")
    .option('--json', 'print the status as JSON')
    .option(
      '--bootstrap <host:port>',
      'ask this cluster (with the process cluster settings) instead of KAFKA_BOOTSTRAP (default 127.0.0.1:9092)',
    )
    .addHelpText(
      'after',
      `
The cluster is KAFKA_BOOTSTRAP's (or --bootstrap's), reached with the settings of SLUICE_KAFKA_CONFIG /
--kafka-config. The principal needs Describe on the group and on its topics. Exit code: 0 the group has
members; 3 it has none (also when it does not exist); 1 on failure (the error's code and message).`,
    )
    .action((pipelineId: string, opts: { group?: string; json?: boolean; bootstrap?: string }) =>
      guarded('group status', async () => print(await groupStatusCommand(pipelineId, opts))),
    );

  program.addCommand(offsetsCommand());
  program.addCommand(checkpointCommand());
  escapeUsageErrors(program);

  return program;
}
