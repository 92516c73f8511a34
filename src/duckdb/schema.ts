import { SqlSchemaError } from './errors.js';

/**
 * The column types a table can be given (explicitly in a {@link SqlSchema}, or by inference).
 * `JSON` holds any JSON value (arrays, objects); query it with `->`, `->>`, `json_extract`.
 */
export const SQL_TYPES = [
  'BOOLEAN',
  'INTEGER',
  'BIGINT',
  'HUGEINT',
  'DOUBLE',
  'VARCHAR',
  'TIMESTAMP',
  'TIMESTAMPTZ',
  'DATE',
  'BLOB',
  'JSON',
] as const;

/** One of {@link SQL_TYPES}. */
export type SqlType = (typeof SQL_TYPES)[number];

/**
 * Explicit columns of a table, in order: `{ category: 'VARCHAR', brand: 'VARCHAR', sales: 'BIGINT' }`.
 * Only these columns are loaded (other fields of the records are ignored; missing ones are NULL)
 * and values are checked, not coerced: a string in a BIGINT column is an error.
 */
export type SqlSchema = Readonly<Record<string, SqlType>>;

/** A table's columns as loaded: name and type, in order. */
export type SqlColumns = readonly { readonly name: string; readonly type: SqlType }[];

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INT128_MIN = -(2n ** 127n);
const INT128_MAX = 2n ** 127n - 1n;

/**
 * The fields of a record, as columns: an object's own enumerable properties; an array's items as
 * `_1`, `_2`, ... (Spark's tuple columns, so `[key, state]` pairs are `_1` and `_2`); any other
 * value (a string, a number, a Date, bytes) is one column named `value` (Spark's `Dataset[String]`).
 * `null` and `undefined` records are rows of NULLs.
 */
export function fieldsOf(record: unknown): [string, unknown][] {
  if (record === null || record === undefined) return [];
  if (Array.isArray(record)) return record.map((v, i): [string, unknown] => [`_${i + 1}`, v]);
  if (isStructured(record)) return Object.entries(record);
  return [['value', record]];
}

/** The value of column `name` in `record` (see {@link fieldsOf}). */
export function fieldOf(record: unknown, name: string): unknown {
  if (record === null || record === undefined) return undefined;
  if (Array.isArray(record)) {
    const m = /^_(\d+)$/.exec(name);
    return m ? record[Number(m[1]) - 1] : undefined;
  }
  if (isStructured(record)) {
    const v = (record as Record<string, unknown>)[name];
    // Only own fields: not `toString` & co. from the prototype (all functions, or `__proto__`).
    if (v === undefined || (typeof v !== 'function' && name !== '__proto__')) return v;
    return Object.prototype.propertyIsEnumerable.call(record, name) ? v : undefined;
  }
  return name === 'value' ? record : undefined;
}

/** A record that has fields (not a Date, bytes or a primitive). */
function isStructured(v: unknown): v is object {
  return typeof v === 'object' && v !== null && !(v instanceof Date) && !(v instanceof Uint8Array);
}

// Kinds of values seen in a column, as bits.
const K_BOOL = 1;
const K_INT = 2; // a safe-integer number
const K_DOUBLE = 4;
const K_BIGINT = 8;
const K_STRING = 16;
const K_DATE = 32;
const K_BYTES = 64;
const K_JSON = 128;

function kindOf(v: unknown): number {
  switch (typeof v) {
    case 'boolean':
      return K_BOOL;
    case 'number':
      return Number.isSafeInteger(v) ? K_INT : K_DOUBLE;
    case 'bigint':
      return K_BIGINT;
    case 'string':
      return K_STRING;
    case 'object':
      if (v instanceof Date) return K_DATE;
      if (v instanceof Uint8Array) return K_BYTES;
      return K_JSON;
    default:
      return 0; // function, symbol: refused by the caller
  }
}

/**
 * Infers each column's type from the records (column order: first appearance). Per column, from
 * its non-null values: booleans BOOLEAN; safe integers BIGINT; numbers with a fraction (or beyond
 * 2^53) DOUBLE, as are integers mixed with them; bigints BIGINT, or HUGEINT beyond 64 bits; strings
 * VARCHAR; Dates TIMESTAMP; bytes BLOB; arrays and objects JSON. A column of only NULLs is VARCHAR.
 * Any other mix (e.g. strings and numbers) becomes VARCHAR with the values as text, as Spark's
 * schema inference does.
 */
