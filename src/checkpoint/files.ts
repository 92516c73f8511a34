/**
 * The checkpoint directory's files, as written on disk: `manifest.json` (what the checkpoint holds;
 * renaming a new one into place is the commit) and the state files it references. Reading them
 * checks their shape, so a damaged directory is reported, never half-loaded.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SluiceError } from '../core/errors.js';
import type { PartitionOffset } from '../core/offsets.js';
import { decodeStateValue } from '../core/state-codec.js';
import type { CheckpointOperator, OperatorState, StateDelta } from '../core/state.js';
import { isOffset } from './offset-store.js';

/** A stored read position with its group, as the manifest lists it. */
export interface GroupOffset extends PartitionOffset {
  readonly group: string;
}

/** `<dir>/manifest.json`: what the checkpoint holds. Renaming a new one into place is the commit. */
export interface CheckpointManifest {
  readonly version: 1;
  /** The pipeline whose state this is; null while only offsets were written. */
  readonly pipelineId: string | null;
  readonly fingerprint: string | null;
  readonly operators: readonly CheckpointOperator[];
  /** Number of state commits so far; state files carry the number of the commit that wrote them. */
  readonly commit: number;
  readonly lastBatch: {
    /** The batch time of the last state commit, or null. */
    readonly time: number | null;
    /** Sorted by group, topic, partition. */
    readonly offsets: readonly GroupOffset[];
  };
  /** Files relative to the directory: the full snapshot, then the deltas on top of it, oldest first. */
  readonly state: { readonly full: string | null; readonly deltas: readonly string[] };
  /** ISO 8601 time of the last write. */
  readonly updatedAt: string;
}

/** One operator's entry in a state file: its whole state, or the keys changed since the commit before. */
export type StateFileEntry =
  | { readonly kind: string; readonly full: unknown }
  | { readonly kind: string; readonly delta: { readonly set: unknown; readonly removed: unknown } };

/** `<dir>/state/full-<time>-<commit>.json` and `delta-<time>-<commit>.json`. Values are encoded (see {@link encodeStateValue}). */
export interface StateFile {
  readonly version: 1;
  readonly type: 'full' | 'delta';
  readonly pipelineId: string;
  readonly batchTime: number;
  readonly commit: number;
  /** The offsets after this commit. */
  readonly offsets: readonly GroupOffset[];
  readonly operators: Readonly<Record<string, StateFileEntry>>;
}

