#!/usr/bin/env node
// node --import tsx scripts/check-imports.ts [--root <dir>] [--strict-files]
//
// The import rule of ARCHITECTURE.md's "## Module map" table, enforced: every module specifier of
// every .ts file under src/ must point into the file's own folder, a folder its row lists, an npm
// package its row lists, or a node built-in; and the folders must not import each other in a
// cycle. File-level cycles inside a folder are reported too, but only fail with --strict-files.
//
// Exit 0 when clean (one summary line), 1 on any finding, 2 on bad command-line arguments.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

interface Row {
  folder: string; // 'src/core/' (always with a trailing slash)
  everything: boolean;
  folders: Set<string>;
  packages: Set<string>;
  line: number; // in ARCHITECTURE.md
}

interface Import {
  file: string; // relative to the root, forward slashes
  line: number;
  specifier: string;
}

interface Edge {
  from: string;
  to: string;
  example: Import & { target: string };
}

/** Thrown for a missing or malformed module map: nothing can be checked without it. */
class MapError extends Error {}

const TS_FILE = /\.(c|m)?tsx?$/;
const toPosix = (p: string) => p.split(path.sep).join('/');

function parseArgs(argv: string[]): { root: string; strictFiles: boolean } {
  let root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  let strictFiles = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--strict-files') strictFiles = true;
    else if (a === '--root' && argv[i + 1]) root = path.resolve(argv[++i]!);
    else {
      console.error(
        `check-imports: unknown argument ${a}\nusage: check-imports [--root <dir>] [--strict-files]`,
      );
      process.exit(2);
    }
  }
  return { root, strictFiles };
}

/** Backticked items of a table cell, and whatever text lies outside the backticks. */
function cellItems(cell: string): { items: string[]; rest: string } {
  const items = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.trim());
  return { items, rest: cell.replace(/`[^`]*`/g, '').replace(/[,\s]/g, '') };
}

/** The rows of the "## Module map" table; every problem with it is a MapError. */
function parseModuleMap(root: string): Row[] {
  const file = path.join(root, 'ARCHITECTURE.md');
  if (!existsSync(file)) throw new MapError('ARCHITECTURE.md not found: the module map is the import rule');
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((l) => /^##\s+Module map\s*$/i.test(l));
  if (start < 0) throw new MapError('ARCHITECTURE.md has no "## Module map" section');
  const where = (i: number) => `ARCHITECTURE.md:${i + 1}`;

  // The first table of the section (up to the next heading of the same or a higher level).
  let i = start + 1;
  while (i < lines.length && !lines[i]!.trimStart().startsWith('|') && !/^#{1,2}\s/.test(lines[i]!)) i++;
  if (i >= lines.length || !lines[i]!.trimStart().startsWith('|'))
    throw new MapError(`the "## Module map" section (${where(start)}) has no table`);
  const cells = (l: string) =>
    l
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
  const header = cells(lines[i]!).map((c) => c.toLowerCase());
  if (header.join('|') !== 'folder|what|may import')
    throw new MapError(`${where(i)}: the module map's header must be | folder | what | may import |`);
  if (!/^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?$/.test(lines[i + 1]?.trim() ?? ''))
    throw new MapError(`${where(i + 1)}: the module map's header is not followed by a | --- | row`);

  const rows: Row[] = [];
  for (i += 2; i < lines.length && lines[i]!.trimStart().startsWith('|'); i++) {
    const c = cells(lines[i]!);
    if (c.length !== 3) throw new MapError(`${where(i)}: a module map row needs 3 cells, found ${c.length}`);
    const folders = cellItems(c[0]!);
    if (folders.items.length === 0 || folders.rest !== '')
      throw new MapError(`${where(i)}: the folder cell must be backticked folders, e.g. \`src/core/\``);
    const allow = cellItems(c[2]!);
    // Text outside backticks would otherwise be ignored silently (e.g. "pino" without backticks).
    const everything = allow.rest === 'everything' || allow.items.includes('everything');
    if (allow.rest !== '' && allow.rest !== 'everything')
      throw new MapError(`${where(i)}: put every may-import item in backticks (found "${c[2]}")`);
    const row = { everything, folders: new Set<string>(), packages: new Set<string>(), line: i + 1 };
    for (const item of allow.items) {
      if (item === 'everything') continue;
      if (item.startsWith('src/') || item === 'src') row.folders.add(item.replace(/\/?$/, '/'));
      else if (/^(@[\w.-]+\/)?[\w.-]+$/.test(item)) row.packages.add(item);
      else throw new MapError(`${where(i)}: "${item}" is neither a src/ folder nor an npm package name`);
    }
    for (const f of folders.items) {
      const folder = f.replace(/\/?$/, '/');
      if (!folder.startsWith('src/'))
        throw new MapError(`${where(i)}: row folder \`${f}\` is not under src/`);
      if (rows.some((r) => r.folder === folder))
        throw new MapError(`${where(i)}: \`${folder}\` has two rows`);
      rows.push({ folder, ...row });
    }
  }
  if (rows.length === 0) throw new MapError(`${where(start)}: the module map table has no rows`);
  return rows;
}

function listTsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || e.name === 'node_modules') continue;
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listTsFiles(full));
    else if (e.isFile() && TS_FILE.test(e.name)) out.push(full);
  }
  return out.sort();
}

/** Every module specifier of a file, from its AST: comments and strings that only look like imports don't count. */
function importsOf(file: string, rel: string): Import[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: Import[] = [];
  const add = (lit: ts.Node | undefined) => {
    if (lit && (ts.isStringLiteral(lit) || ts.isNoSubstitutionTemplateLiteral(lit)))
      out.push({
        file: rel,
        line: sf.getLineAndCharacterOfPosition(lit.getStart(sf)).line + 1,
        specifier: lit.text,
      });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference))
      add(node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword)
      add(node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Tarjan's strongly connected components of a directed graph given as adjacency sets. */
function stronglyConnected(nodes: Iterable<string>, next: (n: string) => Iterable<string>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      out.push(scc.sort());
    }
  };
  for (const n of nodes) if (!index.has(n)) visit(n);
  return out;
}

/** The cyclic components (2+ nodes, or a node importing itself), each with its inner edges. */
function cycles(edges: Map<string, Edge>): Edge[][] {
  const adj = new Map<string, Set<string>>();
  for (const e of edges.values()) {
    if (!adj.has(e.from)) adj.set(e.from, new Set());
    adj.get(e.from)!.add(e.to);
  }
  return stronglyConnected([...adj.keys()].sort(), (n) => [...(adj.get(n) ?? [])].sort())
    .filter((scc) => scc.length > 1 || adj.get(scc[0]!)?.has(scc[0]!))
    .map((scc) => [...edges.values()].filter((e) => scc.includes(e.from) && scc.includes(e.to)))
    .sort((a, b) => a[0]!.from.localeCompare(b[0]!.from));
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** NodeNext resolution of a relative specifier to a source file: `./x.js` is `./x.ts` on disk. */
function resolveRelative(fromFile: string, specifier: string): string | undefined {
  const target = path.resolve(path.dirname(fromFile), specifier);
  const candidates = [target.replace(/\.(m|c)?js(x?)$/, '.$1ts$2'), target];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

function main(): number {
  const { root, strictFiles } = parseArgs(process.argv.slice(2));
  const pkgFile = path.join(root, 'package.json');
  const ownName = existsSync(pkgFile)
    ? (JSON.parse(readFileSync(pkgFile, 'utf8')) as { name?: string }).name
    : undefined;
  let rows: Row[];
  try {
    rows = parseModuleMap(root);
  } catch (e) {
    if (!(e instanceof MapError)) throw e;
    console.error(`check-imports: ${e.message}`);
    return 1;
  }

  const errors: string[] = [];
  const src = path.join(root, 'src');
  const files = existsSync(src) ? listTsFiles(src).map((f) => toPosix(path.relative(root, f))) : [];
  for (const r of rows)
    if (!existsSync(path.join(root, r.folder)))
      errors.push(
        `ARCHITECTURE.md:${r.line}: the module map lists \`${r.folder}\`, which does not exist: remove the row or fix its folder`,
      );
  for (const dir of new Set(files.map((f) => path.posix.dirname(f) + '/')))
    if (!rows.some((r) => r.folder === dir))
      errors.push(
        `${dir}: holds .ts files but has no row in ARCHITECTURE.md's module map: add one saying what it holds and what it may import`,
      );

  // A file belongs to the most specific (longest) row folder containing it.
  const rowOf = (file: string) =>
    rows.filter((r) => file.startsWith(r.folder)).sort((a, b) => b.folder.length - a.folder.length)[0];
  const folderOf = (file: string) => rowOf(file)?.folder ?? path.posix.dirname(file) + '/';

  const folderEdges = new Map<string, Edge>();
  const fileEdges = new Map<string, Edge>();
  let importCount = 0;
  for (const file of files) {
    const row = rowOf(file);
    for (const imp of importsOf(path.join(root, file), file)) {
      importCount++;
      const at = `${imp.file}:${imp.line}: '${imp.specifier}'`;
      const s = imp.specifier;
      if (s.startsWith('node:') || builtinModules.includes(s) || builtinModules.includes(packageName(s)))
        continue;
      if (s.startsWith('.')) {
        const resolved = resolveRelative(path.join(root, file), s);
        if (!resolved) {
          errors.push(`${at} does not resolve to a file: import a .ts module with its .js name (NodeNext)`);
          continue;
        }
        const target = toPosix(path.relative(root, resolved));
        const from = folderOf(file);
        const to = folderOf(target);
        if (from === to) {
          if (!fileEdges.has(`${file} ${target}`))
            fileEdges.set(`${file} ${target}`, { from: file, to: target, example: { ...imp, target } });
          continue;
        }
        if (!folderEdges.has(`${from} ${to}`))
          folderEdges.set(`${from} ${to}`, { from, to, example: { ...imp, target } });
        if (row && !row.everything && !row.folders.has(to))
          errors.push(
            `${at} imports ${target}: ${from} may not import ${to} (ARCHITECTURE.md:${row.line}). ` +
              `Move this into an adapter, or add \`${to}\` to the row's may-import in ARCHITECTURE.md if the design allows it`,
          );
      } else if (s.startsWith('/') || s.startsWith('#') || /^[a-z]+:/i.test(s)) {
        errors.push(`${at}: absolute, URL and #subpath specifiers are not allowed in src; import relatively`);
      } else {
        const pkg = packageName(s);
        if (pkg === ownName)
          errors.push(
            `${at}: src must not import its own package '${ownName}'; import the module relatively`,
          );
        else if (row && !row.everything && !row.packages.has(pkg))
          errors.push(
            `${at}: ${row.folder} may not import the package '${pkg}' (ARCHITECTURE.md:${row.line}). ` +
              `Move this into the adapter that owns '${pkg}', or add \`${pkg}\` to the row's may-import in ARCHITECTURE.md if the design allows it`,
          );
      }
    }
  }

  const describe = (e: Edge) =>
    `    ${e.from} → ${e.to}  (${e.example.file}:${e.example.line} imports ${e.example.target})`;
  for (const cycle of cycles(folderEdges)) {
    const folders = [...new Set(cycle.map((e) => e.from))].sort();
    errors.push(
      `folders ${folders.join(', ')} import each other in a cycle; break it (move the shared code into the lower folder):\n` +
        cycle.map(describe).join('\n'),
    );
  }
  const fileCycles = cycles(fileEdges);
  const failed = errors.length > 0 || (strictFiles && fileCycles.length > 0);

  for (const e of errors) console.error(`check-imports: ${e}`);
  if (fileCycles.length > 0) {
    // Informational on stdout, unless the run fails: then with the findings, on stderr.
    const report = failed ? console.error : console.log;
    report(
      `\ncheck-imports: file cycles inside folders (${fileCycles.length}; ` +
        (strictFiles ? 'failing: --strict-files' : 'not enforced; --strict-files fails on them') +
        '):',
    );
    for (const cycle of fileCycles) {
      const names = [...new Set(cycle.map((e) => e.from))].sort();
      report(`  ${folderOf(names[0]!)}: ${names.map((n) => path.posix.basename(n)).join(', ')}`);
      for (const e of cycle) report(`    ${e.from}:${e.example.line} → ${e.to}`);
    }
  }
  const summary = `${files.length} files in ${rows.length} folders, ${importCount} imports, ${folderEdges.size} folder edges`;
  if (failed) console.error(`\ncheck-imports: FAILED (${errors.length} error(s)); ${summary}`);
  else console.log(`check-imports: OK: ${summary}`);
  return failed ? 1 : 0;
}

process.exitCode = main();
