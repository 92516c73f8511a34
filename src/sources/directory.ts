import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidOptionError, SourceError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { StreamingContext } from '../core/context.js';
import type { DStream, Named } from '../core/dstream.js';
import type { InputPlan, Source, SourceContext } from '../core/source.js';
import { removeLeftoverTempFiles, writeFileAtomic } from '../fs/atomic-file.js';

/** Options of {@link DirectorySource}. */
export interface DirectorySourceOptions {
  /** The watched directory. Relative paths are resolved against the working directory. */
  directory: string;
  /**
   * Which file names to read. A RegExp is tested against the name (not the path); a string is a glob
   * on the name where `*` matches any run of characters and `?` one character (`*.txt`, `log-??.csv`).
   * Default: every name not starting with `.` or `_`. Names starting with `.` are never read.
   */
  pattern?: RegExp | string;
  /**
   * Where the names of the files already read are kept. Default `<directory>/.sluice-read-files.json`.
   * One source per tracking file: two sources sharing one would overwrite each other's set.
   */
  trackingFile?: string;
  /** How file contents are decoded. Default `utf8`. */
  encoding?: BufferEncoding;
  /** At most this many files per batch, the oldest first; the others wait for later batches. Default: no cap. */
  maxFilesPerBatch?: number;
}

/** One file of a {@link DirectoryPlanDetail}. */
export interface PlannedFile {
  /** Name in the watched directory. */
  readonly name: string;
  /** Size in bytes when the batch was planned. */
  readonly size: number;
  /** Arrival time: the status-change time (ctime) in milliseconds, with sub-millisecond precision. */
  readonly ctimeMs: number;
}

/** The `detail` of a plan made by {@link DirectorySource}: the files of the batch, in arrival order. */
export interface DirectoryPlanDetail {
  readonly directory: string;
  readonly files: readonly PlannedFile[];
}

/** Name of the default tracking file, created in the watched directory. */
export const DEFAULT_TRACKING_FILE = '.sluice-read-files.json';

const TRACKING_VERSION = 1;

interface TrackingFileContent {
  version: number;
  directory: string;
  updatedAt: string;
  files: string[];
}

/**
 * New text files in a directory, like Spark's `textFileStream`: each file that appears in the
 * directory is read once, whole, as one batch partition whose records are its lines (`\n` or `\r\n`
 * separated; the empty string after a final newline is not a record).
 *
 * Writing files: put each file in the directory with a **rename** (`mv` from a directory on the same
 * file system), never by writing it in place, or a batch may read it half-written. Names starting with
 * `.` are never read, so writing to `.name.tmp` in the directory and renaming it to `name` also works.
 *
 * Order: files are read in arrival order, the time of their last status change (ctime), then by name
 * for files with the same ctime. Moving a file into the directory updates its ctime on Linux (ext4, xfs,
 * btrfs, tmpfs) and macOS (APFS), so the order is the order of the renames, not of the writes. (Other
 * changes to a file's metadata, e.g. `chmod`, also update ctime; they only reorder files not read yet.)
 *
 * Batches: {@link plan} lists the directory and fixes the files not read yet (and not in an earlier plan
 * of this instance); {@link fetch} reads exactly those, by name, so a plan saved in a checkpoint can be
 * read again by a new instance; {@link commit} adds them to the read set and saves it.
 *
 * Read set: the names of files already read, kept in `trackingFile`, replaced atomically (temporary
 * file + fsync + rename + directory fsync) on each commit that changes it, so a crash at any moment
 * leaves the previous set or the new one. A file is identified by its **name**: changing or replacing a
 * file that was read does not make it read again. To keep the set as small as the directory, a commit
 * drops the names of files that are no longer in the directory; a name that was dropped is new again,
 * so a file moved in later under a name used before is read (if its predecessor's removal was seen by
 * a batch in between; to be sure, use new names, e.g. with a timestamp).
 *
 * Delivery: **at-least-once** across a crash: a file of a batch that was planned but not committed is
 * read again by the next instance. Within one instance, a planned file is never planned again. A file
 * must stay in the directory until its batch is committed: one that vanishes before {@link fetch} reads
 * it fails the batch with a {@link SourceError}.
 *
 * Cost: every batch lists the directory (and stats the files not read yet), so keep the number of
 * files in it reasonable (move processed files elsewhere once read: their names then leave the set).
 */
