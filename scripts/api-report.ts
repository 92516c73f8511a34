#!/usr/bin/env node
// node --import tsx scripts/api-report.ts [--root <dir>] [--check]
//
// Writes api/<entry>.api.md for every entry point of package.json `exports`: each exported name,
// sorted, with its kind and its declared shape as the type checker sees it. The files are checked
// in, so a change to the public API shows up in review as a change to these files.
// --check regenerates in memory and exits 1 with a summary when the files on disk differ.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The condition naming the TypeScript source of an entry point (the others point at dist/). */
const SOURCE_CONDITION = 'sluice-dev';
const REPORT = /\.api\.md$/;
const NODE_FLAGS = ts.NodeBuilderFlags.NoTruncation | ts.NodeBuilderFlags.IgnoreErrors;

interface Entry {
  subpath: string; // '.', './kafka'
  specifier: string; // 'sluice', 'sluice/kafka'
  source: string; // absolute path of the .ts file
  report: string; // 'api/sluice-kafka.api.md'
}

class UsageError extends Error {}

function parseArgs(argv: string[]): { root: string; check: boolean } {
  let root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--check') check = true;
    else if (argv[i] === '--root' && argv[i + 1]) root = path.resolve(argv[++i]!);
    else throw new UsageError(`unknown argument ${argv[i]}\nusage: api-report [--root <dir>] [--check]`);
  }
  return { root, check };
}

/** The entry points of package.json `exports`, in either form: a path, or conditions with SOURCE_CONDITION. */
function entryPoints(root: string): Entry[] {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name: string;
    exports?: unknown;
  };
  let exportsMap = pkg.exports;
  if (exportsMap === undefined) throw new UsageError('package.json has no "exports"');
  // "exports": "./x.ts" or "exports": { "import": ... } both describe the root entry point only.
  if (typeof exportsMap === 'string' || !Object.keys(exportsMap as object).some((k) => k.startsWith('.')))
    exportsMap = { '.': exportsMap };
  const entries: Entry[] = [];
  for (const [subpath, value] of Object.entries(exportsMap as Record<string, unknown>)) {
    if (value === null || subpath === './package.json') continue; // blocked subpath, or not code
    if (subpath.includes('*'))
      throw new UsageError(`exports["${subpath}"]: pattern subpaths are not supported`);
    const target =
      typeof value === 'string' ? value : (value as Record<string, unknown> | undefined)?.[SOURCE_CONDITION];
    if (typeof target !== 'string' || !/\.(m|c)?tsx?$/.test(target))
      throw new UsageError(
        `exports["${subpath}"] names no TypeScript source: give it a "${SOURCE_CONDITION}" condition with the .ts file`,
      );
    const specifier = pkg.name + subpath.slice(1);
    entries.push({
      subpath,
      specifier,
      source: path.resolve(root, target),
      report: `api/${specifier.replace(/^@/, '').replace(/\//g, '-')}.api.md`,
    });
  }
  return entries;
}

