#!/usr/bin/env node
// node scripts/run-tests.mjs [dir-or-file ...]
//
// Brings the local services up (node --import tsx scripts/services.ts up all), then runs every
// test/**/*.test.ts (or those under the given dirs / the given files) with
// `node --import tsx --test --test-reporter=spec`, and exits with the test run's exit code.
// Node 20's --test does not glob .ts files, so the list is built here.
//
// Environment: SLUICE_TEST_TIMEOUT_MS (default 300000) bounds each test; every test file shares one
// broker and one set of databases (use unique names). Plain Node ESM: no tsx needed to run this file.
//
// Both run with --conditions=sluice-dev in NODE_OPTIONS, so 'sluice', 'sluice/kafka', ... and the CLI's
// `#cli` resolve to the TypeScript sources in src/ (package.json "exports"/"imports"), not to dist/: no
// build is needed, and the examples' `import 'sluice'` loads the same modules as the tests'
// `import '../src/...'`. Every node process the tests start inherits NODE_OPTIONS (spawn passes
// process.env on). The package test (test/package) removes it for the installed package.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

/** All *.test.ts under dir, sorted, skipping node_modules and dot-directories. */
function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(full));
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

const args = process.argv.slice(2);
const targets = args.length > 0 ? args : ['test'];
const files = [];
for (const t of targets) {
  let st;
  try {
    st = statSync(t);
  } catch {
    console.error(`run-tests: ${t} does not exist`);
    process.exit(2);
  }
  if (st.isDirectory()) files.push(...findTests(t));
  else files.push(t);
}
const unique = [...new Set(files.map((f) => path.relative(root, path.resolve(f))))].sort();
if (unique.length === 0) {
  console.error(`run-tests: no *.test.ts files under ${targets.join(', ')}`);
  process.exit(1);
}

const DEV_CONDITION = '--conditions=sluice-dev';
const nodeOptions = process.env.NODE_OPTIONS ?? '';
if (!nodeOptions.split(/\s+/).includes(DEV_CONDITION)) {
  process.env.NODE_OPTIONS = `${nodeOptions} ${DEV_CONDITION}`.trim();
}

const up = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/services.ts', 'up', 'all'], {
  stdio: 'inherit',
  timeout: 5 * 60_000,
});
if (up.status !== 0) {
  console.error(
    `run-tests: the services did not come up (${up.error?.message ?? `exit ${up.status ?? up.signal}`}); not running the tests`,
  );
  process.exit(1);
}

const timeout = process.env.SLUICE_TEST_TIMEOUT_MS ?? '300000';
console.log(`run-tests: ${unique.length} test file(s)`);
const run = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-timeout=${timeout}`, ...unique],
  { stdio: 'inherit' },
);
if (run.error) {
  console.error(`run-tests: could not run node --test: ${run.error.message}`);
  process.exit(1);
}
process.exit(run.status ?? 1);
