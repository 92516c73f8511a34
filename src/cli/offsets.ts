/**
 * `sluice offsets show|set|reset`: an operator reads or repairs the stored read positions of a job
 * in any offset store (see `store-spec.ts` for the `--store` forms). Each command is a function
 * returning what it prints and its exit code, so tests call them directly; {@link offsetsCommand}
 * only wires them to commander.
 *
 * Exit codes: 0 done; 1 the store failed, or a reset was declined at the prompt; 2 a usage error
 * (a bad store spec, a missing or malformed option, a reset without `--yes` and no terminal).
 */
import { createInterface } from 'node:readline/promises';
import { Command, Option } from 'commander';
import { InvalidOptionError, SluiceError } from '../core/errors.js';
import type { OffsetStore, PartitionOffset } from '../core/offsets.js';
import { formatError } from './errors.js';
import type { CommandResult } from './kafka.js';
import { exitEvenIfHandlesRemain } from './run.js';
import {
  STORE_SPEC_FORMS,
  createOffsetStore,
  describeStoreSpec,
  parseStoreSpec,
  redactSpec,
  specSecrets,
  type StoreSpec,
} from './store-spec.js';

/** Exit code of a usage error (as most Unix tools, and commander's errors under `sluice offsets`). */
export const USAGE_EXIT_CODE = 2;

/** Where the offsets are and whose: the options every `sluice offsets` command takes. */
export interface OffsetsTarget {
  /** A store spec (`redis://...`, `checkpoint:<dir>`, ...). Default: env `SLUICE_OFFSET_STORE`. */
  readonly store?: string;
  /** The offset group: the pipeline id, or the Kafka source's `groupId`. */
  readonly group?: string;
  /** postgres, mysql: the offsets table. */
  readonly table?: string;
  /** redis: the hash key prefix. */
  readonly keyPrefix?: string;
  /** zookeeper: the root node. */
  readonly root?: string;
  /** Print JSON instead of a table. */
  readonly json?: boolean;
}

export interface ShowOffsetsOptions extends OffsetsTarget {
  /** Topics to show (each may be a comma-separated list). At least one. */
  readonly topic?: readonly string[];
}

export interface SetOffsetsOptions extends OffsetsTarget {
  /** One topic for every `partition`, or one topic per `partition`. */
  readonly topic?: readonly string[];
  /** Partition numbers, paired in order with `offset`. */
  readonly partition?: readonly (string | number)[];
  /** Offsets (the next offset to read), paired in order with `partition`. */
  readonly offset?: readonly (string | number)[];
  /** `topic:partition=offset` items, each entry possibly a comma-separated list. */
  readonly offsets?: readonly string[];
}

export interface ResetOffsetsOptions extends OffsetsTarget {
  readonly topic?: readonly string[];
  /** Forget without asking. Required when {@link interactive} is false. */
  readonly yes?: boolean;
  /** A person can answer a prompt (stdin is a terminal and not CI). Default false. */
  readonly interactive?: boolean;
  /** Asks the question; resolves true to go ahead. Used when interactive and not `yes`. */
  readonly confirm?: (question: string) => Promise<boolean>;
}

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
const MAX_PARTITION = 2 ** 31 - 1;

/**
 * The store named by `--store` failed: it cannot be reached, refused the credentials, or has no
 * usable offsets table. Nothing was changed unless the store changed it atomically.
 */
export class OffsetStoreAccessError extends SluiceError {
  static readonly code = 'SLUICE_OFFSET_STORE_ACCESS';
  readonly code = OffsetStoreAccessError.code;
  override readonly retriable = true;
  constructor(
    readonly store: string,
    cause: unknown,
  ) {
    // The driver's error is summarised, not attached: its stack says nothing an operator can act on.
    super(
      `The offset store ${store} failed: ${summary(cause)}`,
      'Check that the store is running and that the spec (host, port, database, user, password, table) is right',
    );
  }
}

function summary(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
}