function compilerOptions(root: string): ts.CompilerOptions {
  const config = path.join(root, 'tsconfig.json');
  const fallback: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    lib: ['lib.es2022.d.ts'], // not the DOM: Node code, and a much faster program
    types: [],
  };
  if (!existsSync(config)) return fallback;
  const parsed = ts.getParsedCommandLineOfConfigFile(
    config,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new UsageError(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  return { ...parsed!.options, noEmit: true };
}

/** Renders the exports of entry files with one checker; every text is relative to the root. */
class Renderer {
  readonly #checker: ts.TypeChecker;
  readonly #program: ts.Program;
  readonly #root: string;
  // Full types, never "... 12 more ...", and aliases by name rather than expanded.
  readonly #flags =
    ts.TypeFormatFlags.NoTruncation |
    ts.TypeFormatFlags.UseAliasDefinedOutsideCurrentScope |
    ts.TypeFormatFlags.UseStructuralFallback;
  readonly #printer = ts.createPrinter({ removeComments: true });
  readonly #scratch = ts.createSourceFile('scratch.ts', '', ts.ScriptTarget.Latest);

  constructor(program: ts.Program, root: string) {
    this.#program = program;
    this.#checker = program.getTypeChecker();
    this.#root = root;
  }

  /** name → [kind, shape] for each export of the file, sorted by name. */
  exportsOf(file: string): [string, string, string][] {
    const sf = this.#program.getSourceFile(file);
    const moduleSymbol = sf && this.#checker.getSymbolAtLocation(sf);
    if (!moduleSymbol)
      throw new UsageError(`${path.relative(this.#root, file)} is not a module the compiler can read`);
    return this.#checker
      .getExportsOfModule(moduleSymbol)
      .map((s) => [s.name, ...this.#render(s)] as [string, string, string])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  #render(exported: ts.Symbol): [string, string] {
    const c = this.#checker;
    const sym = exported.flags & ts.SymbolFlags.Alias ? c.getAliasedSymbol(exported) : exported;
    const name = exported.name;
    if (sym.flags === ts.SymbolFlags.None)
      return ['unresolved', `// ${name}: the compiler cannot resolve this export`];
    // A name can carry several meanings at once (class + namespace, const + type): show each.
    const shapes: [string, () => string][] = [];
    const f = sym.flags;
    if (f & ts.SymbolFlags.Class) shapes.push(['class', () => this.#class(name, sym)]);
    if (f & ts.SymbolFlags.Interface) shapes.push(['interface', () => this.#interface(name, sym)]);
    if (f & ts.SymbolFlags.TypeAlias) shapes.push(['type', () => this.#typeAlias(name, sym)]);
    if (f & ts.SymbolFlags.Function) shapes.push(['function', () => this.#function(name, sym)]);
    if (f & ts.SymbolFlags.Enum) shapes.push(['enum', () => this.#enum(name, sym)]);
    if (f & ts.SymbolFlags.Variable) {
      const flags = sym.valueDeclaration ? ts.getCombinedNodeFlags(sym.valueDeclaration) : 0;
      const keyword = flags & ts.NodeFlags.Const ? 'const' : flags & ts.NodeFlags.Let ? 'let' : 'var';
      shapes.push([keyword, () => `${keyword} ${name}: ${this.#type(c.getTypeOfSymbol(sym))};`]);
    }
    if (f & (ts.SymbolFlags.ValueModule | ts.SymbolFlags.NamespaceModule) && !(f & ts.SymbolFlags.Enum))
      shapes.push(['namespace', () => this.#namespace(name, sym)]);
    if (shapes.length === 0) shapes.push(['value', () => `${name}: ${this.#type(c.getTypeOfSymbol(sym))};`]);
    const kinds = shapes.map(([kind]) => kind);
    const parts = shapes.map(([, render]) => render());

    const notes: string[] = [];
    // Only a value can lose something by `export type`: users can no longer call or construct it.
    if (sym.flags & ts.SymbolFlags.Value && this.#typeOnly(exported)) notes.push('exported as a type only');
    const from = sym.declarations?.[0]?.getSourceFile();
    if (from && this.#external(from)) notes.push(`re-exported from ${this.#relative(from.fileName)}`);
    return [[kinds.join(' + '), ...notes].join(', '), parts.join('\n\n')];
  }

  /** `export type { X }` anywhere along the alias chain makes a class or const usable as a type only. */
  #typeOnly(sym: ts.Symbol): boolean {
    for (
      let s: ts.Symbol | undefined = sym;
      s && s.flags & ts.SymbolFlags.Alias;
      s = this.#checker.getImmediateAliasedSymbol(s)
    ) {
      for (const d of s.declarations ?? []) {
        if (ts.isTypeOnlyImportOrExportDeclaration(d)) return true;
        if (ts.isExportSpecifier(d) && d.parent.parent.isTypeOnly) return true;
      }
    }
    return false;
  }

  #external(sf: ts.SourceFile): boolean {
    return this.#program.isSourceFileDefaultLibrary(sf) || sf.fileName.includes('/node_modules/');
  }

  #relative(file: string): string {
    const m = /\/node_modules\/((@[^/]+\/)?[^/]+)/.exec(file);
    return m ? m[1]! : path.relative(this.#root, file).split(path.sep).join('/');
  }

  /** Type text with any absolute import("...") path made relative, so the report is machine-independent. */
  #clean(text: string): string {
    return text.replace(/import\("([^"]+)"\)/g, (_, p: string) => `import("${this.#relative(p)}")`);
  }

  #type(t: ts.Type): string {
    return this.#clean(this.#checker.typeToString(t, undefined, this.#flags));
  }

  #signature(sig: ts.Signature): string {
    return this.#clean(this.#checker.signatureToString(sig, undefined, this.#flags));
  }

  /** Source text of a node the checker built (type parameters, constructors), on one line. */
  #print(node: ts.Node | undefined): string {
    if (!node) return '';
    const text = this.#printer.printNode(ts.EmitHint.Unspecified, node, this.#scratch);
    return this.#clean(text.replace(/\s*\n\s*/g, ' '));
  }

  #typeParameters(sym: ts.Symbol): string {
    const params = this.#checker.symbolToTypeParameterDeclarations(sym, undefined, NODE_FLAGS);
    return params?.length ? `<${params.map((p) => this.#print(p)).join(', ')}>` : '';
  }

  /** Hidden from users: `private`, `#private` and `@internal` members. */
  #hidden(decl: ts.Declaration): boolean {
    return (
      (ts.getCombinedModifierFlags(decl) & ts.ModifierFlags.Private) !== 0 ||
      (ts.getNameOfDeclaration(decl)?.kind ?? 0) === ts.SyntaxKind.PrivateIdentifier ||
      ts.getJSDocTags(decl).some((t) => t.tagName.text === 'internal')
    );
  }

  /** The member lines of a class side or interface: public, declared in this project (not lib.d.ts or node_modules). */
  #members(type: ts.Type, owner: ts.Symbol, prefix = ''): string[] {
    const lines: [string, string][] = [];
    for (const prop of this.#checker.getPropertiesOfType(type)) {
      const decls = prop.declarations ?? [];
      if (prop.name === 'prototype' || decls.length === 0 || decls.some((d) => this.#hidden(d))) continue;
      if (decls.every((d) => this.#external(d.getSourceFile()))) continue;
      const decl = decls[0]!;
      const name = ts.getNameOfDeclaration(decl)?.getText() ?? prop.name;
      const mods = ts.getCombinedModifierFlags(decl);
      let head = prefix;
      if (mods & ts.ModifierFlags.Protected) head += 'protected ';
      if (mods & ts.ModifierFlags.Abstract) head += 'abstract ';
      const optional = prop.flags & ts.SymbolFlags.Optional ? '?' : '';
      const parent = decl.parent;
      const inherited =
        (ts.isClassLike(parent) || ts.isInterfaceDeclaration(parent)) && !owner.declarations?.includes(parent)
          ? ` // from ${parent.name?.getText() ?? 'a base'}`
          : '';
      const type = this.#checker.getTypeOfSymbol(prop);
      const add = (text: string) => lines.push([name, `${head}${text};${inherited}`]);
      if (prop.flags & ts.SymbolFlags.Method) {
        for (const sig of type.getCallSignatures()) add(`${name}${optional}${this.#signature(sig)}`);
      } else if (prop.flags & ts.SymbolFlags.Accessor) {
        if (prop.flags & ts.SymbolFlags.GetAccessor) add(`get ${name}(): ${this.#type(type)}`);
        if (prop.flags & ts.SymbolFlags.SetAccessor) add(`set ${name}(value: ${this.#type(type)})`);
      } else {
        const readonly = mods & ts.ModifierFlags.Readonly ? 'readonly ' : '';
        add(`${readonly}${name}${optional}: ${this.#type(type)}`);
      }
    }
    return lines.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, l]) => l);
  }

  /** Call, construct and index signatures of an interface. */
  #signatures(type: ts.Type): string[] {
    const out: string[] = [];
    for (const sig of type.getCallSignatures()) out.push(`${this.#signature(sig)};`);
    for (const sig of type.getConstructSignatures()) out.push(`new ${this.#signature(sig)};`);
    for (const info of this.#checker.getIndexInfosOfType(type))
      out.push(
        `${info.isReadonly ? 'readonly ' : ''}[key: ${this.#type(info.keyType)}]: ${this.#type(info.type)};`,
      );
    return out;
  }

  #body(lines: string[]): string {
    return lines.length ? ` {\n${lines.map((l) => `  ${l}`).join('\n')}\n}` : ' {}';
  }

  #heritage(sym: ts.Symbol, token: ts.SyntaxKind): string[] {
    const out: string[] = [];
    for (const d of sym.declarations ?? [])
      if (ts.isClassLike(d) || ts.isInterfaceDeclaration(d))
        for (const clause of d.heritageClauses ?? [])
          if (clause.token === token)
            for (const t of clause.types) out.push(this.#type(this.#checker.getTypeAtLocation(t)));
    return out;
  }

  #class(name: string, sym: ts.Symbol): string {
    const c = this.#checker;
    const decl = sym.declarations?.find(ts.isClassLike);
    const abstract = decl && ts.getCombinedModifierFlags(decl) & ts.ModifierFlags.Abstract ? 'abstract ' : '';
    const base = this.#heritage(sym, ts.SyntaxKind.ExtendsKeyword);
    const impl = this.#heritage(sym, ts.SyntaxKind.ImplementsKeyword);
    const staticSide = c.getTypeOfSymbol(sym);
    // A private or @internal constructor still matters to users: they cannot call `new`.
    const ctors = staticSide.getConstructSignatures().map((sig) => {
      const d = sig.getDeclaration() as ts.Declaration | undefined;
      if (d && this.#hidden(d))
        return ts.getCombinedModifierFlags(d) & ts.ModifierFlags.Private
          ? 'private constructor();'
          : '// the constructor is @internal';
      const ctor = c.signatureToSignatureDeclaration(sig, ts.SyntaxKind.Constructor, undefined, NODE_FLAGS);
      if (!ctor || !ts.isConstructorDeclaration(ctor)) return '';
      // Parameter properties (`readonly x: T`) are listed as members; here they are plain parameters.
      const params = ctor.parameters.map((p) =>
        ts.factory.updateParameterDeclaration(
          p,
          undefined,
          p.dotDotDotToken,
          p.name,
          p.questionToken,
          p.type,
          undefined,
        ),
      );
      return (
        this.#print(ts.factory.updateConstructorDeclaration(ctor, ctor.modifiers, params, undefined)) + ';'
      );
    });
    const head =
      `${abstract}class ${name}${this.#typeParameters(sym)}` +
      (base.length ? ` extends ${base.join(', ')}` : '') +
      (impl.length ? ` implements ${impl.join(', ')}` : '');
    return (
      head +
      this.#body([
        ...new Set(ctors),
        ...this.#members(staticSide, sym, 'static '),
        ...this.#members(c.getDeclaredTypeOfSymbol(sym), sym),
      ])
    );
  }

  #interface(name: string, sym: ts.Symbol): string {
    const type = this.#checker.getDeclaredTypeOfSymbol(sym);
    const base = this.#heritage(sym, ts.SyntaxKind.ExtendsKeyword);
    const head = `interface ${name}${this.#typeParameters(sym)}${base.length ? ` extends ${base.join(', ')}` : ''}`;
    return head + this.#body([...this.#signatures(type), ...this.#members(type, sym)]);
  }

  #typeAlias(name: string, sym: ts.Symbol): string {
    const decl = sym.declarations?.find(ts.isTypeAliasDeclaration);
    const type = decl
      ? this.#checker.getTypeFromTypeNode(decl.type)
      : this.#checker.getDeclaredTypeOfSymbol(sym);
    // Printed as a node, so object types come out one member per line.
    const node = this.#checker.typeToTypeNode(
      type,
      undefined,
      NODE_FLAGS |
        ts.NodeBuilderFlags.InTypeAlias |
        ts.NodeBuilderFlags.MultilineObjectLiterals |
        ts.NodeBuilderFlags.UseAliasDefinedOutsideCurrentScope,
    );
    const text = node
      ? this.#printer.printNode(ts.EmitHint.Unspecified, node, this.#scratch)
      : this.#type(type);
    return this.#clean(
      `type ${name}${this.#typeParameters(sym)} = ${text.replace(/^((?: {4})+)/gm, (m) => ' '.repeat(m.length / 2))};`,
    );
  }

  #function(name: string, sym: ts.Symbol): string {
    return this.#checker
      .getTypeOfSymbol(sym)
      .getCallSignatures()
      .map((sig) => `function ${name}${this.#signature(sig)};`)
      .join('\n');
  }

  #enum(name: string, sym: ts.Symbol): string {
    const members = (sym.declarations ?? []).filter(ts.isEnumDeclaration).flatMap((d) => [...d.members]);
    return `enum ${name}${this.#body(members.map((m) => `${m.name.getText()} = ${JSON.stringify(this.#checker.getConstantValue(m))},`))}`;
  }

  #namespace(name: string, sym: ts.Symbol): string {
    const names = this.#checker.getExportsOfModule(sym).map((s) => s.name);
    return `namespace ${name}${this.#body(names.sort().map((n) => `${n};`))}`;
  }
}

function reportText(entry: Entry, root: string, names: [string, string, string][]): string {
  const source = path.relative(root, entry.source).split(path.sep).join('/');
  const lines = [
    `# API report: \`${entry.specifier}\``,
    '',
    `Generated by \`npm run api:report\` from \`${source}\` (package.json \`exports["${entry.subpath}"]\`); do not edit it by hand.`,
    'When this file changes, the public API changed: check that the change is intended (a removed name or a',
    'narrower signature breaks users), run `npm run api:report`, and commit this file with the change.',
    'The tests (`api:report --check`) fail while it is out of date.',
    '',
    `${names.length} exported names.`,
  ];
  for (const [name, kind, shape] of names)
    lines.push('', `## \`${name}\` (${kind})`, '', '```ts', shape, '```');
  return lines.join('\n') + '\n';
}

/** The text as the repo's Prettier writes it: `format:check` covers api/, and long signatures wrap. */
async function formatted(root: string, file: string, text: string): Promise<string> {
  const prettier = await import('prettier');
  const filepath = path.join(root, file);
  return prettier.format(text, { ...(await prettier.resolveConfig(filepath)), filepath });
}

/** A report split into its header and one section per exported name. */
function sections(text: string): { header: string; names: Map<string, string> } {
  const [header, ...rest] = text.split(/^(?=## `)/m);
  const names = new Map<string, string>();
  for (const s of rest) names.set(/^## `([^`]+)`/.exec(s)![1]!, s.trim());
  return { header: header ?? '', names };
}

/** Readable differences between the report on disk and the generated one, or [] if equal. */
function compare(onDisk: string, generated: string): string[] {
  if (onDisk === generated) return [];
  const a = sections(onDisk);
  const b = sections(generated);
  const out: string[] = [];
  const added = [...b.names.keys()].filter((n) => !a.names.has(n));
  const removed = [...a.names.keys()].filter((n) => !b.names.has(n));
  if (added.length) out.push(`added: ${added.join(', ')}`);
  if (removed.length) out.push(`removed: ${removed.join(', ')}`);
  for (const [name, text] of b.names) {
    const old = a.names.get(name);
    if (old === undefined || old === text) continue;
    out.push(`changed: ${name}`);
    const oldLines = new Set(old.split('\n'));
    const newLines = new Set(text.split('\n'));
    const diff = [
      ...[...oldLines].filter((l) => !newLines.has(l)).map((l) => `  - ${l}`),
      ...[...newLines].filter((l) => !oldLines.has(l)).map((l) => `  + ${l}`),
    ];
    out.push(...diff.slice(0, 8), ...(diff.length > 8 ? [`  ... ${diff.length - 8} more line(s)`] : []));
  }
  if (out.length === 0) out.push('the header or layout differs');
  return out;
}

async function main(): Promise<number> {
  const { root, check } = parseArgs(process.argv.slice(2));
  const entries = entryPoints(root);
  for (const e of entries)
    if (!existsSync(e.source))
      throw new UsageError(`exports["${e.subpath}"]: ${path.relative(root, e.source)} does not exist`);
  const program = ts.createProgram(
    entries.map((e) => e.source),
    compilerOptions(root),
  );
  // A report of code that does not compile would record `any` for whatever is broken.
  const diagnostics = entries.flatMap((e) => {
    const sf = program.getSourceFile(e.source)!;
    return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
  });
  if (diagnostics.length > 0)
    throw new UsageError(
      'the entry points do not compile; fix these first:\n' +
        ts.formatDiagnostics(diagnostics, {
          getCanonicalFileName: (f) => f,
          getCurrentDirectory: () => root,
          getNewLine: () => '\n',
        }),
    );
  const renderer = new Renderer(program, root);
  const generated = new Map<string, string>();
  for (const e of entries)
    generated.set(
      e.report,
      await formatted(root, e.report, reportText(e, root, renderer.exportsOf(e.source))),
    );
  const apiDir = path.join(root, 'api');
  const onDisk = existsSync(apiDir)
    ? readdirSync(apiDir)
        .filter((f) => REPORT.test(f))
        .map((f) => `api/${f}`)
    : [];
  const stale = onDisk.filter((f) => !generated.has(f));

  if (!check) {
    mkdirSync(apiDir, { recursive: true });
    for (const [file, text] of generated) writeFileSync(path.join(root, file), text);
    for (const f of stale) rmSync(path.join(root, f));
    const counts = entries.map((e) => `${e.specifier} ${sections(generated.get(e.report)!).names.size}`);
    console.log(
      `api-report: wrote ${generated.size} report(s) (${counts.join(', ')})` +
        (stale.length ? `; removed ${stale.join(', ')}` : ''),
    );
    return 0;
  }

  const problems: string[] = [];
  for (const e of entries) {
    const file = path.join(root, e.report);
    if (!existsSync(file)) {
      problems.push(`${e.specifier}: no ${e.report} yet (a new entry point)`);
      continue;
    }
    const diff = compare(readFileSync(file, 'utf8'), generated.get(e.report)!);
    if (diff.length) problems.push(`${e.specifier} (${e.report}):`, ...diff.map((l) => `  ${l}`));
  }
  for (const f of stale) problems.push(`${f}: no entry point in package.json exports has this report`);
  if (problems.length === 0) {
    console.log(`api-report: the ${entries.length} API report(s) in api/ are up to date`);
    return 0;
  }
  console.error(
    'api-report: the public API differs from the reports in api/. If the change is intended, run\n' +
      '`npm run api:report` and commit the api/ changes with it; otherwise undo the API change.\n',
  );
  for (const p of problems) console.error(`  ${p}`);
  return 1;
}

try {
  process.exitCode = await main();
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  console.error(`api-report: ${e.message}`);
  process.exitCode = 2;
}
