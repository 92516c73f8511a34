/**
 * The published package, tested as a user gets it: `npm pack` (prepack builds dist/), the tarball
 * installed into a fresh project in a temporary directory, then with plain `node` (no TypeScript
 * loader, no --conditions): every entry point imports; a TypeScript consumer type-checks against the
 * shipped declarations; `npx sluice run` runs a .js pipeline (with tsx removed from the project: the
 * installed CLI must not need it) and a .ts one (the CLI registers tsx for that file).
 *
 * Takes ~80 s on 2 cores: ~50 s for `npm pack` (tsc) and `npm install` (from npm's cache, without
 * install scripts: see the Kafka client below), ~15 s for the type check. `npm pack` runs in the
 * repo, as a user's would, so it leaves a fresh dist/ there (ignored by git, unused by the repo's own
 * runs, which resolve 'sluice' to src/ through the sluice-dev condition).
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const fixtures = path.join(here, 'fixtures');
const repoPackage = readJson(path.join(repoRoot, 'package.json')) as {
  exports: Record<string, Record<string, string>>;
};

/** npm settings worth keeping from the environment (where its cache is, its config files, registry). */
const NPM_SETTINGS = [
  'npm_config_cache',
  'npm_config_userconfig',
  'npm_config_globalconfig',
  'npm_config_registry',
  'npm_config_cafile',
];