/** `sluice offsets show`: the stored offset of every partition of the topics. */
export async function showOffsetsCommand(options: ShowOffsetsOptions): Promise<CommandResult> {
  const { spec, group } = target(options);
  const topics = parseTopics(options.topic, true);
  return withStore(spec, async (store) => {
    const offsets = await store.read(group, topics);
    const missing = topics.filter((t) => !offsets.some((o) => o.topic === t));
    if (options.json) {
      return ok([JSON.stringify({ store: storeInfo(spec, store), group, topics, offsets })]);
    }
    const lines = [`group ${group} in ${describeStoreSpec(spec)}`];
    if (offsets.length) {
      lines.push(
        ...table(
          ['TOPIC', 'PARTITION', 'OFFSET'],
          offsets.map((o) => [o.topic, String(o.partition), String(o.offset)]),
        ),
      );
    }
    if (missing.length) lines.push(`no offsets stored for ${missing.join(', ')}`);
    return ok(lines);
  });
}

/** `sluice offsets set`: sets the given positions unconditionally and prints them before and after. */
export async function setOffsetsCommand(options: SetOffsetsOptions): Promise<CommandResult> {
  const { spec, group } = target(options);
  const wanted = parseAssignments(options);
  const topics = [...new Set(wanted.map((o) => o.topic))];
  return withStore(spec, async (store) => {
    const before = await store.read(group, topics);
    await store.set(group, wanted);
    const after = await store.read(group, topics);
    const rows = wanted.map((w) => ({
      topic: w.topic,
      partition: w.partition,
      before: find(before, w)?.offset ?? null,
      offset: find(after, w)?.offset ?? null,
    }));
    const wrong = rows.filter((r, i) => r.offset !== wanted[i]!.offset);
    if (wrong.length) {
      throw new Error(
        `the store reports other positions than those just set: ${wrong.map((r) => `${r.topic}-${r.partition}=${r.offset ?? 'none'}`).join(', ')}`,
      );
    }
    if (options.json) {
      return ok([JSON.stringify({ store: storeInfo(spec, store), group, offsets: rows })]);
    }
    return ok([
      `set ${rows.length} offset(s) of group ${group} in ${describeStoreSpec(spec)}`,
      ...table(
        ['TOPIC', 'PARTITION', 'BEFORE', 'OFFSET'],
        rows.map((r) => [
          r.topic,
          String(r.partition),
          r.before === null ? '-' : String(r.before),
          String(r.offset),
        ]),
      ),
    ]);
  });
}

/**
 * `sluice offsets reset`: forgets the group's positions for the topics (the job then starts from its
 * `startingOffsets`). Asks first, unless `yes`; without a person to ask it refuses (exit code 2).
 */
export async function resetOffsetsCommand(options: ResetOffsetsOptions): Promise<CommandResult> {
  const { spec, group } = target(options);
  const topics = parseTopics(options.topic, true);
  if (!options.yes && !options.interactive) {
    throw new InvalidOptionError(
      '--yes',
      'reset asks for confirmation and nobody can answer here (CI is set, or stdin is not a terminal): add --yes',
      options.yes,
    );
  }
  return withStore(spec, async (store) => {
    const current = await store.read(group, topics);
    const listed = current.map((o) => `${o.topic}-${o.partition}=${o.offset}`).join(', ');
    if (current.length === 0) {
      return ok(
        options.json
          ? [JSON.stringify({ store: storeInfo(spec, store), group, topics, forgotten: [] })]
          : [
              `no offsets stored for group ${group} on ${topics.join(', ')} in ${describeStoreSpec(spec)}: nothing to reset`,
            ],
      );
    }
    if (!options.yes) {
      const question = `Forget ${current.length} offset(s) of group ${group} in ${describeStoreSpec(spec)} (${listed})? The job will start from its startingOffsets. [y/N] `;
      const confirmed = options.confirm ? await options.confirm(question) : false;
      if (!confirmed) return { exitCode: 1, lines: ['reset declined: nothing was changed'] };
    }
    await store.delete(group, topics);
    const left = await store.read(group, topics);
    if (left.length) {
      throw new Error(
        `offsets are still stored after the reset: ${left.map((o) => `${o.topic}-${o.partition}`).join(', ')}`,
      );
    }
    if (options.json) {
      return ok([JSON.stringify({ store: storeInfo(spec, store), group, topics, forgotten: current })]);
    }
    return ok([
      `forgot ${current.length} offset(s) of group ${group} in ${describeStoreSpec(spec)}: ${listed}`,
    ]);
  });
}

