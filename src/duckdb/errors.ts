import { SluiceError } from '../core/errors.js';

/** Where a query error is: 0-based offset in the query text, 1-based line and column (UTF-16 units). */
export interface SqlErrorPosition {
  readonly offset: number;
  readonly line: number;
  readonly column: number;
}

/**
 * DuckDB refused or failed the query: a syntax error, an unknown table, column or function, a
 * type or conversion error, a missing parameter... `kind` is DuckDB's error type (`Parser`,
 * `Binder`, `Catalog`, `Conversion`, ...). When DuckDB says where (it does for most parser,
 * binder, catalog and conversion errors), `position` gives the line and column in the query text
 * and `excerpt` the line with a caret under that column; the message shows both.
 *
 * @example
 * ```ts
 * try {
 *   await sql.query({ t: rows }, 'select nope\nfrom t');
 * } catch (e) {
 *   if (e instanceof SqlError) console.error(e.code, e.kind, e.position?.line, e.position?.column);
 *   // SLUICE_SQL_QUERY Binder 1 8
 * }
 * ```
 */
export class SqlError extends SluiceError {
  static readonly code = 'SLUICE_SQL_QUERY';
  readonly code = SqlError.code;
  /** DuckDB's error type, e.g. `Parser`, `Binder`, `Catalog`, `Conversion`, `Invalid Input`. */
  readonly kind: string;
  /** DuckDB's own message, without the position. */
  readonly detail: string;
  /** The query text as given. */
  readonly query: string;
  /** Where in `query` the error is, when DuckDB says. */
  readonly position: SqlErrorPosition | undefined;
  /** The query line of the error with a caret under the column (empty without a position). */
  readonly excerpt: string;

  constructor(init: {
    kind: string;
    detail: string;
    query: string;
    position: SqlErrorPosition | undefined;
    tables: string;
    cause?: unknown;
  }) {
    const excerpt = init.position ? excerptAt(init.query, init.position) : '';
    const where = init.position ? ` at line ${init.position.line}, column ${init.position.column}` : '';
    const headline = `SQL ${init.kind} error${where}: ${init.detail}`;
    const hint = `Fix the query${init.tables ? `; its tables: ${init.tables}` : ''}`;
    super(headline, hint, { cause: init.cause });
    this.kind = init.kind;
    this.detail = init.detail;
    this.query = init.query;
    this.position = init.position;
    this.excerpt = excerpt;
    // The excerpt is several lines: keep it between the headline and the hint.
    this.message = [headline, ...(excerpt ? [excerpt] : []), hint].join('\n');
  }
}

/** Why a table could not be loaded. */
export type SqlSchemaProblem =
  | 'invalid-table-name'
  | 'invalid-schema'
  | 'duplicate-column'
  | 'no-columns'
  | 'value-does-not-fit'
  | 'unsupported-value';

/**
 * The records given as a table cannot be loaded into DuckDB: an invalid table name or schema, two
 * columns whose names differ only in case, a value that does not fit its column's type (explicit
 * schemas are not coerced), a value of a kind SQL cannot hold (a function, a symbol), or an empty
 * table whose columns are unknown (pass a `schema`).
 */
export class SqlSchemaError extends SluiceError {
  static readonly code = 'SLUICE_SQL_SCHEMA';
  readonly code = SqlSchemaError.code;
  constructor(
    readonly table: string,
    readonly problem: SqlSchemaProblem,
    message: string,
    hint: string,
    options?: { cause?: unknown },
  ) {
    super(`Table '${table}': ${message}`, hint, options);
  }
}

/** The engine was closed (explicitly, or with the context it was tied to): it runs no more queries. */
export class SqlEngineClosedError extends SluiceError {
  static readonly code = 'SLUICE_SQL_ENGINE_CLOSED';
  readonly code = SqlEngineClosedError.code;
  constructor() {
    super('The SQL engine is closed', 'Create a new SqlEngine, or close it only after its last query');
  }
}

/** What DuckDB's message says: its type, its text and, when given, the offset in the query. */
export interface ParsedDuckDBError {
  readonly kind: string;
  readonly detail: string;
  /** The offset DuckDB reports, in its own unit (see {@link locate}). */
  readonly offset: number | undefined;
}

