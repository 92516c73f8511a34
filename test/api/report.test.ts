import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const script = path.join(repo, 'scripts/api-report.ts');
const temps: string[] = [];
after(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

function report(root: string, ...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, '--root', root, ...args], {
    cwd: repo,
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout + r.stderr };
}

it('the checked-in API reports in api/ match the public API of every entry point', () => {
  const r = report(repo, '--check');
  assert.equal(r.status, 0, r.out);
});

it('--check detects an added export, a changed signature, and a report without an entry point', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'api-report-'));
  temps.push(root);
  const write = (file: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  };
  write(
    'package.json',
    JSON.stringify({
      name: 'tiny',
      type: 'module',
      exports: {
        '.': './src/index.ts',
        './extra': { 'sluice-dev': './src/extra.ts', import: './dist/extra.js' },
      },
    }),
  );
  write('src/index.ts', "export function greet(name: string): string {\n  return 'hi ' + name;\n}\n");
  write(
    'src/extra.ts',
    'export class Counter {\n  count = 0;\n  add(n: number): void {\n    this.count += n;\n  }\n}\n',
  );

  const first = report(root);
  assert.equal(first.status, 0, first.out);
  assert.match(
    readFileSync(path.join(root, 'api/tiny.api.md'), 'utf8'),
    /function greet\(name: string\): string;/,
  );
  assert.match(readFileSync(path.join(root, 'api/tiny-extra.api.md'), 'utf8'), /add\(n: number\): void;/);
  assert.equal(report(root, '--check').status, 0);

  write(
    'src/index.ts',
    "export function greet(name: string, loud?: boolean): string {\n  return loud ? name : 'hi';\n}\n",
  );
  write(
    'src/extra.ts',
    "export class Counter {\n  count = 0;\n  add(n: number): void {}\n}\nexport const version = '1';\n",
  );
  write('api/tiny-gone.api.md', '# old\n');
  const changed = report(root, '--check');
  assert.equal(changed.status, 1, changed.out);
  assert.match(
    changed.out,
    /tiny \(api\/tiny\.api\.md\):\n\s+changed: greet\n\s+- function greet\(name: string\): string;\n\s+\+ function greet\(name: string, loud\?: boolean \| undefined\): string;/,
  );
  assert.match(changed.out, /tiny\/extra \(api\/tiny-extra\.api\.md\):\n\s+added: version/);
  assert.match(changed.out, /api\/tiny-gone\.api\.md: no entry point/);

  rmSync(path.join(root, 'api/tiny-extra.api.md'));
  assert.match(report(root, '--check').out, /tiny\/extra: no api\/tiny-extra\.api\.md yet/);
});
