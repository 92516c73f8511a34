import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

// Adapters keep their own error classes next to their code; the codes form one catalogue. The
// classes are found by the type checker, not listed by hand, so a new adapter's errors cannot
// escape these checks: any class in src/ whose base-class chain reaches Error counts.

const root = fileURLToPath(new URL('..', import.meta.url));
const SLUICE_ERROR = { file: 'src/core/errors.ts', name: 'SluiceError' };

interface ErrorClass {
  name: string;
  file: string; // relative to the root
  line: number;
  exportedAs: string | undefined; // the module's export name, if it exports the class
  extendsSluiceError: boolean;
  abstract: boolean;
  sampleArgs: () => unknown[]; // constructor arguments of the declared types
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? tsFiles(path.join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [path.join(dir, e.name)]
        : [],
  );
}

function findErrorClasses(): ErrorClass[] {
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) =>
        assert.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    },
  )!;
  const program = ts.createProgram(tsFiles(path.join(root, 'src')), { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const resolve = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);

  /** The symbols of the base classes, nearest first. */
  const bases = (sym: ts.Symbol): ts.Symbol[] => {
    const out: ts.Symbol[] = [];
    for (let t = checker.getDeclaredTypeOfSymbol(sym); ;) {
      const base = t.isClassOrInterface() ? checker.getBaseTypes(t)[0]?.getSymbol() : undefined;
      if (!base || out.includes(base)) return out;
      out.push(base);
      t = checker.getDeclaredTypeOfSymbol(base);
    }
  };
  const isLibError = (s: ts.Symbol) =>
    s.name === 'Error' &&
    (s.declarations ?? []).some((d) => program.isSourceFileDefaultLibrary(d.getSourceFile()));
  const isSluiceError = (s: ts.Symbol) =>
    s.name === SLUICE_ERROR.name &&
    (s.declarations ?? []).some((d) => path.relative(root, d.getSourceFile().fileName) === SLUICE_ERROR.file);

  /** A value of a declared type, good enough for a constructor that only stores and formats it. */
  const sample = (type: ts.Type): unknown => {
    if (type.isUnion()) {
      // Prefer a primitive member: `number | Date` is more likely formatted than inspected.
      const members = type.types.filter((t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)));
      const member = members.find((t) => !(t.flags & ts.TypeFlags.Object)) ?? members[0];
      return member ? sample(member) : undefined;
    }
    if (type.isStringLiteral() || type.isNumberLiteral()) return type.value;
    if (type.flags & ts.TypeFlags.BooleanLiteral) return checker.typeToString(type) === 'true';
    if (type.flags & ts.TypeFlags.StringLike) return 'x';
    if (type.flags & ts.TypeFlags.NumberLike) return 1;
    if (type.flags & ts.TypeFlags.Boolean) return false;
    if (type.flags & ts.TypeFlags.BigIntLike) return 1n;
    if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return new Error('sample cause');
    if (type.getSymbol()?.name === 'Date') return new Date(0);
    if (type.getCallSignatures().length > 0) return () => undefined;
    if (checker.isArrayLikeType(type)) return [];
    return {};
  };

  const found: ErrorClass[] = [];
  for (const sf of program.getSourceFiles()) {
    const file = path.relative(root, sf.fileName).split(path.sep).join('/');
    if (!file.startsWith('src/')) continue;
    const moduleSymbol = checker.getSymbolAtLocation(sf);
    const exports = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
    const visit = (node: ts.Node): void => {
      ts.forEachChild(node, visit);
      if (!ts.isClassDeclaration(node) || !node.name) return;
      const sym = checker.getSymbolAtLocation(node.name);
      if (!sym) return;
      const chain = bases(sym);
      if (!chain.some(isLibError)) return;
      const ctor = checker.getTypeOfSymbol(sym).getConstructSignatures()[0];
      found.push({
        name: node.name.text,
        file,
        line: sf.getLineAndCharacterOfPosition(node.name.getStart(sf)).line + 1,
        exportedAs: exports.find((e) => resolve(e).declarations?.includes(node))?.name,
        extendsSluiceError: chain.some(isSluiceError),
        abstract: (ts.getCombinedModifierFlags(node) & ts.ModifierFlags.Abstract) !== 0,
        sampleArgs: () => (ctor?.getParameters() ?? []).map((p) => sample(checker.getTypeOfSymbol(p))),
      });
    };
    visit(sf);
  }
  return found;
}

const found = findErrorClasses();
const where = (c: ErrorClass) => `${c.name} (${c.file}:${c.line})`;
// SluiceError is the root of the catalogue; abstract bases declare no code of their own.
const concrete = found.filter(
  (c) => !c.abstract && !(c.name === SLUICE_ERROR.name && c.file === SLUICE_ERROR.file),
);

/** The exported, concrete classes as loaded at run time; only modules declaring error classes are imported. */
async function loadClasses(): Promise<
  { c: ErrorClass; ctor: { code?: unknown } & (new (...a: unknown[]) => object) }[]
> {
  const out = [];
  for (const c of concrete.filter((x) => x.exportedAs)) {
    const mod = (await import(pathToFileURL(path.join(root, c.file)).href)) as Record<string, unknown>;
    out.push({ c, ctor: mod[c.exportedAs!] as { code?: unknown } & (new (...a: unknown[]) => object) });
  }
  return out;
}

it('the search finds the error classes of the core, the adapters and the CLI', () => {
  const names = new Set(found.map((c) => c.name));
  for (const n of ['SluiceError', 'InvalidOptionError', 'KafkaProducerFencedError', 'OffsetStoreAccessError'])
    assert.ok(names.has(n), `${n} not found among ${[...names].join(', ')}`);
});

it('every error class in src extends SluiceError', () => {
  const strays = concrete.filter((c) => !c.extendsSluiceError).map(where);
  assert.deepEqual(
    strays,
    [],
    'extend SluiceError (src/core/errors.ts) so users can catch every Sluice error at once',
  );
});

it('every error class in src is exported from its module, so users can instanceof it', () => {
  const hidden = found.filter((c) => !c.exportedAs).map(where);
  assert.deepEqual(hidden, [], 'export these classes from the module that declares them');
});

it('every error class across the project has its own stable SLUICE_ code', async () => {
  const classes = await loadClasses();
  assert.ok(classes.length >= 20, `found ${classes.length} classes`);
  const codes = new Map<string, string>();
  for (const { c, ctor } of classes) {
    assert.equal(typeof ctor, 'function', `${where(c)} is not exported at run time as ${c.exportedAs}`);
    assert.match(String(ctor.code), /^SLUICE_[A-Z_]+$/, `${where(c)} has static code ${String(ctor.code)}`);
    assert.ok(
      !codes.has(String(ctor.code)),
      `${c.name} and ${codes.get(String(ctor.code))} share ${String(ctor.code)}`,
    );
    codes.set(String(ctor.code), c.name);
  }
});

it('an error instance carries the same code as its class', async () => {
  for (const { c, ctor } of await loadClasses()) {
    const args = c.sampleArgs();
    let error: { code?: unknown };
    try {
      error = Reflect.construct(ctor, args) as { code?: unknown };
    } catch (e) {
      assert.fail(
        `${where(c)} could not be constructed from sample arguments ${JSON.stringify(args)}: ${String(e)}`,
      );
    }
    assert.ok(error instanceof Error, `${where(c)} instances are not Errors`);
    assert.match(
      String(error.code),
      /^SLUICE_[A-Z_]+$/,
      `${where(c)} instance has code ${String(error.code)}`,
    );
    assert.equal(error.code, ctor.code, `${where(c)}: instance code differs from the static code`);
  }
});
