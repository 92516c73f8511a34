import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { InvalidOptionError, SourceError } from '../../src/core/errors.js';
import type { InputPlan } from '../../src/core/source.js';
import { removeLeftoverTempFiles } from '../../src/fs/atomic-file.js';
import {
  DEFAULT_TRACKING_FILE,
  DirectorySource,
  splitLines,
  type DirectoryPlanDetail,
  type DirectorySourceOptions,
} from '../../src/sources/directory.js';
import { sleep, sourceContext } from './helpers.js';

let root: string;
let watched: string;
let staging: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'sluice-dir-'));
  watched = path.join(root, 'watched');
  staging = path.join(root, 'staging');
  await mkdir(watched);
  await mkdir(staging);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes a file outside the watched directory, then renames it in (the way users must do it). */
async function moveIn(name: string, content: string): Promise<void> {
  await writeFile(path.join(staging, name), content);
  await rename(path.join(staging, name), path.join(watched, name));
}

async function opened(opts: Partial<DirectorySourceOptions> = {}) {
  const source = new DirectorySource({ directory: watched, ...opts });
  const ctx = sourceContext();
  await source.open(ctx);
  return { source, ctx };
}

function names(plan: InputPlan): string[] {
  return (plan.detail as DirectoryPlanDetail).files.map((f) => f.name);
}

/** plan + fetch + commit, as the engine does. */
async function batch(source: DirectorySource): Promise<{ files: string[]; partitions: string[][] }> {
  const plan = await source.plan(Date.now());
  const partitions = await source.fetch(plan);
  await source.commit(plan);
  return { files: names(plan), partitions };
}

// File timestamps come from a coarse kernel clock (a few ms): space arrivals out so they differ.
const TICK = 25;