export function inferColumns(table: string, records: Iterable<unknown>): SqlColumns {
  const index = new Map<string, number>();
  const names: string[] = [];
  const kinds: number[] = [];
  const wide: boolean[] = []; // bigint columns with values beyond int64
  const see = (name: string, v: unknown): void => {
    let i = index.get(name);
    if (i === undefined) {
      i = names.length;
      index.set(name, i);
      names.push(name);
      kinds.push(0);
      wide.push(false);
    }
    if (v === null || v === undefined) return;
    const k = kindOf(v);
    if (k === 0) {
      throw new SqlSchemaError(
        table,
        'unsupported-value',
        `column '${name}' holds a ${typeof v}, which SQL cannot store`,
        'Map the records to plain data (strings, numbers, booleans, bigints, Dates, bytes, arrays, objects) first',
      );
    }
    if (k === K_BIGINT && ((v as bigint) < INT64_MIN || (v as bigint) > INT64_MAX)) wide[i] = true;
    kinds[i]! |= k;
  };
  for (const r of records) {
    if (r === null || r === undefined) continue;
    if (Array.isArray(r)) {
      for (let j = 0; j < r.length; j++) see(`_${j + 1}`, r[j]);
    } else if (isStructured(r)) {
      const keys = Object.keys(r);
      for (let j = 0; j < keys.length; j++) see(keys[j]!, (r as Record<string, unknown>)[keys[j]!]);
    } else {
      see('value', r);
    }
  }
  const columns = names.map((name, i) => ({ name, type: typeOfKinds(kinds[i]!, wide[i]!) }));
  checkColumnNames(table, columns);
  return columns;
}

function typeOfKinds(k: number, wide: boolean): SqlType {
  switch (k) {
    case 0:
      return 'VARCHAR';
    case K_BOOL:
      return 'BOOLEAN';
    case K_INT:
      return 'BIGINT';
    case K_DOUBLE:
    case K_INT | K_DOUBLE:
    case K_BIGINT | K_DOUBLE:
    case K_INT | K_BIGINT | K_DOUBLE:
      return 'DOUBLE';
    case K_BIGINT:
    case K_INT | K_BIGINT:
      return wide ? 'HUGEINT' : 'BIGINT';
    case K_STRING:
      return 'VARCHAR';
    case K_DATE:
      return 'TIMESTAMP';
    case K_BYTES:
      return 'BLOB';
    case K_JSON:
      return 'JSON';
    default:
      return 'VARCHAR';
  }
}

/** Checks an explicit schema (an object of types by column, or an array of columns) and returns its columns. */
export function columnsOfSchema(table: string, schema: SqlSchema | SqlColumns): SqlColumns {
  if (typeof schema !== 'object' || schema === null) {
    throw new SqlSchemaError(
      table,
      'invalid-schema',
      `the schema must be an object of column types, got ${describe(schema)}`,
      "Pass e.g. { schema: { ip: 'VARCHAR', hits: 'BIGINT' } }",
    );
  }
  const entries: [unknown, unknown][] = Array.isArray(schema)
    ? (schema as readonly unknown[]).map((c) => {
        const col = (typeof c === 'object' && c !== null ? c : {}) as { name?: unknown; type?: unknown };
        return [col.name, col.type];
      })
    : Object.entries(schema);
  const columns = entries.map(([name, type]) => {
    if (typeof name !== 'string') {
      throw new SqlSchemaError(
        table,
        'invalid-schema',
        `a column has the name ${describe(name)}`,
        'Give each column a string name: [{ name, type }, ...]',
      );
    }
    if (!(SQL_TYPES as readonly unknown[]).includes(type)) {
      throw new SqlSchemaError(
        table,
        'invalid-schema',
        `column '${name}' has type ${describe(type)}`,
        `Use one of ${SQL_TYPES.join(', ')}`,
      );
    }
    return { name, type: type as SqlType };
  });
  if (columns.length === 0) {
    throw new SqlSchemaError(
      table,
      'invalid-schema',
      'the schema has no columns',
      'Give at least one column',
    );
  }
  checkColumnNames(table, columns);
  return columns;
}

