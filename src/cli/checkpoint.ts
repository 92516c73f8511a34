/**
 * `sluice checkpoint inspect|migrate`: an operator reads a checkpoint directory (what pipeline, which
 * batch, which offsets, where each operator's state is and how big), or drops the state of operators
 * a new version of the pipeline no longer has, keeping the offsets (what CheckpointIncompatibleError
 * tells users to run). Each command is a function returning what it prints and its exit code, so
 * tests call them directly; {@link checkpointCommand} only wires them to commander.
 *
 * Exit codes: 0 done; 1 the checkpoint cannot be read or written; 2 a usage error (no checkpoint in
 * the directory, an operator the checkpoint does not have, neither --drop nor --reset-state).
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { CheckpointDirectory } from '../checkpoint/directory.js';
import { MANIFEST_FILE, readManifest, readStateFile, type CheckpointManifest } from '../checkpoint/files.js';
import { InvalidOptionError } from '../core/errors.js';
import { formatError } from './errors.js';
import type { CommandResult } from './kafka.js';
import { exitEvenIfHandlesRemain } from './run.js';

/** Exit code of a usage error. */
export const USAGE_EXIT_CODE = 2;

export interface InspectCheckpointOptions {
  /** Print one JSON object instead of text. */
  readonly json?: boolean;
}

export interface MigrateCheckpointOptions {
  /** Operators whose state to drop (each may be a comma-separated list). */
  readonly drop?: readonly string[];
  /** Drop the state of every operator (the offsets stay). */
  readonly resetState?: boolean;
  readonly json?: boolean;
}

/** One file of the checkpoint directory, as `inspect` lists it. */
export interface CheckpointFileInfo {
  /** Relative to the directory, e.g. `state/full-1700000001000-3.json`. */
  readonly file: string;
  readonly bytes: number;
  readonly role: 'manifest' | 'full' | 'delta' | 'older full (kept)' | 'unreferenced';
}

/** An operator with state, as `inspect` shows it. */
export interface CheckpointOperatorInfo {
  readonly name: string;
  readonly kind: string;
  /** The files holding its state, the full snapshot first, then the deltas in order. */
  readonly files: readonly string[];
  /** Bytes of its entries in those files. */
  readonly bytes: number;
}

/** Everything `inspect --json` prints. */
export interface CheckpointInspection {
  readonly dir: string;
  readonly manifest: CheckpointManifest;
  readonly operators: readonly CheckpointOperatorInfo[];
  readonly files: readonly CheckpointFileInfo[];
  readonly totalBytes: number;
}

/** Reads the checkpoint at `dir` without changing anything. */
export async function inspectCheckpoint(dir: string): Promise<CheckpointInspection> {
  const absolute = path.resolve(dir);
  const manifest = await requireManifest(absolute);
  const referenced = [manifest.state.full, ...manifest.state.deltas].filter((f): f is string => f !== null);
  const operators = manifest.operators.map((o) => ({
    name: o.name,
    kind: o.kind,
    files: [] as string[],
    bytes: 0,
  }));
  for (const rel of referenced) {
    const file = await readStateFile(absolute, rel, manifest);
    for (const o of operators) {
      const entry = file.operators[o.name];
      if (entry === undefined) continue;
      if ('full' in entry) o.files.length = 0; // a whole state replaces what came before
      o.files.push(rel);
      o.bytes = ('full' in entry ? 0 : o.bytes) + Buffer.byteLength(JSON.stringify(entry));
    }
  }
  const files: CheckpointFileInfo[] = [
    { file: MANIFEST_FILE, bytes: (await stat(path.join(absolute, MANIFEST_FILE))).size, role: 'manifest' },
  ];
  const names = (await readdir(path.join(absolute, 'state')).catch(() => [] as string[])).sort(byCommit);
  for (const name of names) {
    const rel = `state/${name}`;
    const role: CheckpointFileInfo['role'] =
      rel === manifest.state.full
        ? 'full'
        : manifest.state.deltas.includes(rel)
          ? 'delta'
          : name.startsWith('full-') && commitOf(name) <= manifest.commit
            ? 'older full (kept)'
            : 'unreferenced';
    files.push({ file: rel, bytes: (await stat(path.join(absolute, rel))).size, role });
  }
  return {
    dir: absolute,
    manifest,
    operators,
    files,
    totalBytes: files.reduce((n, f) => n + f.bytes, 0),
  };
}