/**
 * The partition/offset pairs of `set`, from `--topic/--partition/--offset` (paired in order; one
 * topic applies to all) and `--offsets t:p=n,...`. A partition given twice with different offsets
 * is refused.
 */
export function parseAssignments(options: SetOffsetsOptions): PartitionOffset[] {
  const out: PartitionOffset[] = [];
  const partitions = options.partition ?? [];
  const offsets = options.offset ?? [];
  const topics = parseTopics(options.topic, false);
  if (partitions.length !== offsets.length) {
    throw new InvalidOptionError(
      '--offset',
      `one --offset per --partition, in the same order (got ${partitions.length} --partition and ${offsets.length} --offset)`,
      offsets,
    );
  }
  if (partitions.length > 0) {
    if (topics.length !== 1 && topics.length !== partitions.length) {
      throw new InvalidOptionError(
        '--topic',
        `one --topic for all the partitions, or one per --partition (got ${topics.length} for ${partitions.length})`,
        topics,
      );
    }
    partitions.forEach((p, i) => {
      out.push({
        topic: topics.length === 1 ? topics[0]! : topics[i]!,
        partition: partitionNumber(p),
        offset: offsetNumber('--offset', offsets[i]!),
      });
    });
  } else if (topics.length > 0) {
    throw new InvalidOptionError(
      '--partition',
      'with --topic, at least one --partition N --offset N pair (or use --offsets topic:partition=offset,...)',
      undefined,
    );
  }
  for (const entry of options.offsets ?? []) {
    for (const item of String(entry).split(',')) {
      const m = /^\s*([^:=\s]+):(\d+)=(\d+)\s*$/.exec(item);
      if (!m || !TOPIC.test(m[1]!)) {
        throw new InvalidOptionError(
          '--offsets',
          'topic:partition=offset[,topic:partition=offset...], e.g. orders:0=42,orders:1=17',
          item,
        );
      }
      out.push({ topic: m[1]!, partition: partitionNumber(m[2]!), offset: offsetNumber('--offsets', m[3]!) });
    }
  }
  if (out.length === 0) {
    throw new InvalidOptionError(
      '--offsets',
      'the positions to set: --topic T --partition P --offset N (repeatable) or --offsets T:P=N,...',
      undefined,
    );
  }
  const seen = new Map<string, PartitionOffset>();
  for (const o of out) {
    const key = `${o.topic}\0${o.partition}`;
    const prior = seen.get(key);
    if (prior && prior.offset !== o.offset) {
      throw new InvalidOptionError(
        '--offset',
        `one offset per partition (${o.topic}-${o.partition} is given ${prior.offset} and ${o.offset})`,
        o.offset,
      );
    }
    seen.set(key, o);
  }
  return [...seen.values()];
}

/** Topics from repeatable, possibly comma-separated, values; checked as Kafka topic names. */
export function parseTopics(values: readonly string[] | undefined, required: boolean): string[] {
  const topics = [
    ...new Set(
      (values ?? [])
        .flatMap((v) => String(v).split(','))
        .map((t) => t.trim())
        .filter((t) => t !== ''),
    ),
  ];
  for (const t of topics) {
    if (!TOPIC.test(t))
      throw new InvalidOptionError('--topic', 'a Kafka topic name: 1-249 of [A-Za-z0-9._-]', t);
  }
  if (required && topics.length === 0) {
    throw new InvalidOptionError(
      '--topic',
      'at least one topic (repeat --topic, or separate with commas)',
      undefined,
    );
  }
  return topics;
}

