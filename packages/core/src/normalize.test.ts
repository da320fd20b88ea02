import { describe, expect, it } from 'vitest';
import { canonicalJson, diffRows, sameValue } from './normalize.js';

describe('cross-engine normalisation', () => {
  it.each([
    ['decimals with different scale', '12.50', '12.5', 'value'],
    ['a number and its decimal string', 12.5, '12.50', 'value'],
    ['big integers as string and bigint', '9007199254740993', 9007199254740993n, 'value'],
    ['booleans and tinyint', true, 1, 'boolean'],
    ['false and 0', false, '0', 'boolean'],
    ['JSON in any key order', { a: 1, b: { c: 2, d: [1, 2] } }, '{"b":{"d":[1,2],"c":2},"a":1}', 'json'],
    ['padded fixed-width text', 'ab        ', 'ab', 'fixed-char'],
    [
      'a timestamp that lost its milliseconds',
      new Date('2026-01-02T03:04:05.678Z'),
      new Date('2026-01-02T03:04:05.000Z'),
      'timestamp',
    ],
    ['a timestamp as string and Date', '2026-01-02 03:04:05', new Date('2026-01-02T03:04:05Z'), 'timestamp'],
    ['null and undefined', null, undefined, 'value'],
  ] as const)('treats %s as equal', (_, a, b, kind) => {
    expect(sameValue(a, b, kind)).toBe(true);
  });

  it.each([
    ['different decimals', '12.50', '12.51', 'value'],
    ['true and 0', true, 0, 'boolean'],
    ['different JSON', { a: 1 }, { a: 2 }, 'json'],
    ['text with trailing spaces in a varchar', 'ab ', 'ab', 'value'],
    [
      'timestamps a second apart',
      new Date('2026-01-02T03:04:05.000Z'),
      new Date('2026-01-02T03:04:06.000Z'),
      'timestamp',
    ],
    ['a value and null', 'x', null, 'value'],
  ] as const)('tells %s apart', (_, a, b, kind) => {
    expect(sameValue(a, b, kind)).toBe(false);
  });

  it('reports differing column names only', () => {
    expect(diffRows({ id: 1, a: 'x', b: '1.0' }, { id: 1, a: 'y', b: '1' }, ['id', 'a', 'b'])).toEqual(['a']);
  });

  it('canonical JSON sorts keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: 1, c: 2 } })).toBe('{"a":{"c":2,"d":1},"b":1}');
  });
});
