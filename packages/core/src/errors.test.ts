import { describe, expect, it } from 'vitest';
import { safeReason } from './errors.js';

const err = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});

describe('safeReason keeps codes and names, drops values', () => {
  it.each([
    ["Duplicate entry 'alice@example.com' for key 'email'", 'ER_DUP_ENTRY', 'alice@example.com'],
    [
      'duplicate key value violates unique constraint "users_email_key" Key (email)=(alice@example.com)',
      '23505',
      'alice@example.com',
    ],
    ['invalid input syntax for type integer: "secret-42"', '22P02', 'secret-42'],
    [
      "insert into `t` (`a`) values (?) - Incorrect integer value: 'secret-42' for column `db`.`t`.`a` at row 1",
      'ER_TRUNCATED',
      'secret-42',
    ],
  ])('%s', (message, code, secret) => {
    const r = safeReason(err(message, code));
    expect(r).not.toContain(secret);
    expect(r.startsWith(`${code}:`)).toBe(true);
  });

  it('keeps column and constraint names', () => {
    expect(safeReason(err("Data too long for column 'body' at row 1", 'ER_DATA_TOO_LONG'))).toContain("column 'body'");
    expect(safeReason(err('value too long for type character varying(12)', '22001'))).toContain(
      'character varying(12)',
    );
  });
});