/** `sluice checkpoint inspect <dir>`. */
export async function inspectCheckpointCommand(
  dir: string,
  options: InspectCheckpointOptions = {},
): Promise<CommandResult> {
  const info = await inspectCheckpoint(dir);
  if (options.json) return ok([JSON.stringify(info)]);
  const m = info.manifest;
  const lines = [
    `checkpoint ${info.dir} (manifest version ${m.version}, commit ${m.commit}, updated ${m.updatedAt})`,
    `pipeline     ${m.pipelineId ?? '(none: offsets only)'}`,
    `fingerprint  ${m.fingerprint ?? '-'}`,
    `last batch   ${m.lastBatch.time === null ? '-' : `${m.lastBatch.time} (${new Date(m.lastBatch.time).toISOString()})`}`,
  ];
  if (m.lastBatch.offsets.length) {
    lines.push(
      'offsets',
      ...indent(
        table(
          ['GROUP', 'TOPIC', 'PARTITION', 'OFFSET'],
          m.lastBatch.offsets.map((o) => [o.group, o.topic, String(o.partition), String(o.offset)]),
        ),
      ),
    );
  } else lines.push('offsets      none');
  if (info.operators.length) {
    lines.push(
      'operators',
      ...indent(
        table(
          ['NAME', 'KIND', 'BYTES', 'STATE'],
          info.operators.map((o) => [o.name, o.kind, String(o.bytes), describeFiles(o.files)]),
        ),
      ),
    );
  } else lines.push('operators    none with state');
  lines.push(
    'files',
    ...indent(
      table(
        ['FILE', 'BYTES', 'ROLE'],
        info.files.map((f) => [f.file, String(f.bytes), f.role]),
      ),
    ),
    `total ${info.totalBytes} bytes`,
  );
  return ok(lines);
}

/**
 * `sluice checkpoint migrate <dir> --drop <operator>...` (or `--reset-state` for all): writes a new
 * manifest without those operators' state, atomically; the offsets and the other operators' state
 * stay. Stop the job first: a running job's next commit writes its own operators back.
 */
export async function migrateCheckpointCommand(
  dir: string,
  options: MigrateCheckpointOptions,
): Promise<CommandResult> {
  const absolute = path.resolve(dir);
  const drop = [
    ...new Set(
      (options.drop ?? [])
        .flatMap((d) => String(d).split(','))
        .map((d) => d.trim())
        .filter(Boolean),
    ),
  ];
  if (options.resetState && drop.length) {
    throw new InvalidOptionError('--drop', 'either --drop <operator>... or --reset-state, not both', drop);
  }
  if (!options.resetState && !drop.length) {
    throw new InvalidOptionError(
      '--drop',
      'the operators whose state to drop (--drop <operator>, repeatable), or --reset-state',
      undefined,
    );
  }
  const before = await requireManifest(absolute);
  const known = before.operators.map((o) => o.name);
  const unknown = drop.filter((d) => !known.includes(d));
  if (unknown.length) {
    throw new InvalidOptionError(
      '--drop',
      known.length
        ? `operators with state in the checkpoint: ${known.join(', ')}`
        : 'nothing: the checkpoint holds no operator state',
      unknown.join(', '),
    );
  }
  const dropped = options.resetState ? before.operators.map((o) => o.name) : drop;
  const after = await new CheckpointDirectory({ dir: absolute }).dropOperators(dropped);
  const gone = before.operators.filter((o) => dropped.includes(o.name));
  if (options.json) {
    return ok([
      JSON.stringify({
        dir: absolute,
        dropped: gone,
        operators: after.operators,
        offsets: after.lastBatch.offsets,
      }),
    ]);
  }
  const offsets = after.lastBatch.offsets.map((o) => `${o.group} ${o.topic}-${o.partition}=${o.offset}`);
  return ok([
    gone.length
      ? `dropped the state of ${gone.map((o) => `${o.name} (${o.kind})`).join(', ')} in ${absolute}`
      : `no operator state to drop in ${absolute}`,
    `offsets kept: ${offsets.length ? offsets.join(', ') : 'none'}`,
    `operators with state: ${after.operators.length ? after.operators.map((o) => o.name).join(', ') : 'none'}`,
  ]);
}