/**
 * Reads a DuckDB error message. With `errors_as_json` (which the engine turns on) most messages are
 * `[<Type> Error: ]{"exception_type": ..., "exception_message": ..., "position": "17"}`; a few stay
 * plain text (`Invalid Input Error: ...`), sometimes with DuckDB's `LINE n:` excerpt, which is
 * dropped here (the engine draws its own).
 */
export function parseDuckDBError(message: string): ParsedDuckDBError {
  const brace = message.indexOf('{');
  if (brace >= 0) {
    try {
      const json = JSON.parse(message.slice(brace)) as Record<string, unknown>;
      if (typeof json.exception_message === 'string') {
        const pos = Number(json.position);
        return {
          kind: typeof json.exception_type === 'string' ? json.exception_type : 'DuckDB',
          detail: json.exception_message.replace(/\s*\n\s*/g, ' ').trim(),
          offset: json.position !== undefined && Number.isInteger(pos) && pos >= 0 ? pos : undefined,
        };
      }
    } catch {
      // not JSON: fall through to the plain form
    }
  }
  const plain = /^(?:([A-Za-z ]+?) Error: )?([\s\S]*)$/.exec(message)!;
  const detail = plain[2]!.replace(/\n+LINE \d+:[\s\S]*$/, '');
  return {
    kind: plain[1] ?? 'DuckDB',
    detail: detail.replace(/\s*\n\s*/g, ' ').trim(),
    offset: undefined,
  };
}

/**
 * Where DuckDB's reported offset is in `text`. DuckDB counts in two units: its parser (syntax
 * errors) in characters (code points), the binder and the rest in UTF-8 bytes; the two agree on
 * ASCII text. When the message names the token (`at or near "x"`) and only one reading lands on
 * it, that reading wins; otherwise the unit follows the error kind.
 */
export function locate(text: string, error: ParsedDuckDBError): SqlErrorPosition | undefined {
  if (error.offset === undefined) return undefined;
  const byCodePoint = codePointIndex(text, error.offset);
  const byByte = byteIndex(text, error.offset);
  let index = error.kind === 'Parser' ? byCodePoint : byByte;
  const near = /at or near "([^"]+)"/.exec(error.detail)?.[1]?.toLowerCase();
  if (near && byCodePoint !== byByte) {
    const at = (i: number) => text.slice(i, i + near.length).toLowerCase() === near;
    if (at(byCodePoint) && !at(byByte)) index = byCodePoint;
    else if (at(byByte) && !at(byCodePoint)) index = byByte;
  }
  return positionAt(text, index);
}

/** The UTF-16 index of the `n`th code point of `text` (its length if beyond). */
function codePointIndex(text: string, n: number): number {
  let index = 0;
  for (let i = 0; i < n && index < text.length; i++) index += text.codePointAt(index)! > 0xffff ? 2 : 1;
  return Math.min(index, text.length);
}

/** The UTF-16 index of UTF-8 byte offset `n` of `text` (its length if beyond). */
function byteIndex(text: string, n: number): number {
  const bytes = Buffer.from(text, 'utf8');
  return Math.min(text.length, bytes.subarray(0, Math.min(n, bytes.length)).toString('utf8').length);
}

/** Line and column (1-based, in UTF-16 units as JS strings count) of UTF-16 index `offset` in `text`. */
export function positionAt(text: string, offset: number): SqlErrorPosition {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - (before.lastIndexOf('\n') + 1) + 1;
  return { offset, line, column };
}

const EXCERPT_WIDTH = 100;

/**
 * The query line at `position`, prefixed with its number, and a caret under the column. Lines
 * longer than 100 characters are cut around the column (`...` marks the cuts); tabs count as one column.
 */
export function excerptAt(text: string, position: SqlErrorPosition): string {
  let lineText = (text.split('\n')[position.line - 1] ?? '').replace(/\r$/, '').replace(/\t/g, ' ');
  let col = position.column - 1;
  if (lineText.length > EXCERPT_WIDTH) {
    const start = Math.max(0, Math.min(col - EXCERPT_WIDTH / 2, lineText.length - EXCERPT_WIDTH));
    const end = start + EXCERPT_WIDTH;
    const head = start > 0 ? '...' : '';
    lineText = head + lineText.slice(start, end) + (end < lineText.length ? '...' : '');
    col = col - start + head.length;
  }
  const label = `  ${position.line} | `;
  return `${label}${lineText}\n${' '.repeat(label.length - 2)}| ${' '.repeat(Math.max(0, col))}^`;
}