/** The exit code for an error: 2 for usage errors, 1 for anything else. */
export function exitCodeOf(error: unknown): number {
  return error instanceof InvalidOptionError ? USAGE_EXIT_CODE : 1;
}

/** `text` with every password of the spec replaced by `***`. */
export function scrub(text: string, spec: string | undefined): string {
  let out = text;
  for (const secret of spec ? specSecrets(spec) : []) out = out.split(secret).join('***');
  return out;
}

/**
 * Runs a command function: prints its lines on stdout and returns its exit code; an error is printed
 * on stderr as `sluice offsets <what>: CODE: message`, passwords scrubbed.
 */
export async function runOffsetsCommand(
  what: string,
  options: OffsetsTarget,
  fn: () => Promise<CommandResult>,
  io: { out: (line: string) => void; err: (line: string) => void } = {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  },
): Promise<number> {
  const spec = options.store ?? process.env.SLUICE_OFFSET_STORE;
  try {
    const result = await fn();
    for (const line of result.lines) io.out(scrub(line, spec));
    return result.exitCode;
  } catch (e) {
    io.err(scrub(`sluice offsets ${what}: ${formatError(e)}`, spec));
    return exitCodeOf(e);
  }
}

/** The `sluice offsets` command and its subcommands (usage errors exit with code 2). */
export function offsetsCommand(): Command {
  const cmd = new Command('offsets')
    .description(
      'show, set or reset the stored offsets of a job in any offset store (repairing a job by hand)',
    )
    .showHelpAfterError('(add --help for usage)')
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT_CODE))
    .addHelpText(
      'after',
      `
Stores (--store, or env SLUICE_OFFSET_STORE to keep a password off the command line):
  postgres://user@host:5432/db   offsets table (--table, default sluice_offsets)
  mysql://user@host:3306/db      offsets table (--table, default sluice_offsets)
  redis://host:6379[/db]         a hash per topic, field group|partition (--key-prefix)
  zookeeper://host:2181[/root]   a node per topic/group/partition (--root, default /sluice/offsets)
  checkpoint:<dir>               <dir>/offsets/<group>.json
  kafka://host:9092              the consumer group's committed offsets (reset deletes the group)
The group is the pipeline id (or the Kafka source's groupId). An offset is the NEXT offset to read.

Examples:
  $ sluice offsets show --store redis://127.0.0.1:6379 --group orders-job --topic orders
  $ sluice offsets set --store checkpoint:/var/lib/job/ckpt --group orders-job --offsets orders:0=42,orders:1=17
  $ sluice offsets reset --store zookeeper://127.0.0.1:2181 --group orders-job --topic orders --yes

Exit code: 0 done; 1 the store failed or the reset was declined; 2 a usage error (bad spec, bad option,
reset without --yes when nobody can confirm).`,
    );

  const common = (c: Command): Command =>
    c
      .option(
        '--store <spec>',
        `where the offsets are: ${STORE_SPEC_FORMS} (default: env SLUICE_OFFSET_STORE)`,
      )
      .option('--group <group>', 'the offset group: the pipeline id, or the Kafka source groupId')
      .option('--table <table>', 'postgres/mysql: the offsets table (default sluice_offsets)')
      .option('--key-prefix <prefix>', 'redis: prefix of the hash keys (default none: the key is the topic)')
      .option('--root <path>', 'zookeeper: the root node (default /sluice/offsets)')
      .option('--json', 'print JSON');
  const repeat = (value: string, previous: string[] = []): string[] => [...previous, value];
  const finish = (code: number): void => {
    process.exitCode = code;
    exitEvenIfHandlesRemain();
  };

  common(cmd.command('show').description('print the stored offset of every partition of the topics'))
    .option('--topic <topic>', 'a topic (repeatable, or comma-separated)', repeat)
    .action(async (o: ShowOffsetsOptions) =>
      finish(await runOffsetsCommand('show', o, () => showOffsetsCommand(o))),
    );

  common(
    cmd
      .command('set')
      .description(
        'set offsets unconditionally (stop the job first): prints each partition before and after',
      ),
  )
    .option('--topic <topic>', 'the topic of the --partition values (once, or once per --partition)', repeat)
    .option('--partition <n>', 'a partition (repeatable; paired in order with --offset)', repeat)
    .option('--offset <n>', 'the next offset to read for that partition (repeatable)', repeat)
    .option('--offsets <list>', 'topic:partition=offset[,...] (repeatable)', repeat)
    .action(async (o: SetOffsetsOptions) =>
      finish(await runOffsetsCommand('set', o, () => setOffsetsCommand(o))),
    );

  common(
    cmd
      .command('reset')
      .description(
        'forget the offsets of the group for the topics (stop the job first): it then starts from its startingOffsets',
      ),
  )
    .option('--topic <topic>', 'a topic (repeatable, or comma-separated)', repeat)
    .addOption(new Option('-y, --yes', 'do not ask (required under CI or without a terminal)'))
    .action(async (o: ResetOffsetsOptions) =>
      finish(
        await runOffsetsCommand('reset', o, () =>
          resetOffsetsCommand({ ...o, interactive: canPrompt(), confirm: askOnTerminal }),
        ),
      ),
    );

  return cmd;
}