/** The manifest or a file it references cannot be read: not JSON, another version, missing. */
export class CheckpointCorruptError extends SluiceError {
  static readonly code = 'SLUICE_CHECKPOINT_CORRUPT';
  readonly code = CheckpointCorruptError.code;
  constructor(
    readonly file: string,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Checkpoint file ${file} ${problem}`,
      'Nothing was changed. Look at it with `sluice checkpoint inspect`; restore the directory from a backup, or start fresh with a new checkpoint directory (the offsets and all state are lost)',
      options,
    );
  }
}

export const MANIFEST_FILE = 'manifest.json';
export const STATE_DIR = 'state';
export const STATE_NAME = /^(full|delta)-(\d+)-(\d+)\.json$/;

/** The state files of `names` (in `state/`) that neither the manifest nor `keepFull` retains, as `state/<name>`. */
export function garbage(
  names: readonly string[],
  m: CheckpointManifest | undefined,
  keepFull: number,
): string[] {
  const referenced = new Set([m?.state.full, ...(m?.state.deltas ?? [])].filter((x): x is string => !!x));
  const commit = m?.commit ?? 0;
  const parsed = names
    .map((n) => ({ n, match: STATE_NAME.exec(n) }))
    .filter((x) => x.match)
    .map(({ n, match }) => ({ rel: `${STATE_DIR}/${n}`, type: match![1], commit: Number(match![3]) }));
  const keptFull = new Set(
    parsed
      .filter((f) => f.type === 'full' && f.commit <= commit)
      .sort((a, b) => b.commit - a.commit)
      .slice(0, keepFull)
      .map((f) => f.rel),
  );
  return parsed
    .filter(
      (f) => !referenced.has(f.rel) && (f.commit > commit || f.type === 'delta' || !keptFull.has(f.rel)),
    )
    .map((f) => f.rel);
}

/** The manifest as indented JSON, with each flat object (an operator, an offset) on one line. */
export function formatManifest(m: CheckpointManifest): string {
  // JSON strings hold no raw newline, so a match is always a whole object without nested ones.
  return `${JSON.stringify(m, null, 2).replace(
    /\{\n([^{}[\]]*)\n\s*\}/g,
    (_, inner: string) =>
      `{ ${inner
        .split('\n')
        .map((l) => l.trim())
        .join(' ')} }`,
  )}\n`;
}

export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.includes('.tmp-');
}

/** Reads and checks `<dir>/manifest.json`; undefined when there is none. */
export async function readManifest(dir: string): Promise<CheckpointManifest | undefined> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let m: Partial<CheckpointManifest>;
  try {
    m = JSON.parse(text) as Partial<CheckpointManifest>;
  } catch (e) {
    throw new CheckpointCorruptError(file, `is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (m === null || typeof m !== 'object') throw new CheckpointCorruptError(file, 'is not a JSON object');
  if (m.version !== 1) {
    throw new CheckpointCorruptError(
      file,
      `has version ${JSON.stringify(m.version)}; this Sluice reads version 1`,
    );
  }
  const bad = (what: string) => new CheckpointCorruptError(file, `has an invalid ${what}`);
  if (m.pipelineId !== null && typeof m.pipelineId !== 'string') throw bad('pipelineId');
  if (m.fingerprint !== null && typeof m.fingerprint !== 'string') throw bad('fingerprint');
  if (
    !Array.isArray(m.operators) ||
    !m.operators.every((o) => typeof o?.name === 'string' && typeof o.kind === 'string')
  )
    throw bad('operators list');
  if (!Number.isSafeInteger(m.commit) || m.commit! < 0) throw bad('commit number');
  const lb = m.lastBatch;
  if (!lb || (lb.time !== null && !Number.isSafeInteger(lb.time)) || !Array.isArray(lb.offsets))
    throw bad('lastBatch');
  for (const o of lb.offsets) {
    if (
      typeof o?.group !== 'string' ||
      typeof o.topic !== 'string' ||
      !isOffset(o.partition) ||
      !isOffset(o.offset)
    )
      throw bad(`offset entry ${JSON.stringify(o)}`);
  }
  const st = m.state;
  const isRef = (r: unknown) =>
    typeof r === 'string' && r.startsWith(`${STATE_DIR}/`) && STATE_NAME.test(r.slice(STATE_DIR.length + 1));
  if (!st || (st.full !== null && !isRef(st.full)) || !Array.isArray(st.deltas) || !st.deltas.every(isRef))
    throw bad('state reference');
  return m as CheckpointManifest;
}

/** Reads and checks a state file the manifest references. */
export async function readStateFile(dir: string, rel: string, m: CheckpointManifest): Promise<StateFile> {
  const file = path.join(dir, rel);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new CheckpointCorruptError(file, `is missing (the manifest references ${rel})`);
    throw e;
  }
  let f: Partial<StateFile>;
  try {
    f = JSON.parse(text) as Partial<StateFile>;
  } catch (e) {
    throw new CheckpointCorruptError(file, `is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const [, type, time, commit] = STATE_NAME.exec(path.basename(rel)) ?? [];
  if (f?.version !== 1)
    throw new CheckpointCorruptError(
      file,
      `has version ${JSON.stringify(f?.version)}; this Sluice reads version 1`,
    );
  if (
    f.type !== type ||
    f.batchTime !== Number(time) ||
    f.commit !== Number(commit) ||
    f.pipelineId !== m.pipelineId
  )
    throw new CheckpointCorruptError(
      file,
      `does not match its name or the manifest (type ${f.type}, batch ${f.batchTime}, commit ${f.commit}, pipeline ${f.pipelineId})`,
    );
  if (f.operators === null || typeof f.operators !== 'object')
    throw new CheckpointCorruptError(file, 'has no operators object');
  return f as StateFile;
}

/** Per operator of the manifest: its last full state and the deltas committed since, decoded. */
export async function loadState(dir: string, m: CheckpointManifest): Promise<Map<string, OperatorState>> {
  const files = [m.state.full, ...m.state.deltas].filter((x): x is string => x !== null);
  const state = new Map<string, { full: unknown; deltas: StateDelta[] }>();
  for (const rel of files) {
    const f = await readStateFile(dir, rel, m);
    for (const o of m.operators) {
      const entry = f.operators[o.name];
      if (!entry) continue;
      if ('full' in entry) state.set(o.name, { full: decodeStateValue(entry.full), deltas: [] });
      else if ('delta' in entry) state.get(o.name)?.deltas.push(decodeStateValue(entry.delta) as StateDelta);
    }
  }
  return state;
}

export function emptyManifest(): CheckpointManifest {
  return {
    version: 1,
    pipelineId: null,
    fingerprint: null,
    operators: [],
    commit: 0,
    lastBatch: { time: null, offsets: [] },
    state: { full: null, deltas: [] },
    updatedAt: new Date().toISOString(),
  };
}
