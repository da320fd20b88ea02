import type { Knex } from 'knex';
import { ConfigError } from './errors.js';

/**
 * What a database can do, as small readonly flags (Kysely style), so the rest of the code
 * asks `dialect.insertReturning` instead of comparing driver names.
 */
export interface Dialect {
  readonly name: 'postgres' | 'mysql' | 'mariadb' | 'pglite';
  readonly family: 'postgres' | 'mysql';
  /** `INSERT ... RETURNING` (PostgreSQL, MariaDB ≥ 10.5). */
  readonly insertReturning: boolean;
  /** `UPDATE ... RETURNING` (PostgreSQL only). */
  readonly updateReturning: boolean;
  /** `DELETE ... RETURNING` (PostgreSQL, MariaDB ≥ 10.5). */
  readonly deleteReturning: boolean;
  /** Knex compiles `.returning()` itself (otherwise RETURNING must be appended to the SQL). */
  readonly knexReturning: boolean;
}

const cache = new WeakMap<Knex, Dialect>();

/** Identifies the database behind a Knex instance (one query, cached). */
export async function detectDialect(knex: Knex): Promise<Dialect> {
  const known = cache.get(knex);
  if (known) return known;
  const client = String((knex.client as { config?: { client?: unknown } }).config?.client ?? '');
  const driver = (knex.client as { dialect?: string }).dialect ?? client;
  let dialect: Dialect;
  if (/pglite/i.test(client) || /pglite/i.test(knex.client.constructor.name)) {
    dialect = pgDialect('pglite');
  } else if (driver === 'postgresql' || driver === 'pg' || /postgres|^pg$/i.test(client)) {
    dialect = pgDialect('postgres');
  } else if (driver === 'mysql' || /mysql|maria/i.test(client)) {
    const rows = await knex.raw('select version() as v');
    const version = String((rows as [Array<{ v: string }>])[0]?.[0]?.v ?? '');
    const maria = /mariadb/i.test(version);
    const [maj = 0, min = 0] = version.split('.').map((n) => Number.parseInt(n, 10));
    const returning = maria && (maj > 10 || (maj === 10 && min >= 5));
    dialect = {
      name: maria ? 'mariadb' : 'mysql',
      family: 'mysql',
      insertReturning: returning,
      updateReturning: false,
      deleteReturning: returning,
      knexReturning: false,
    };
  } else {
    throw new ConfigError(
      'UNSUPPORTED_DATABASE',
      `Knex client "${client || driver}" is not supported (PostgreSQL, PGlite, MySQL, MariaDB)`,
    );
  }
  cache.set(knex, dialect);
  return dialect;
}

function pgDialect(name: 'postgres' | 'pglite'): Dialect {
  return {
    name,
    family: 'postgres',
    insertReturning: true,
    updateReturning: true,
    deleteReturning: true,
    knexReturning: true,
  };
}
