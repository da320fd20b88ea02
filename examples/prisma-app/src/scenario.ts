/**
 * The demo scenario shared by the Prisma and the TypeORM example — only the app differs:
 *
 *   1. fresh source (PostgreSQL) and target (MariaDB) databases, `items`/`item_tags` on both,
 *      history rows in the source;
 *   2. the app (with Midflight installed) and the traffic start in stage `off`;
 *   3. the flags move the migration to `dualwrite`: every write is now mirrored;
 *   4. backfill copies the history while traffic keeps going;
 *   5. traffic stops, the mirrors drain, verify compares both sides row by row.
 *
 * The databases are dropped and recreated: point it at scratch servers only. The report holds
 * counts and table names — never a row value.
 */

import {
  consoleLogger,
  defineMigration,
  type Engine,
  type Logger,
  type Migration,
  StaticFlags,
  startMigration,
} from '@midflight/core';
import { createConformanceSchema } from '@midflight/core/testing/schema';
import knex, { type Knex } from 'knex';
import type { RunningApp } from './http.js';
import { startTraffic, type Traffic, type TrafficReport } from './traffic.js';

/** The real local servers (override with the usual environment variables). */
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

export const TABLES = ['items', 'item_tags'] as const;

/** The migration both examples run: both tables, keyed by their primary keys. */
export function itemsMigration(name: string): Migration {
  return defineMigration({
    name,
    tables: { items: {}, item_tags: {} },
    mirror: { mode: 'await', deadlineMs: 100 },
    retry: { attempts: 10, backoffMs: 50, maxBackoffMs: 2_000 },
  });
}

export interface DemoOptions {
  /** Source database on PostgreSQL (dropped and recreated). */
  readonly sourceDatabase?: string;
  /** Target database on MariaDB (dropped and recreated). */
  readonly targetDatabase?: string;
  /** History items seeded in the source before the app starts. Default 2,000. */
  readonly seedRows?: number;
  /** Concurrent virtual users. Default 8. */
  readonly users?: number;
  /** Mean pause of each user between requests. Default 20 ms. */
  readonly thinkMs?: number;
  /** Traffic in stage `off` before the switch to `dualwrite`. Default 2 s. */
  readonly warmupMs?: number;
  /** Traffic after the backfill, before it stops. Default 3 s. */
  readonly afterMs?: number;
  /** Backfill chunk size. Default 250. */
  readonly chunkSize?: number;
  /** Pause between backfill chunks. Default 20 ms. */
  readonly pauseMs?: number;
  /** Where the progress lines go; `null` for none. Default stdout. */
  readonly out?: NodeJS.WritableStream | null;
  readonly logger?: Logger;
}

export interface TableReport {
  readonly table: string;
  readonly sourceRows: number;
  readonly targetRows: number;
  readonly missing: number;
  readonly extra: number;
  readonly different: number;
}

export interface DemoReport {
  readonly orm: string;
  readonly source: string;
  readonly target: string;
  readonly served: number;
  readonly failed: number;
  readonly failures: Readonly<Record<string, number>>;
  readonly byRoute: Readonly<Record<string, number>>;
  readonly backfilled: number;
  readonly tables: readonly TableReport[];
  /** missing + extra + different over all tables. */
  readonly differences: number;
  readonly deadLetters: number;
  /** Writes the adapter could not capture with their keys, and raw SQL writes (both 0 here). */
  readonly uncaptured: number;
  readonly elapsedMs: number;
  /** No failed request, no difference, no dead letter, no uncaptured write. */
  readonly ok: boolean;
}

/** What an example plugs into the scenario: its ORM, on the two databases, with Midflight installed. */
export interface ScenarioApp {
  /** `Prisma`, `TypeORM`: printed in the report. */
  readonly orm: string;
  readonly migration: Migration;
  /** Starts the app on the engine; `close` stops the server and the ORM's connections. */
  start(engine: Engine, databases: { source: string; target: string }): Promise<RunningApp>;
}

