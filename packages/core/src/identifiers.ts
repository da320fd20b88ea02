import { ConfigError } from './errors.js';

const IDENT = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/**
 * Identifiers come only from configuration and introspection, never from requests; they are
 * still checked here so that a typo or an injection in config fails at start-up, and Knex
 * quotes them when it builds SQL.
 */
export function checkIdentifier(name: unknown, what: string, table?: string): string {
  if (typeof name !== 'string') {
    throw new ConfigError('IDENTIFIER_INVALID', `${what} must be a string, got ${typeof name}`, {
      ...(table === undefined ? {} : { table }),
    });
  }
  const parts = name.split('.');
  if (parts.length > 2 || !parts.every((p) => IDENT.test(p))) {
    throw new ConfigError(
      'IDENTIFIER_INVALID',
      `${what} "${name}" is not a valid identifier (letters, digits, _ and $, optionally schema.name)`,
      { ...(table === undefined ? {} : { table }) },
    );
  }
  return name;
}

/** Splits `schema.table` into its parts. */
export function splitQualified(name: string): { schema: string | undefined; table: string } {
  const dot = name.indexOf('.');
  return dot < 0 ? { schema: undefined, table: name } : { schema: name.slice(0, dot), table: name.slice(dot + 1) };
}