/** The `sluice checkpoint` command and its subcommands. */
export function checkpointCommand(): Command {
  const cmd = new Command('checkpoint')
    .description('inspect a checkpoint directory, or drop operator state from it (keeping the offsets)')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT_CODE))
    .addHelpText(
      'after',
      `
A checkpoint directory is a CheckpointDirectory (sluice/checkpoint): <dir>/manifest.json names the
pipeline, its last batch, the offsets and the state files under <dir>/state/.

Examples:
  $ sluice checkpoint inspect .sluice/checkpoints/wordcount
  $ sluice checkpoint migrate .sluice/checkpoints/wordcount --drop counts

Exit code: 0 done; 1 the checkpoint cannot be read or written; 2 a usage error (no checkpoint there,
an unknown operator).`,
    );
  const repeat = (value: string, previous: string[] = []): string[] => [...previous, value];
  const finish = async (what: string, fn: () => Promise<CommandResult>): Promise<void> => {
    process.exitCode = await runCheckpointCommand(what, fn);
    exitEvenIfHandlesRemain();
  };

  cmd
    .command('inspect')
    .description(
      'print the manifest: pipeline, fingerprint, last batch and offsets, operators, their state files and sizes',
    )
    .argument('<dir>', 'the checkpoint directory')
    .option('--json', 'print JSON')
    .action((dir: string, o: InspectCheckpointOptions) =>
      finish('inspect', () => inspectCheckpointCommand(dir, o)),
    );

  cmd
    .command('migrate')
    .description(
      'drop the state of operators the pipeline no longer has (the offsets stay); stop the job first',
    )
    .argument('<dir>', 'the checkpoint directory')
    .option('--drop <operator>', 'an operator whose state to drop (repeatable, or comma-separated)', repeat)
    .option('--reset-state', "drop every operator's state (the job resumes at the offsets with empty state)")
    .option('--json', 'print JSON')
    .action((dir: string, o: MigrateCheckpointOptions) =>
      finish('migrate', () => migrateCheckpointCommand(dir, o)),
    );

  return cmd;
}

/** Runs a command function: its lines on stdout; an error as `sluice checkpoint <what>: CODE: message` on stderr. */
export async function runCheckpointCommand(
  what: string,
  fn: () => Promise<CommandResult>,
  io: { out: (line: string) => void; err: (line: string) => void } = {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  },
): Promise<number> {
  try {
    const result = await fn();
    for (const line of result.lines) io.out(line);
    return result.exitCode;
  } catch (e) {
    io.err(`sluice checkpoint ${what}: ${formatError(e)}`);
    return e instanceof InvalidOptionError ? USAGE_EXIT_CODE : 1;
  }
}

async function requireManifest(dir: string): Promise<CheckpointManifest> {
  const m = await readManifest(dir);
  if (!m) {
    throw new InvalidOptionError(
      'dir',
      `a checkpoint directory, with a ${MANIFEST_FILE} (none in ${dir}; offsets of a CheckpointDirOffsetStore are shown by \`sluice offsets show --store checkpoint:<dir>\`)`,
      dir,
    );
  }
  return m;
}

function describeFiles(files: readonly string[]): string {
  if (files.length === 0) return 'none';
  const [first, ...rest] = files;
  return rest.length ? `${first} + ${rest.length} delta(s)` : first!;
}

function commitOf(name: string): number {
  return Number(/-(\d+)\.json$/.exec(name)?.[1] ?? Number.NaN);
}

function byCommit(a: string, b: string): number {
  return (commitOf(a) || 0) - (commitOf(b) || 0) || (a < b ? -1 : a > b ? 1 : 0);
}

function ok(lines: string[]): CommandResult {
  return { exitCode: 0, lines };
}

function indent(lines: string[]): string[] {
  return lines.map((l) => `  ${l}`);
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
