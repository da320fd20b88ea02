import knex, { type Knex } from 'knex';

/** The real servers every test runs against (override with env for other machines). */
export const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
};
export const MARIA = {
  host: process.env.MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.MYSQL_PORT ?? 3306),
  user: process.env.MYSQL_USER ?? 'root',
  password: process.env.MYSQL_PASSWORD ?? '',
};

export type Engine = 'pg' | 'mariadb';

export function pgConfig(database: string, port = PG.port): Knex.Config {
  return { client: 'pg', connection: { ...PG, port, database }, pool: { min: 0, max: 10 } };
}

export function mariaConfig(database: string, port = MARIA.port): Knex.Config {
  return {
    client: 'mysql2',
    connection: { ...MARIA, port, database, timezone: 'Z', supportBigNumbers: true, dateStrings: false },
    pool: { min: 0, max: 10 },
  };
}

export function config(engine: Engine, database: string, port?: number): Knex.Config {
  return engine === 'pg' ? pgConfig(database, port) : mariaConfig(database, port);
}

/** Drops and creates a database, so that each test file starts from nothing. */
export async function freshDatabase(engine: Engine, name: string): Promise<void> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad test database name ${name}`);
  const admin = engine === 'pg' ? knex(pgConfig('postgres')) : knex({ ...mariaConfig(''), connection: { ...MARIA } });
  try {
    if (engine === 'pg') {
      await admin.raw(`drop database if exists "${name}" with (force)`);
      await admin.raw(`create database "${name}"`);
    } else {
      await admin.raw(`drop database if exists \`${name}\``);
      await admin.raw(`create database \`${name}\` character set utf8mb4`);
    }
  } finally {
    await admin.destroy();
  }
}

/** A fresh database and a Knex on it. */
export async function openFresh(engine: Engine, name: string, port?: number): Promise<Knex> {
  await freshDatabase(engine, name);
  return knex(config(engine, name, port));
}

/** The three directions the issue asks for. */
export const PAIRS: ReadonlyArray<readonly [Engine, Engine]> = [
  ['pg', 'pg'],
  ['pg', 'mariadb'],
  ['mariadb', 'pg'],
];

/** Polls until `check` returns true (tests wait for conditions, never sleep blindly). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