export async function runScenario(app: ScenarioApp, options: DemoOptions): Promise<DemoReport> {
  const started = Date.now();
  const out = options.out === undefined ? process.stdout : options.out;
  const say = (line: string) => out?.write(`${line}\n`);
  const names = {
    source: options.sourceDatabase ?? 'mf_ex_src',
    target: options.targetDatabase ?? 'mf_ex_tgt',
  };
  const name = app.migration.name;
  const sourceLabel = `PostgreSQL ${PG.host}:${PG.port}/${names.source}`;
  const targetLabel = `MariaDB ${MARIA.host}:${MARIA.port}/${names.target}`;

  await freshDatabases(names.source, names.target);
  const source = knex(pgConfig(names.source));
  const target = knex(mariaConfig(names.target));
  let engine: Engine | undefined;
  let running: RunningApp | undefined;
  let traffic: Traffic | undefined;
  try {
    say(`${app.orm} demo`);
    say(`source: ${sourceLabel}`);
    say(`target: ${targetLabel}`);
    await createConformanceSchema(source);
    await createConformanceSchema(target);
    const historyIds = await seed(source, options.seedRows ?? 2_000);
    say(`seeded ${historyIds.length} items of history in the source`);

    const flags = new StaticFlags({ [name]: 'off' });
    engine = await startMigration(app.migration, {
      source,
      target,
      flags,
      logger: options.logger ?? consoleLogger(),
    });
    running = await app.start(engine, names);
    const users = options.users ?? 8;
    traffic = startTraffic({
      baseUrl: `http://127.0.0.1:${running.port}`,
      users,
      durationMs: 5 * 60_000,
      thinkMs: options.thinkMs ?? 20,
      historyIds,
    });
    say(`app on 127.0.0.1:${running.port}, ${users} virtual users, stage off`);
    await sleep(options.warmupMs ?? 2_000);

    flags.set(name, 'dualwrite');
    const live = engine;
    if (!TABLES.every((t) => live.stage(t) === 'dualwrite')) throw new Error('the stage did not change');
    say(`stage dualwrite after ${seconds(Date.now() - started)}; ${progressText(traffic)}`);

    const backfillStart = Date.now();
    const backfilled = await engine.backfill({
      chunkSize: options.chunkSize ?? 250,
      pauseMs: options.pauseMs ?? 20,
    });
    say(`backfill copied ${backfilled} rows in ${seconds(Date.now() - backfillStart)}; ${progressText(traffic)}`);

    await sleep(options.afterMs ?? 3_000);
    const load: TrafficReport = await traffic.stop();
    traffic = undefined;
    say(`traffic stopped; ${load.served} requests served, ${load.failed} failed`);
    await engine.drain();
    const verify = await engine.verify();
    const { deadLetters } = await engine.queueState();
    const uncaptured =
      (await engine.metrics.uncaptured.get()).values.reduce((n, v) => n + v.value, 0) +
      (await engine.metrics.rawQueries.get()).values.reduce((n, v) => n + v.value, 0);
    const tables = verify.tables.map((t) => ({
      table: t.table,
      sourceRows: t.sourceRows,
      targetRows: t.targetRows,
      missing: t.missing.length,
      extra: t.extra.length,
      different: t.different.length,
    }));
    return {
      orm: app.orm,
      source: sourceLabel,
      target: targetLabel,
      served: load.served,
      failed: load.failed,
      failures: load.failures,
      byRoute: load.byRoute,
      backfilled,
      tables,
      differences: verify.differences,
      deadLetters: deadLetters.length,
      uncaptured,
      elapsedMs: Date.now() - started,
      ok: load.failed === 0 && verify.differences === 0 && deadLetters.length === 0 && uncaptured === 0,
    };
  } finally {
    await traffic?.stop().catch(() => undefined);
    await running?.close().catch(() => undefined);
    await engine?.close().catch(() => undefined);
    await source.destroy().catch(() => undefined);
    await target.destroy().catch(() => undefined);
  }
}

/** The report as text: counts, routes and table names only. */
export function formatReport(r: DemoReport): string {
  const width = Math.max(...r.tables.map((t) => t.table.length), 5);
  const sum = (k: 'missing' | 'extra' | 'different') => r.tables.reduce((n, t) => n + t[k], 0);
  const lines = [
    '',
    `Midflight ${r.orm} demo report`,
    `  requests served     ${r.served}`,
    ...Object.entries(r.byRoute).map(([route, n]) => `    ${route}: ${n}`),
    `  failed requests     ${r.failed}`,
    ...Object.entries(r.failures).map(([what, n]) => `    ${what}: ${n}`),
    `  rows backfilled     ${r.backfilled}`,
    '  rows per table      source / target',
    ...r.tables.map((t) => `    ${t.table.padEnd(width)}  ${t.sourceRows} / ${t.targetRows}`),
    `  differences         ${r.differences} (missing ${sum('missing')}, extra ${sum('extra')}, different ${sum('different')})`,
    `  dead letters        ${r.deadLetters}`,
    `  uncaptured writes   ${r.uncaptured}`,
    `  took                ${seconds(r.elapsedMs)}`,
    `  result              ${r.ok ? 'OK: no failed request, no difference' : 'FAILED'}`,
  ];
  return lines.join('\n');
}

export function pgConfig(database: string): Knex.Config {
  return { client: 'pg', connection: { ...PG, database }, pool: { min: 0, max: 10 } };
}

export function mariaConfig(database: string): Knex.Config {
  return {
    client: 'mysql2',
    connection: { ...MARIA, database, timezone: 'Z', supportBigNumbers: true },
    pool: { min: 0, max: 10 },
  };
}

/** Drops and recreates both databases. */
async function freshDatabases(source: string, target: string): Promise<void> {
  for (const n of [source, target]) if (!/^[a-z0-9_]{1,48}$/.test(n)) throw new Error('bad database name');
  const pg = knex(pgConfig('postgres'));
  try {
    await pg.raw(`drop database if exists "${source}" with (force)`);
    await pg.raw(`create database "${source}"`);
  } finally {
    await pg.destroy();
  }
  const maria = knex({ client: 'mysql2', connection: { ...MARIA } });
  try {
    await maria.raw(`drop database if exists \`${target}\``);
    await maria.raw(`create database \`${target}\` character set utf8mb4`);
  } finally {
    await maria.destroy();
  }
}

/** History: items (and some tags) that existed before the migration, written with plain Knex. */
async function seed(db: Knex, n: number): Promise<number[]> {
  const items = Array.from({ length: n }, (_, i) => ({
    name: `stock item ${i + 1}`,
    qty: (i * 37) % 500,
    price: i % 5 === 0 ? null : (1 + ((i * 13) % 997) / 7).toFixed(2),
    active: i % 11 !== 0,
    meta: i % 3 === 0 ? JSON.stringify({ shelf: i % 40, origin: 'seed' }) : null,
  }));
  await db.batchInsert('items', items, 500);
  const ids = (await db('items').orderBy('id').pluck('id')).map(Number);
  const tags = ids
    .filter((_, i) => i % 4 === 0)
    .map((id, i) => ({ item_id: id, tag: i % 2 ? 'seasonal' : 'legacy', note: i % 3 ? null : 'seeded' }));
  if (tags.length) await db.batchInsert('item_tags', tags, 500);
  return ids;
}

function progressText(traffic: Traffic): string {
  const p = traffic.progress();
  return `${p.served} requests served, ${p.failed} failed so far`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
