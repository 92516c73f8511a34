import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { escapeControlChars } from '../core/logger.js';
import { checkpointCommand } from './checkpoint.js';
import { describePipelineFile } from './describe.js';
import { formatError } from './errors.js';
import { kafkaStartCommand, kafkaStatusCommand, kafkaStopCommand, type CommandResult } from './kafka.js';
import { offsetsCommand } from './offsets.js';
import { exitEvenIfHandlesRemain, runPipelineFile } from './run.js';
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
      '--max-restarts <n>',
      'with --supervise: give up after n restarts in a row (default: no limit)',
      wholeNumber('--max-restarts', 0),
    )
    .option(
      '--backoff-ms <ms>',
      'with --supervise: wait before the first restart, doubled for each further one in a row, up to 30 s (default 1000)',
      wholeNumber('--backoff-ms', 1),
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
last failed run's.`,
    )
    .action(
      async (
        file: string,
        opts: { logLevel?: string; supervise?: boolean; maxRestarts?: number; backoffMs?: number },
        cmd: Command,
      ) => {
        if (!opts.supervise && (opts.maxRestarts !== undefined || opts.backoffMs !== undefined)) {
          cmd.error('error: --max-restarts and --backoff-ms need --supervise');
        }
        process.exitCode = opts.supervise
          ? await superviseRun(file, {
              logLevel: opts.logLevel,
              maxRestarts: opts.maxRestarts,
              backoffMs: opts.backoffMs,
            })
          : await runPipelineFile(file, { logLevel: opts.logLevel });
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

  program.addCommand(offsetsCommand());
  program.addCommand(checkpointCommand());
  escapeUsageErrors(program);

  return program;
}
