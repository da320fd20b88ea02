import { describe, expect, it } from 'vitest';
import { splitWhere } from './statement.js';

describe('splitWhere', () => {
  it('keeps the WHERE tail and the parameters it uses', () => {
    const sql = 'UPDATE `items` SET `name` = ?, `qty` = qty + ? WHERE `qty` >= ? AND `name` <> ?';
    expect(splitWhere(sql, ['a', 1, 5, 'b'])).toEqual({
      clause: ' WHERE `qty` >= ? AND `name` <> ?',
      parameters: [5, 'b'],
    });
  });

  it('ignores WHERE and ? inside quotes and parentheses', () => {
    const sql = "UPDATE `t` SET `a` = 'x WHERE ?', `b` = (SELECT 1 FROM `u` WHERE `u`.`id` = ?) WHERE `id` IN (?, ?)";
    expect(splitWhere(sql, [1, 2, 3])).toEqual({ clause: ' WHERE `id` IN (?, ?)', parameters: [2, 3] });
  });

  it('a statement without WHERE covers the whole table', () => {
    expect(splitWhere('DELETE FROM `t`', [])).toEqual({ clause: '', parameters: [] });
  });

  it('refuses when placeholders and parameters disagree', () => {
    expect(splitWhere('DELETE FROM `t` WHERE `a` = ?', [])).toBeUndefined();
  });
});
