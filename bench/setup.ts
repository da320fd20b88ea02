// Shared setup for the bench scripts: server address, fresh databases, the `items` table shape.
import knex, { type Knex } from 'knex';

export const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
};

/**
 * BENCH_SYNCHRONOUS_COMMIT=off (or local, …) sets `synchronous_commit` on every bench connection:
 * takes the WAL flush — and the disk's noise — out of every commit, leaving CPU and round trips.
 * Unset: the server's setting.
 */
export const SYNCHRONOUS_COMMIT = process.env.BENCH_SYNCHRONOUS_COMMIT || undefined;
if (
  SYNCHRONOUS_COMMIT !== undefined &&
  !['on', 'off', 'local', 'remote_write', 'remote_apply'].includes(SYNCHRONOUS_COMMIT)
)
  throw new Error(`BENCH_SYNCHRONOUS_COMMIT must be on, off, local, remote_write or remote_apply`);

type Conn = { query(sql: string, cb: (e: Error | null) => void): void };

export const pg = (database: string): Knex.Config => ({
  client: 'pg',
  connection: { ...PG, database },
  pool: {
    min: 1,
    max: 10,
    ...(SYNCHRONOUS_COMMIT && {
      afterCreate: (conn: Conn, done: (e: Error | null, c: Conn) => void) =>
        conn.query(`set synchronous_commit = ${SYNCHRONOUS_COMMIT}`, (e) => done(e, conn)),
    }),
  },
});

/** Rows seeded in every table; updates cycle over them. */
export const ROWS = 2000;
export const BASE_TIME = Date.UTC(2025, 0, 1);

export function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

export async function freshDatabase(name: string): Promise<void> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad bench database name ${name}`);
  const admin = knex(pg('postgres'));
  try {
    await admin.raw(`drop database if exists "${name}" with (force)`);
    await admin.raw(`create database "${name}"`);
  } finally {
    await admin.destroy();
  }
}

/** id serial pk, name varchar, qty int, price numeric, updated_at timestamptz; ROWS seeded rows. */
export async function createItems(db: Knex, name: string): Promise<void> {
  await db.schema.createTable(name, (t) => {
    t.increments('id').primary();
    t.string('name', 40).notNullable();
    t.integer('qty').notNullable();
    t.decimal('price', 10, 2);
    t.timestamp('updated_at', { useTz: true }).defaultTo(db.fn.now());
  });
  const seed = Array.from({ length: ROWS }, (_, i) => ({
    name: `item ${i}`,
    qty: i,
    price: (i / 7).toFixed(2),
    updated_at: new Date(BASE_TIME),
  }));
  await db.batchInsert(name, seed, 1000);
  await db.raw('vacuum analyze ??', [name]);
}