/**
 * The environment of a user's shell: without NODE_OPTIONS (scripts/run-tests.mjs puts
 * --conditions=sluice-dev there, which would resolve to sources the package does not ship) and
 * without the variables of an outer `npm test` (npm_config_local_prefix would point npm at the repo).
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'INIT_CWD') continue;
    if (k.toLowerCase().startsWith('npm_') && !NPM_SETTINGS.includes(k.toLowerCase())) continue;
    env[k] = v;
  }
  return env;
}

function run(command: string, args: string[], cwd: string, timeoutMs = 120_000): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd, env: userEnv(), encoding: 'utf8', timeout: timeoutMs });
}

function succeeded(r: SpawnSyncReturns<string>, what: string): void {
  const how = r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit ${r.status}`;
  assert.equal(r.status, 0, `${what} failed (${how})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
}

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Every file under dir, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('the npm package', () => {
  let work: string;
  let project: string;
  let installed: string;

  before(
    () => {
      work = mkdtempSync(path.join(os.tmpdir(), 'sluice-package-'));
      const packDir = path.join(work, 'pack');
      project = path.join(work, 'project');
      mkdirSync(packDir);
      mkdirSync(project);

      const pack = run('npm', ['pack', '--pack-destination', packDir], repoRoot, 300_000);
      succeeded(pack, 'npm pack (its prepack builds dist/)');
      const tarballs = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
      assert.equal(tarballs.length, 1, `npm pack wrote ${tarballs.join(', ') || 'no tarball'}`);

      writeFileSync(
        path.join(project, 'package.json'),
        `${JSON.stringify({ name: 'sluice-user', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
      );
      // --ignore-scripts: the Kafka client's install script compiles librdkafka (~2 min on 2 cores),
      // too slow for every `npm test`; its native module is copied in below. DuckDB needs no script
      // (its binding is a per-platform optional dependency package), nor does tsx's esbuild (its
      // binary is one too; the postinstall only checks it). @types/node: what a TypeScript user has
      // (the repo's version, which npm's cache holds).
      const typesNode = (
        readJson(path.join(repoRoot, 'node_modules/@types/node/package.json')) as { version: string }
      ).version;
      const install = run(
        'npm',
        [
          'install',
          '--prefer-offline',
          '--ignore-scripts',
          '--no-audit',
          '--no-fund',
          path.join(packDir, tarballs[0]!),
          `@types/node@${typesNode}`,
        ],
        project,
        300_000,
      );
      succeeded(install, 'npm install <tarball>');
      installed = path.join(project, 'node_modules', 'sluice');

      // The native module the install script would have built, copied from the repo's own install:
      // the same version of the client (asserted; another version's binding may not match its
      // JavaScript) built for this machine. Release/ holds the addon, deps/ the librdkafka it links
      // (found through its $ORIGIN/../deps rpath).
      const from = path.join(repoRoot, 'node_modules/@confluentinc/kafka-javascript');
      const to = path.join(project, 'node_modules/@confluentinc/kafka-javascript');
      const version = (dir: string) =>
        (readJson(path.join(dir, 'package.json')) as { version: string }).version;
      assert.equal(
        version(to),
        version(from),
        'the installed Kafka client is not the version the repo built',
      );
      for (const sub of ['build/Release', 'build/deps']) mkdirSync(path.join(to, sub), { recursive: true });
      copyFileSync(
        path.join(from, 'build/Release/confluent-kafka-javascript.node'),
        path.join(to, 'build/Release/confluent-kafka-javascript.node'),
      );
      for (const f of readdirSync(path.join(from, 'build/deps')).filter((f) => /\.so(\.\d+)*$/.test(f))) {
        cpSync(path.join(from, 'build/deps', f), path.join(to, 'build/deps', f), { verbatimSymlinks: true });
      }

      for (const f of ['check-exports.mjs', 'consumer.ts', 'wordcount.js', 'wordcount.ts']) {
        copyFileSync(path.join(fixtures, f), path.join(project, f));
      }
    },
    { timeout: 10 * 60_000 },
  );

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Runs fn with node_modules/tsx moved away, to prove that nothing in it needs tsx. */
  function withoutTsx(fn: () => void): void {
    const tsx = path.join(project, 'node_modules', 'tsx');
    const hidden = path.join(project, 'node_modules', '.tsx-hidden');
    assert.ok(
      existsSync(tsx),
      'tsx is a dependency of the package (the CLI loads .ts pipeline files with it)',
    );
    renameSync(tsx, hidden);
    try {
      fn();
    } finally {
      renameSync(hidden, tsx);
    }
  }

  test('the tarball holds dist/ (JavaScript, declarations, maps), bin/sluice.js and the docs; no TypeScript sources', () => {
    const files = filesUnder(installed);
    assert.deepEqual(
      files.filter((f) => /\.[cm]?tsx?$/.test(f) && !/\.d\.[cm]?ts$/.test(f)),
      [],
      'TypeScript sources in the package',
    );
    assert.deepEqual([...new Set(files.map((f) => f.split(path.sep)[0]))].sort(), [
      'ARCHITECTURE.md',
      'README.md',
      'bin',
      'dist',
      'package.json',
    ]);
    assert.deepEqual(
      files.filter((f) => f.startsWith(`bin${path.sep}`)),
      [path.join('bin', 'sluice.js')],
    );
    for (const f of [
      'dist/index.js',
      'dist/index.d.ts',
      'dist/index.d.ts.map',
      'dist/index.js.map',
      'dist/cli/main.js',
    ]) {
      assert.ok(files.includes(path.normalize(f)), `${f} is missing`);
    }
    const pkg = readJson(path.join(installed, 'package.json')) as {
      exports: Record<string, Record<string, string>>;
    };
    assert.deepEqual(Object.keys(pkg.exports), Object.keys(repoPackage.exports));
    for (const [subpath, conditions] of Object.entries(pkg.exports)) {
      for (const condition of ['types', 'import', 'default']) {
        const target = conditions[condition];
        assert.ok(
          target && existsSync(path.join(installed, target)),
          `exports["${subpath}"].${condition} (${target}) is not in the package`,
        );
      }
    }
  });

  test('plain node imports every entry point, with the names its source exports, without tsx', async () => {
    let out = '';
    withoutTsx(() => {
      const r = run(process.execPath, ['check-exports.mjs'], project, 60_000);
      succeeded(r, 'node check-exports.mjs');
      out = r.stdout;
    });
    const result = JSON.parse(out) as {
      entries: Record<string, { specifier: string; url: string; names: string[] }>;
      librdkafkaVersion: string;
      duckdb: string;
    };
    assert.deepEqual(Object.keys(result.entries), Object.keys(repoPackage.exports));
    for (const [subpath, { specifier, url, names }] of Object.entries(result.entries)) {
      assert.ok(
        url.startsWith(pathToFileURL(path.join(installed, 'dist')).href + '/') && url.endsWith('.js'),
        `${specifier} resolved to ${url}, not to the package's dist/`,
      );
      // The source of the entry point, as the repo's own package.json names it (its sluice-dev condition).
      const source = repoPackage.exports[subpath]?.['sluice-dev'];
      assert.ok(source, `no source for ${subpath} in the repo's package.json`);
      const expected = Object.keys(
        (await import(pathToFileURL(path.join(repoRoot, source)).href)) as object,
      ).sort();
      assert.ok(names.length > 0, `${specifier} exports nothing`);
      assert.deepEqual(names, expected, `${specifier} does not export what ${source} does`);
    }
    const known: Record<string, string[]> = {
      '.': ['StreamingContext', 'definePipeline', 'QueueSource'],
      './kafka': ['createDirectStream', 'KafkaSink', 'librdkafkaVersion'],
      './testing': ['TestDriver'],
      './sql': ['SqlEngine', 'sqlTransform'],
      './checkpoint': ['CheckpointDirectory'],
      './postgres': ['PostgresSink'],
      './mysql': ['MySqlSink'],
      './redis': ['RedisSink'],
      './zookeeper': ['ZooKeeperOffsetStore'],
    };
    for (const [subpath, names] of Object.entries(known)) {
      for (const name of names)
        assert.ok(result.entries[subpath]?.names.includes(name), `${subpath} lacks ${name}`);
    }
    assert.match(result.librdkafkaVersion, /^\d+\.\d+\.\d+/);
    assert.equal(result.duckdb, 'duckdb answers');
  });

  test('a TypeScript consumer type-checks against the shipped declarations (NodeNext, strict)', () => {
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      `${JSON.stringify(
        {
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            noEmit: true,
            skipLibCheck: false,
            types: ['node'],
          },
          files: ['consumer.ts'],
        },
        null,
        2,
      )}\n`,
    );
    // skipLibCheck off, so that the shipped declarations are checked too (a type they import from a
    // package the user does not get would be an error in them). Other packages' declarations are not
    // Sluice's to fix: ioredis's import 'redis-errors', which has no types; their errors are ignored.
    const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
    const r = run(
      process.execPath,
      [tsc, '-p', 'tsconfig.json', '--pretty', 'false', '--listFiles'],
      project,
    );
    assert.ok(
      r.status !== null && r.status <= 2 && !r.error,
      `tsc did not run: ${r.error?.message ?? r.signal}`,
    );
    const lines = r.stdout.split('\n');
    const errors = lines.filter((l) => /^[^(\s][^(]*\(\d+,\d+\): error TS\d+/.test(l));
    const ours = errors.filter((l) => !l.startsWith('node_modules/') || l.startsWith('node_modules/sluice/'));
    assert.deepEqual(
      ours,
      [],
      `tsc found errors in consumer.ts or in the shipped declarations:\n${r.stdout}`,
    );
    assert.equal(r.status === 0, errors.length === 0, r.stdout + r.stderr);
    const sluiceFiles = lines.filter((f) => f.startsWith(path.join(installed, path.sep)));
    assert.ok(
      sluiceFiles.some((f) => f.endsWith(path.join('dist', 'index.d.ts'))),
      `tsc did not read the package's dist/index.d.ts`,
    );
    assert.deepEqual(
      sluiceFiles.filter((f) => !f.endsWith('.d.ts')),
      [],
      'tsc read files of the package that are not declarations',
    );
  });

  test('npx sluice run wordcount.js runs the pipeline without tsx', () => {
    let r: SpawnSyncReturns<string> | undefined;
    withoutTsx(() => {
      r = run('npx', ['sluice', 'run', 'wordcount.js', '--log-level', 'warn'], project, 60_000);
    });
    succeeded(r!, 'npx sluice run wordcount.js');
    assert.equal(r!.stdout, 'js batch 1: be=2 not=1 or=1 to=2\njs batch 2: is=1 question=1 that=1 the=1\n');
  });

  test('npx sluice run wordcount.ts runs a TypeScript pipeline', () => {
    const r = run('npx', ['sluice', 'run', 'wordcount.ts', '--log-level', 'warn'], project, 60_000);
    succeeded(r, 'npx sluice run wordcount.ts');
    assert.equal(
      r.stdout,
      'ts batch 1 (wordcount): be=2 not=1 or=1 to=2\nts batch 2 (wordcount): is=1 question=1 that=1 the=1\n',
    );
  });
});