describe('DirectorySource', () => {
  it('reads each file moved in once, in arrival (rename) order rather than creation order, one partition per file', async () => {
    // Created a, b, c in that order, moved in c, a, b: ctime follows the rename.
    for (const n of ['a', 'b', 'c']) {
      await writeFile(path.join(staging, `${n}.txt`), `${n}1\n${n}2\n`);
      await sleep(TICK);
    }
    const { source } = await opened();
    for (const n of ['c', 'a', 'b']) {
      await rename(path.join(staging, `${n}.txt`), path.join(watched, `${n}.txt`));
      await sleep(TICK);
    }
    const first = await batch(source);
    assert.deepEqual(first.files, ['c.txt', 'a.txt', 'b.txt'], 'arrival order = rename order');
    assert.deepEqual(first.partitions, [
      ['c1', 'c2'],
      ['a1', 'a2'],
      ['b1', 'b2'],
    ]);
    assert.deepEqual(await batch(source), { files: [], partitions: [] }, 'nothing new: an empty batch');

    await moveIn('d.txt', 'd1\n');
    assert.deepEqual(await batch(source), { files: ['d.txt'], partitions: [['d1']] }, 'only the new file');
    await source.close();
  });

  it('turns each line into a record: \\n or \\r\\n, no record for a final newline, inner empty lines kept', async () => {
    assert.deepEqual(splitLines('a\r\nb\n\nc\n'), ['a', 'b', '', 'c']);
    assert.deepEqual(splitLines('no newline'), ['no newline']);
    assert.deepEqual(splitLines('\n'), ['']);
    assert.deepEqual(splitLines(''), []);
    const { source } = await opened({ encoding: 'latin1' });
    await moveIn('crlf.txt', 'x\r\ny\r\n');
    await sleep(TICK);
    await moveIn('empty.txt', '');
    await sleep(TICK);
    await writeFile(path.join(staging, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café\n" in latin1
    await rename(path.join(staging, 'latin1.txt'), path.join(watched, 'latin1.txt'));
    assert.deepEqual(
      (await batch(source)).partitions,
      [['x', 'y'], [], ['café']],
      'an empty file is an empty partition',
    );
  });

  it('does not read a committed file again after a restart', async () => {
    const first = await opened();
    await moveIn('old.txt', 'old\n');
    assert.deepEqual((await batch(first.source)).files, ['old.txt']);
    await first.source.close();

    await moveIn('new.txt', 'new\n');
    const second = await opened(); // a new instance on the same directory
    assert.deepEqual(await batch(second.source), { files: ['new.txt'], partitions: [['new']] });
    await second.source.close();
  });

  it('reads again after a restart a file whose batch was planned and fetched but never committed', async () => {
    const first = await opened();
    await moveIn('a.txt', 'a\n');
    const plan = await first.source.plan(1);
    assert.deepEqual(await first.source.fetch(plan), [['a']]);
    // Crash here: no commit.
    const again = await first.source.plan(2);
    assert.deepEqual(names(again), [], 'the same instance does not plan it twice');
    await first.source.close();

    const second = await opened();
    assert.deepEqual(await batch(second.source), { files: ['a.txt'], partitions: [['a']] });
  });

  it('reads a plan made by another instance (e.g. replayed from a checkpoint) by its file names', async () => {
    const first = await opened();
    await moveIn('a.txt', 'a\n');
    const plan = JSON.parse(JSON.stringify(await first.source.plan(1))) as InputPlan;
    const second = await opened();
    assert.deepEqual(await second.source.fetch(plan), [['a']]);
    await second.source.commit(plan);
    assert.deepEqual(names(await (await opened()).source.plan(2)), [], 'committed by the second instance');
  });

  it('ignores hidden files, _-prefixed files, subdirectories and the tracking file by default', async () => {
    const { source } = await opened();
    await moveIn('.hidden.txt', 'h\n');
    await moveIn('_COPYING_', 'c\n');
    await mkdir(path.join(watched, 'subdir'));
    await moveIn('visible.txt', 'v\n');
    assert.deepEqual((await batch(source)).files, ['visible.txt']);
    const entries = await readdir(watched);
    assert.ok(entries.includes(DEFAULT_TRACKING_FILE), 'the default tracking file lives in the directory');
    await moveIn('later.txt', 'l\n');
    assert.deepEqual((await batch(source)).files, ['later.txt'], 'the tracking file is never read');
  });

  it('filters names with a glob or a RegExp, and never reads hidden files even if they match', async () => {
    for (const n of ['a.csv', 'b.txt', '.c.csv', '_d.csv']) await moveIn(n, 'x\n');
    const glob = await opened({ pattern: '*.csv', trackingFile: path.join(root, 'glob.json') });
    assert.deepEqual(
      names(await glob.source.plan(1)).sort(),
      ['_d.csv', 'a.csv'],
      'a pattern replaces the _ rule',
    );
    const re = await opened({ pattern: /^b\./g, trackingFile: path.join(root, 're.json') });
    assert.deepEqual(names(await re.source.plan(1)), ['b.txt']);
  });

  it('keeps the read set in trackingFile when given, and never reads a tracking file that lies in the watched directory', async () => {
    const trackingFile = path.join(root, 'state', 'read.json');
    const first = await opened({ trackingFile });
    await moveIn('a.txt', 'a\n');
    await batch(first.source);
    const saved = JSON.parse(await readFile(trackingFile, 'utf8')) as { version: number; files: string[] };
    assert.equal(saved.version, 1);
    assert.deepEqual(saved.files, ['a.txt']);
    assert.deepEqual(await readdir(watched), ['a.txt'], 'nothing written in the watched directory');

    // A tracking file with a visible name inside the watched directory is not read as input.
    const inside = path.join(watched, 'tracking.json');
    const second = await opened({ trackingFile: inside });
    assert.deepEqual((await batch(second.source)).files, ['a.txt']);
    await moveIn('b.txt', 'b\n');
    assert.deepEqual((await batch(second.source)).files, ['b.txt']);
  });

  it('replaces the tracking file atomically: a temp file left by a crash is removed and the previous set is intact', async () => {
    const trackingPath = path.join(watched, DEFAULT_TRACKING_FILE);
    const first = await opened();
    await moveIn('a.txt', 'a\n');
    await batch(first.source);
    const before = await readFile(trackingPath, 'utf8');
    assert.deepEqual((JSON.parse(before) as { files: string[] }).files, ['a.txt']);
    assert.deepEqual(
      (await readdir(watched)).filter((n) => n.includes('.tmp-')),
      [],
      'no temporary file remains after a commit',
    );
    // What a crash between "write temp" and "rename" leaves: a half-written temp file.
    const leftover = path.join(watched, `.${DEFAULT_TRACKING_FILE}.tmp-99999-deadbeef`);
    await writeFile(leftover, '{"version":1,"files":["a.txt","b.t');
    await first.source.close();

    await moveIn('b.txt', 'b\n');
    const second = await opened();
    assert.deepEqual(
      (await readdir(watched)).filter((n) => n.includes('.tmp-')),
      [],
      'the leftover temp file is removed on open',
    );
    assert.ok(second.ctx.logger.at('warn').some((w) => /interrupted write/.test(w.msg ?? '')));
    assert.equal(await readFile(trackingPath, 'utf8'), before, 'the previous set is intact');
    assert.deepEqual((await batch(second.source)).files, ['b.txt'], 'a.txt is still known as read');
  });

  it('leaves either the old or the new tracking file, never a broken one, when the writer is SIGKILLed mid-write', async (t) => {
    const target = path.join(root, 'tracking.json');
    const fixture = fileURLToPath(new URL('./fixtures/write-tracking-loop.ts', import.meta.url));
    let leftovers = 0;
    let round = 0;
    // Kill until at least 3 kills landed mid-write (a temp file was left), or 30 rounds.
    for (; round < 30 && leftovers < 3; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', fixture, target], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('ready')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
      });
      await sleep(20 + Math.random() * 80);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      if ((await removeLeftoverTempFiles(target)).length > 0) leftovers++;
      const doc = JSON.parse(await readFile(target, 'utf8')) as { tag: string; files: string[] };
      assert.ok(doc.tag === 'A' || doc.tag === 'B', `round ${round}: tag ${doc.tag}`);
      assert.equal(doc.files.length, 50_000, `round ${round}: complete`);
      assert.equal(doc.files.at(-1), `${doc.tag}-file-49999.txt`);
    }
    t.diagnostic(`${leftovers} of ${round} kills landed mid-write`);
    assert.ok(leftovers >= 3, 'enough kills landed mid-write to mean something');
  });

  it('fails fetch with a SourceError naming a file that vanished between plan and fetch', async () => {
    const { source } = await opened();
    await moveIn('gone.txt', 'g\n');
    const plan = await source.plan(1);
    await unlink(path.join(watched, 'gone.txt'));
    await assert.rejects(source.fetch(plan), (e: unknown) => {
      assert.ok(e instanceof SourceError);
      assert.match(e.message, /gone\.txt/);
      assert.match(e.hint, /until the batch that reads them is committed/);
      return true;
    });
  });

  it('prunes names of files that left the directory from the read set, so a reused name is read again', async () => {
    const trackingPath = path.join(watched, DEFAULT_TRACKING_FILE);
    const { source } = await opened();
    await moveIn('a.txt', 'first\n');
    await moveIn('b.txt', 'b\n');
    await batch(source);
    await unlink(path.join(watched, 'a.txt'));
    await moveIn('c.txt', 'c\n');
    assert.deepEqual((await batch(source)).files, ['c.txt']);
    const saved = JSON.parse(await readFile(trackingPath, 'utf8')) as { files: string[] };
    assert.deepEqual(saved.files, ['b.txt', 'c.txt'], 'a.txt is gone, so is its name');
    await moveIn('a.txt', 'second\n');
    assert.deepEqual(await batch(source), { files: ['a.txt'], partitions: [['second']] });
  });

  it('takes at most maxFilesPerBatch files per batch, the oldest first', async () => {
    const { source } = await opened({ maxFilesPerBatch: 2 });
    for (const n of ['1', '2', '3', '4', '5']) {
      await moveIn(`${n}.txt`, `${n}\n`);
      await sleep(TICK);
    }
    assert.deepEqual((await batch(source)).files, ['1.txt', '2.txt']);
    assert.deepEqual((await batch(source)).files, ['3.txt', '4.txt']);
    assert.deepEqual((await batch(source)).files, ['5.txt']);
  });

  it('fails open with a SourceError when the directory does not exist or the tracking file is corrupt', async () => {
    const missing = new DirectorySource({ directory: path.join(root, 'nope') });
    await assert.rejects(
      missing.open(sourceContext()),
      (e: unknown) => e instanceof SourceError && /nope/.test(e.message) && /ENOENT/.test(e.message),
    );

    await writeFile(path.join(watched, DEFAULT_TRACKING_FILE), 'not json');
    const corrupt = new DirectorySource({ directory: watched });
    await assert.rejects(
      corrupt.open(sourceContext()),
      (e: unknown) => e instanceof SourceError && /not valid/.test(e.message) && /delete it/.test(e.hint),
    );
  });

  it('refuses plan() before open(): the read set is not loaded yet', async () => {
    const source = new DirectorySource({ directory: watched });
    await assert.rejects(source.plan(1), (e: unknown) => e instanceof SourceError && /open\(\)/.test(e.hint));
  });

  it('rejects invalid options with an InvalidOptionError naming the option', () => {
    const cases: [string, unknown][] = [
      ['directory', {}],
      ['directory', { directory: '' }],
      ['pattern', { directory: 'd', pattern: '' }],
      ['pattern', { directory: 'd', pattern: 'sub/*.txt' }],
      ['pattern', { directory: 'd', pattern: 42 }],
      ['trackingFile', { directory: 'd', trackingFile: '' }],
      ['trackingFile', { directory: 'd', trackingFile: 'd' }],
      ['encoding', { directory: 'd', encoding: 'utf-9' }],
      ['maxFilesPerBatch', { directory: 'd', maxFilesPerBatch: 0 }],
      ['maxFilesPerBatch', { directory: 'd', maxFilesPerBatch: 2.5 }],
    ];
    for (const [option, opts] of cases) {
      assert.throws(
        () => new DirectorySource(opts as DirectorySourceOptions),
        (e: unknown) => e instanceof InvalidOptionError && e.option === option && e.message.includes(option),
        `expected InvalidOptionError for ${option} with ${JSON.stringify(opts)}`,
      );
    }
  });

  it('describes its options with their defaults', () => {
    const source = new DirectorySource({ directory: watched });
    assert.equal(source.kind, 'directory');
    assert.deepEqual(source.describe(), {
      directory: watched,
      pattern: "names not starting with '.' or '_'",
      trackingFile: path.join(watched, DEFAULT_TRACKING_FILE),
      encoding: 'utf8',
      maxFilesPerBatch: 'unlimited',
      delivery: 'at-least-once',
    });
  });
});
