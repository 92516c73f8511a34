/**
 * State values as JSON, for every state store that serialises (the checkpoint directory, the SQL
 * state tables): what JSON cannot say (undefined, bigint, NaN, Date, Map, Set, bytes) is tagged so
 * that a restored value equals the value checkpointed.
 */
const TAG = '$sluice';

/**
 * A state value as plain JSON. JSON values stay as they are; `undefined`, bigint, NaN and
 * ±Infinity, Date, Map, Set, Buffer and Uint8Array become `{ "$sluice": <type>, ... }`, and an
 * object that has a `$sluice` key of its own is wrapped as `{ "$sluice": "object", "value": ... }`.
 * Other objects are stored by their own enumerable properties (as JSON.stringify would, `toJSON`
 * honoured). Functions and symbols cannot be stored: a TypeError names where one was found.
 */
export function encodeStateValue(value: unknown, where = 'state'): unknown {
  const seen = new Set<object>();
  const enc = (v: unknown, at: string): unknown => {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return v;
      case 'number':
        return Number.isFinite(v) ? v : { [TAG]: 'number', value: String(v) };
      case 'undefined':
        return { [TAG]: 'undefined' };
      case 'bigint':
        return { [TAG]: 'bigint', value: v.toString() };
      case 'function':
      case 'symbol':
        throw new TypeError(`Cannot checkpoint the ${where}: a ${typeof v} at ${at}`);
    }
    if (v === null) return null;
    const o = v as object;
    if (seen.has(o)) throw new TypeError(`Cannot checkpoint the ${where}: a circular reference at ${at}`);
    seen.add(o);
    try {
      if (Buffer.isBuffer(o)) return { [TAG]: 'Buffer', base64: o.toString('base64') };
      if (o instanceof Uint8Array)
        return {
          [TAG]: 'Uint8Array',
          base64: Buffer.from(o.buffer, o.byteOffset, o.byteLength).toString('base64'),
        };
      if (o instanceof Date) return { [TAG]: 'Date', value: o.getTime() };
      if (o instanceof Map)
        return {
          [TAG]: 'Map',
          entries: [...o].map(([k, x], i) => [enc(k, `${at}.<key ${i}>`), enc(x, `${at}.<value ${i}>`)]),
        };
      if (o instanceof Set) return { [TAG]: 'Set', values: [...o].map((x, i) => enc(x, `${at}.<${i}>`)) };
      if (Array.isArray(o)) return o.map((x, i) => enc(x, `${at}[${i}]`));
      const toJSON = (o as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') return enc(toJSON.call(o), at);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(o)) define(out, k, enc(x, `${at}.${k}`));
      return Object.hasOwn(o, TAG) ? { [TAG]: 'object', value: out } : out;
    } finally {
      seen.delete(o);
    }
  };
  return enc(value, '$');
}

/** The inverse of {@link encodeStateValue}. */
export function decodeStateValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(decodeStateValue);
  const o = value as Record<string, unknown>;
  if (typeof o[TAG] === 'string') {
    switch (o[TAG]) {
      case 'undefined':
        return undefined;
      case 'number':
        return Number(o.value);
      case 'bigint':
        return BigInt(o.value as string);
      case 'Buffer':
        return Buffer.from(o.base64 as string, 'base64');
      case 'Uint8Array':
        return new Uint8Array(Buffer.from(o.base64 as string, 'base64'));
      case 'Date':
        return new Date(o.value as number);
      case 'Map':
        return new Map(
          (o.entries as [unknown, unknown][]).map(([k, v]) => [decodeStateValue(k), decodeStateValue(v)]),
        );
      case 'Set':
        return new Set((o.values as unknown[]).map(decodeStateValue));
      case 'object':
        return decodePlain(o.value as Record<string, unknown>);
    }
  }
  return decodePlain(o);
}

function decodePlain(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) define(out, k, decodeStateValue(v));
  return out;
}

/** `o[k] = v`, also for a key named `__proto__` (an own property, as JSON.parse makes it). */
function define(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