function checkColumnNames(table: string, columns: SqlColumns): void {
  const seen = new Map<string, string>();
  for (const { name } of columns) {
    if (name === '') {
      throw new SqlSchemaError(
        table,
        'invalid-schema',
        'a column has an empty name',
        'Give every field a name',
      );
    }
    const folded = name.toLowerCase();
    const other = seen.get(folded);
    if (other !== undefined) {
      throw new SqlSchemaError(
        table,
        'duplicate-column',
        `columns '${other}' and '${name}' differ only in case, and SQL names ignore case`,
        'Rename one of the fields, or pass a schema that keeps one of them',
      );
    }
    seen.set(folded, name);
  }
}

/** Converts one field to what a column of some type stores; `row` is for the error message. */
export type ColumnConverter = (value: unknown, row: number) => unknown;

/**
 * The converter of column `column` of `type`: a field value to the JS value DuckDB's converter
 * takes for that type (null for SQL NULL), or a {@link SqlSchemaError} saying which row and column
 * does not fit. Made once per column: it runs for every value.
 */
export function columnConverter(table: string, column: string, type: SqlType): ColumnConverter {
  const bad = (value: unknown, row: number, what = `${describe(value)} does not fit`): never => {
    throw new SqlSchemaError(
      table,
      typeof value === 'function' || typeof value === 'symbol' ? 'unsupported-value' : 'value-does-not-fit',
      `row ${row + 1}, column '${column}' (${type}): ${what}`,
      'Convert the field before the query, or declare the column with a type that holds it',
    );
  };
  switch (type) {
    case 'BOOLEAN':
      return (v, row) => (v === null || v === undefined ? null : typeof v === 'boolean' ? v : bad(v, row));
    case 'INTEGER':
      return (v, row) => {
        if (v === null || v === undefined) return null;
        if (typeof v === 'number' && Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX) return v;
        if (typeof v === 'bigint' && v >= BigInt(INT32_MIN) && v <= BigInt(INT32_MAX)) return Number(v);
        return bad(v, row);
      };
    case 'BIGINT':
      return (v, row) => {
        if (v === null || v === undefined) return null;
        if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
        if (typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX) return v;
        return bad(v, row);
      };
    case 'HUGEINT':
      return (v, row) => {
        if (v === null || v === undefined) return null;
        if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
        if (typeof v === 'bigint' && v >= INT128_MIN && v <= INT128_MAX) return v;
        return bad(v, row);
      };
    case 'DOUBLE':
      return (v, row) => {
        if (v === null || v === undefined) return null;
        if (typeof v === 'number') return v;
        if (typeof v === 'bigint') return Number(v);
        return bad(v, row);
      };
    case 'VARCHAR':
      return (v, row) =>
        v === null || v === undefined ? null : typeof v === 'string' ? v : (asText(v) ?? bad(v, row));
    case 'TIMESTAMP':
    case 'TIMESTAMPTZ':
    case 'DATE':
      return (v, row) => {
        if (v === null || v === undefined) return null;
        const d = typeof v === 'number' ? new Date(v) : v instanceof Date ? v : undefined;
        if (!d) return bad(v, row);
        if (Number.isNaN(d.getTime())) return bad(v, row, 'an invalid Date does not fit');
        return d;
      };
    case 'BLOB':
      return (v, row) => (v === null || v === undefined ? null : v instanceof Uint8Array ? v : bad(v, row));
    case 'JSON':
      return (v, row) => {
        if (v === null || v === undefined) return null;
        if (typeof v === 'function' || typeof v === 'symbol') return bad(v, row);
        return jsonText(v);
      };
  }
}

/** A value as text for a VARCHAR column: strings as they are, other plain data printed. */
function asText(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(v);
    case 'object':
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v.toISOString();
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
      return jsonText(v);
    default:
      return undefined;
  }
}

/** JSON text of a value; bigints become numbers when safe, else strings (JSON has no bigint). */
export function jsonText(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'bigint' ? (Number.isSafeInteger(Number(x)) ? Number(x) : x.toString()) : x,
  );
}

/** `name TYPE, ...` for messages. */
export function describeColumns(columns: SqlColumns): string {
  return columns.map((c) => `${c.name} ${c.type}`).join(', ');
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol') return 'a symbol';
  if (v instanceof Date) return `Date ${Number.isNaN(v.getTime()) ? 'Invalid' : v.toISOString()}`;
  if (v instanceof Uint8Array) return `${v.byteLength} bytes`;
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    return Object.prototype.toString.call(v);
  }
}
