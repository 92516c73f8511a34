import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeStateValue, encodeStateValue } from '../../src/core/state-codec.js';

const roundTrip = (v: unknown) => decodeStateValue(JSON.parse(JSON.stringify(encodeStateValue(v))));

describe('state values as JSON', () => {
  it('keeps plain JSON values as they are', () => {
    const v = { a: [1, 'x', true, null], b: { c: 2.5 } };
    assert.deepEqual(encodeStateValue(v), v);
    assert.deepEqual(roundTrip(v), v);
  });

  it('round-trips what JSON cannot hold: bigint, undefined, NaN and infinities, Date, Map, Set, Buffer, Uint8Array', () => {
    const v = {
      big: 2n ** 70n,
      none: undefined,
      numbers: [NaN, Infinity, -Infinity],
      when: new Date(1_700_000_000_123),
      map: new Map<unknown, unknown>([[['k', 1], new Set(['a'])]]),
      bytes: Buffer.from([0, 1, 255]),
      raw: new Uint8Array([7, 8]),
    };
    const back = roundTrip(v) as typeof v;
    assert.deepEqual(back, v);
    assert.ok(Buffer.isBuffer(back.bytes));
    assert.ok(back.raw instanceof Uint8Array && !Buffer.isBuffer(back.raw));
  });

  it('keeps an object whose own key is the tag apart from a tagged value, and a __proto__ key as an own property', () => {
    const v = JSON.parse('{"tricky":{"$sluice":"Date","value":1},"__proto__":"own"}') as Record<
      string,
      unknown
    >;
    const back = roundTrip(v) as Record<string, unknown>;
    assert.deepEqual(back.tricky, { $sluice: 'Date', value: 1 });
    assert.ok(Object.hasOwn(back, '__proto__'));
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
  });

  it('refuses functions, symbols and cycles with a TypeError naming where they are', () => {
    assert.throws(
      () => encodeStateValue({ a: [{ f: () => 1 }] }, 'state of x'),
      /state of x: a function at \$\.a\[0\]\.f/,
    );
    assert.throws(() => encodeStateValue([Symbol('s')]), /a symbol at \$\[0\]/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => encodeStateValue(cyclic), /a circular reference at \$\.self/);
  });
});