/** True when a person can answer a prompt: stdin is a terminal and CI is not set. */
export function canPrompt(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return Boolean(process.stdin.isTTY) && (ci === undefined || ci === '' || ci === '0' || ci === 'false');
}

async function askOnTerminal(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

function target(options: OffsetsTarget): { spec: StoreSpec; group: string } {
  const raw = options.store ?? process.env.SLUICE_OFFSET_STORE;
  if (raw === undefined || raw.trim() === '') {
    throw new InvalidOptionError(
      '--store',
      `a store spec (or env SLUICE_OFFSET_STORE): ${STORE_SPEC_FORMS}`,
      raw,
    );
  }
  let spec: StoreSpec;
  try {
    spec = parseStoreSpec(raw, { table: options.table, keyPrefix: options.keyPrefix, root: options.root });
  } catch (e) {
    if (e instanceof InvalidOptionError && e.option === 'store') {
      throw new InvalidOptionError(
        '--store',
        e.accepted,
        typeof e.received === 'string' ? redactSpec(e.received) : e.received,
      );
    }
    throw e;
  }
  const group = options.group;
  if (typeof group !== 'string' || group.trim() === '' || /[\0-\x1f]/.test(group)) {
    throw new InvalidOptionError(
      '--group',
      'the offset group: the pipeline id, or the Kafka source groupId',
      group,
    );
  }
  return { spec, group };
}

async function withStore(
  spec: StoreSpec,
  fn: (store: OffsetStore) => Promise<CommandResult>,
): Promise<CommandResult> {
  const store = createOffsetStore(spec);
  try {
    return await fn(store);
  } catch (e) {
    throw e instanceof SluiceError ? e : new OffsetStoreAccessError(describeStoreSpec(spec), e);
  } finally {
    await store.close().catch(() => {});
  }
}

function storeInfo(spec: StoreSpec, store: OffsetStore): Record<string, unknown> {
  return { kind: store.kind, spec: describeStoreSpec(spec), ...store.describe() };
}

function find(
  list: readonly PartitionOffset[],
  o: { topic: string; partition: number },
): PartitionOffset | undefined {
  return list.find((x) => x.topic === o.topic && x.partition === o.partition);
}

function partitionNumber(value: string | number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > MAX_PARTITION) {
    throw new InvalidOptionError('--partition', 'a partition number, 0 or more', value);
  }
  return n;
}

function offsetNumber(flag: string, value: string | number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvalidOptionError(
      flag,
      'an offset: a whole number, 0 or more (the next offset to read)',
      value,
    );
  }
  return n;
}

function ok(lines: string[]): CommandResult {
  return { exitCode: 0, lines };
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}