export class DirectorySource implements Source<string> {
  readonly kind = 'directory';
  /**
   * A planned batch that was not committed is read again after a restart (its files stay until
   * committed). Its position is its own read set, not the offset store: a batch cannot commit it
   * in an output's transaction, so exactly-once needs an idempotent output.
   */
  readonly replayable = true;

  readonly #directory: string;
  readonly #filter: (name: string) => boolean;
  readonly #patternText: string;
  readonly #trackingFile: string;
  readonly #encoding: BufferEncoding;
  readonly #maxFilesPerBatch: number;

  #name: string;
  #log: Logger = silentLogger;
  #state: 'new' | 'open' | 'closed' = 'new';
  /** Names committed as read (what the tracking file holds). */
  #read = new Set<string>();
  /** Names in plans of this instance that are not committed yet. */
  #pending = new Set<string>();
  /** Every name in the directory at the last plan, used to prune the read set. */
  #lastListing: Set<string> | undefined;

  constructor(options: DirectorySourceOptions) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionError('options', 'an object with directory', options);
    }
    const { directory } = options;
    if (typeof directory !== 'string' || directory.trim() === '') {
      throw new InvalidOptionError('directory', 'a non-empty directory path', directory);
    }
    this.#directory = path.resolve(directory);

    const pattern = options.pattern;
    if (pattern === undefined) {
      this.#filter = (name) => !name.startsWith('_');
      this.#patternText = "names not starting with '.' or '_'";
    } else if (pattern instanceof RegExp) {
      // A global or sticky RegExp keeps state between test() calls: use a stateless copy.
      const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
      this.#filter = (name) => re.test(name);
      this.#patternText = String(pattern);
    } else if (typeof pattern === 'string' && pattern !== '' && !/[/\\]/.test(pattern)) {
      const re = globToRegExp(pattern);
      this.#filter = (name) => re.test(name);
      this.#patternText = pattern;
    } else {
      throw new InvalidOptionError(
        'pattern',
        'a RegExp tested against file names, or a non-empty glob on the name without a path separator (e.g. "*.txt")',
        pattern,
      );
    }

    const trackingFile = options.trackingFile ?? path.join(this.#directory, DEFAULT_TRACKING_FILE);
    if (typeof trackingFile !== 'string' || trackingFile.trim() === '') {
      throw new InvalidOptionError('trackingFile', 'a non-empty file path', trackingFile);
    }
    this.#trackingFile = path.resolve(trackingFile);
    if (this.#trackingFile === this.#directory) {
      throw new InvalidOptionError(
        'trackingFile',
        'a file path, not the watched directory itself',
        trackingFile,
      );
    }

    const encoding = options.encoding ?? 'utf8';
    if (typeof encoding !== 'string' || !Buffer.isEncoding(encoding)) {
      throw new InvalidOptionError('encoding', 'a Node.js BufferEncoding such as utf8 or latin1', encoding);
    }
    this.#encoding = encoding;

    const maxFilesPerBatch = options.maxFilesPerBatch ?? Number.POSITIVE_INFINITY;
    if (
      maxFilesPerBatch !== Number.POSITIVE_INFINITY &&
      (!Number.isSafeInteger(maxFilesPerBatch) || maxFilesPerBatch < 1)
    ) {
      throw new InvalidOptionError(
        'maxFilesPerBatch',
        'an integer >= 1 (or Infinity: no cap)',
        maxFilesPerBatch,
      );
    }
    this.#maxFilesPerBatch = maxFilesPerBatch;
    this.#name = `directory ${this.#directory}`;
  }

  describe(): Record<string, unknown> {
    return {
      directory: this.#directory,
      pattern: this.#patternText,
      trackingFile: this.#trackingFile,
      encoding: this.#encoding,
      maxFilesPerBatch: Number.isFinite(this.#maxFilesPerBatch) ? this.#maxFilesPerBatch : 'unlimited',
      delivery: 'at-least-once',
    };
  }

  /** Checks the directory and loads the set of files already read. */
  async open(ctx: SourceContext): Promise<void> {
    if (this.#state !== 'new') {
      throw new SourceError(
        this.#name,
        `open() called on a source that is ${this.#state}`,
        'Create a new source',
      );
    }
    this.#name = ctx.name;
    this.#log = ctx.logger.child({ source: ctx.name, kind: this.kind, directory: this.#directory });

    let info;
    try {
      info = await stat(this.#directory);
    } catch (e) {
      throw this.#fsError(
        `cannot use the directory '${this.#directory}'`,
        e,
        'Create it, or point `directory` at an existing directory',
      );
    }
    if (!info.isDirectory()) {
      throw new SourceError(
        this.#name,
        `'${this.#directory}' is not a directory`,
        'Point `directory` at a directory; new files are moved into it',
      );
    }

    const trackingDir = path.dirname(this.#trackingFile);
    try {
      await mkdir(trackingDir, { recursive: true });
      const removed = await removeLeftoverTempFiles(this.#trackingFile);
      if (removed.length > 0) {
        this.#log.warn(
          { removed },
          `removed ${removed.length} temporary file(s) left by an interrupted write of ${this.#trackingFile}; the set saved before it is kept`,
        );
      }
    } catch (e) {
      throw this.#fsError(
        `cannot prepare the directory of the tracking file '${this.#trackingFile}'`,
        e,
        'Check that it can be created and written, or set `trackingFile`',
      );
    }

    this.#read = await this.#loadReadSet();
    this.#state = 'open';
    this.#log.info(
      { alreadyRead: this.#read.size, trackingFile: this.#trackingFile },
      'directory source open',
    );
  }

  /** Lists the directory and fixes the files of this batch: those not read yet, in arrival order. */
  async plan(_batchTime: number): Promise<InputPlan> {
    this.#assertOpen('plan');
    let entries;
    try {
      entries = await readdir(this.#directory);
    } catch (e) {
      throw this.#fsError(
        `cannot list the directory '${this.#directory}'`,
        e,
        'Check that it still exists and can be read',
      );
    }
    const trackingDir = path.dirname(this.#trackingFile);
    const trackingName = trackingDir === this.#directory ? path.basename(this.#trackingFile) : undefined;

    const candidates: { name: string; size: number; ctimeNs: bigint }[] = [];
    for (const name of entries) {
      if (name.startsWith('.') || name === trackingName) continue;
      if (this.#read.has(name) || this.#pending.has(name) || !this.#filter(name)) continue;
      let st;
      try {
        st = await stat(path.join(this.#directory, name), { bigint: true });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // gone since the listing: it was never part of a batch
        throw this.#fsError(`cannot stat '${name}' in '${this.#directory}'`, e, 'Check the file permissions');
      }
      if (!st.isFile()) continue;
      candidates.push({ name, size: Number(st.size), ctimeNs: st.ctimeNs });
    }
    candidates.sort((a, b) =>
      a.ctimeNs !== b.ctimeNs
        ? a.ctimeNs < b.ctimeNs
          ? -1
          : 1
        : a.name < b.name
          ? -1
          : a.name > b.name
            ? 1
            : 0,
    );
    const chosen = candidates.slice(0, this.#maxFilesPerBatch);
    for (const f of chosen) this.#pending.add(f.name);
    this.#lastListing = new Set(entries);

    const files: PlannedFile[] = chosen.map((f) => ({
      name: f.name,
      size: f.size,
      ctimeMs: Number(f.ctimeNs) / 1e6,
    }));
    if (candidates.length > chosen.length) {
      this.#log.debug(
        { planned: chosen.length, waiting: candidates.length - chosen.length },
        'maxFilesPerBatch reached',
      );
    }
    const detail: DirectoryPlanDetail = { directory: this.#directory, files };
    return { offsetRanges: [], detail };
  }

  /** Reads the files the plan fixed: one batch partition per file, one record per line. */
  async fetch(plan: InputPlan): Promise<string[][]> {
    const files = this.#planFiles(plan);
    const partitions: string[][] = [];
    for (const file of files) {
      let text: string;
      try {
        text = await readFile(path.join(this.#directory, file.name), { encoding: this.#encoding });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          throw new SourceError(
            this.#name,
            `file '${file.name}' was planned for this batch but vanished from '${this.#directory}' before it was read`,
            'Leave files in the directory until the batch that reads them is committed (move them away afterwards); restart the job to plan a batch without it',
            { cause: e },
          );
        }
        throw this.#fsError(
          `cannot read '${file.name}' in '${this.#directory}'`,
          e,
          'Check that it is a readable regular file',
        );
      }
      partitions.push(splitLines(text));
    }
    return partitions;
  }

  /** The batch is committed: adds its files to the read set and saves the set atomically. */
  async commit(plan: InputPlan): Promise<void> {
    this.#assertOpen('commit');
    const names = this.#planFiles(plan).map((f) => f.name);
    const next = new Set<string>();
    for (const name of this.#read) {
      if (this.#lastListing === undefined || this.#lastListing.has(name)) next.add(name);
    }
    for (const name of names) next.add(name);

    const changed = next.size !== this.#read.size || [...next].some((n) => !this.#read.has(n));
    if (changed) {
      const content: TrackingFileContent = {
        version: TRACKING_VERSION,
        directory: this.#directory,
        updatedAt: new Date().toISOString(),
        files: [...next].sort(),
      };
      try {
        await writeFileAtomic(this.#trackingFile, `${JSON.stringify(content, null, 1)}\n`);
      } catch (e) {
        throw this.#fsError(
          `cannot save the read set to '${this.#trackingFile}'`,
          e,
          'The batch is committed but its files would be read again after a restart: fix the cause (disk full? permissions?)',
          true,
        );
      }
      const pruned = [...this.#read].filter((n) => !next.has(n)).length;
      this.#log.debug({ added: names.length, pruned, size: next.size }, 'read set saved');
    }
    this.#read = next;
    for (const name of names) this.#pending.delete(name);
  }

  async close(): Promise<void> {
    this.#state = 'closed';
  }

  #assertOpen(op: string): void {
    if (this.#state !== 'open') {
      throw new SourceError(
        this.#name,
        `${op}() called on a source that is ${this.#state}`,
        this.#state === 'new'
          ? 'Call open() first: it loads the set of files already read'
          : 'Create a new source',
      );
    }
  }

  #planFiles(plan: InputPlan): readonly PlannedFile[] {
    const detail = plan.detail as Partial<DirectoryPlanDetail> | undefined;
    if (!detail || !Array.isArray(detail.files) || !detail.files.every((f) => typeof f?.name === 'string')) {
      throw new SourceError(
        this.#name,
        'the plan has no file list: it was not made by a directory source',
        'Pass the plan that this source returned from plan()',
      );
    }
    return detail.files;
  }

  async #loadReadSet(): Promise<Set<string>> {
    let text: string;
    try {
      text = await readFile(this.#trackingFile, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
      throw this.#fsError(
        `cannot read the tracking file '${this.#trackingFile}'`,
        e,
        'Check its permissions',
      );
    }
    const invalid = (why: string) =>
      new SourceError(
        this.#name,
        `the tracking file '${this.#trackingFile}' is not valid (${why})`,
        'It is replaced atomically, so this is not an interrupted write: restore it, or delete it to read every file in the directory again',
      );
    let content: unknown;
    try {
      content = JSON.parse(text);
    } catch (e) {
      throw invalid((e as Error).message);
    }
    const c = content as Partial<TrackingFileContent> | null;
    if (c === null || typeof c !== 'object') throw invalid('not a JSON object');
    if (c.version !== TRACKING_VERSION)
      throw invalid(`version ${String(c.version)}, expected ${TRACKING_VERSION}`);
    if (!Array.isArray(c.files) || !c.files.every((n) => typeof n === 'string')) {
      throw invalid('"files" is not a list of names');
    }
    if (c.directory !== undefined && c.directory !== this.#directory) {
      this.#log.warn(
        { recordedDirectory: c.directory },
        `the tracking file was written for '${c.directory}'; using its names for '${this.#directory}'`,
      );
    }
    return new Set(c.files);
  }

  #fsError(message: string, e: unknown, hint: string, retriable?: boolean): SourceError {
    const code = (e as NodeJS.ErrnoException)?.code;
    const transient =
      code === 'EMFILE' || code === 'ENFILE' || code === 'EAGAIN' || code === 'EBUSY' || code === 'EIO';
    return new SourceError(
      this.#name,
      `${message}: ${code ?? (e instanceof Error ? e.message : String(e))}`,
      hint,
      {
        cause: e,
        retriable: retriable ?? transient,
      },
    );
  }
}

/** The records of a file: its lines, without the line breaks; a final newline does not start a record. */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** `*` any run of characters, `?` one character, everything else literal; matches the whole name. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'su');
}

/**
 * Lines of the files moved into `directory`, each file read once (Spark's `textFileStream`).
 * Replayable: a batch's files are recorded at plan time, so a restart reads them again.
 *
 * @example
 * ```ts
 * import { StreamingContext, textFileStream } from 'sluice';
 * const ctx = new StreamingContext({ batchInterval: 1000 });
 * textFileStream(ctx, '/var/spool/in', { name: 'files' }).count().print();
 * ```
 */
export function textFileStream(
  ctx: StreamingContext,
  directory: string,
  options: Omit<DirectorySourceOptions, 'directory'> & Named = {},
): DStream<string> {
  const { name, ...rest } = options;
  return ctx.stream(new DirectorySource({ directory, ...rest }), { name });
}
