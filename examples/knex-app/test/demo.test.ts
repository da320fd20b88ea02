import { silentLogger } from '@midflight/core';
import knex, { type Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { type DemoReport, formatReport, runDemo } from '../src/demo.js';

const PG = { host: process.env.PGHOST ?? '127.0.0.1', port: Number(process.env.PGPORT ?? 5432), user: 'postgres' };
const MARIA = {
  host: process.env.MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.MYSQL_PORT ?? 3306),
  user: 'root',
  password: '',
};

/** Runs `sql` on a server-level connection (no database selected), then closes it. */
async function admin(config: Knex.Config, ...sql: string[]): Promise<void> {
  const db = knex(config);
  try {
    for (const s of sql) await db.raw(s);
  } finally {
    await db.destroy();
  }
}

function expectClean(report: DemoReport): void {
  expect(report.failures).toEqual({});
  expect(report.failed).toBe(0);
  expect(report.served).toBeGreaterThan(0);
  expect(report.deadLetters).toBe(0);
  expect(report.tables.map((t) => t.table).sort()).toEqual(['accounts', 'transfers']);
  for (const t of report.tables) {
    expect({ table: t.table, missing: t.missing, extra: t.extra, different: t.different }).toEqual({
      table: t.table,
      missing: 0,
      extra: 0,
      different: 0,
    });
    expect(t.targetRows).toBe(t.sourceRows);
    expect(t.sourceRows).toBeGreaterThan(0);
  }
  expect(report.differences).toBe(0);
  expect(report.ok).toBe(true);
}

/** Small and short: most of the PGlite run is starting the two embedded databases. */
const quick = {
  seedRows: 600,
  users: 6,
  warmupMs: 700,
  afterMs: 1_200,
  chunkSize: 100,
  progress: null,
  out: null,
  logger: silentLogger,
} as const;

describe('knex-app demo', () => {
  it('migrates PGlite → PGlite under traffic with no failed request and no difference', async () => {
    const report = await runDemo(quick);
    expectClean(report);
    // The report is counts and table names only: no seeded or generated row value appears in it.
    const text = formatReport(report);
    expect(text).not.toMatch(/@example\.test|Customer \d|history-\d/);
  }, 60_000);

  it('migrates PostgreSQL → MariaDB under traffic with no failed request and no difference', async () => {
    await admin(
      { client: 'pg', connection: { ...PG, database: 'postgres' } },
      'drop database if exists mf_demo_src with (force)',
      'create database mf_demo_src',
    );
    await admin(
      { client: 'mysql2', connection: MARIA },
      'drop database if exists mf_demo_tgt',
      'create database mf_demo_tgt character set utf8mb4',
    );
    const report = await runDemo({
      ...quick,
      sourceUrl: `postgres://${PG.user}@${PG.host}:${PG.port}/mf_demo_src`,
      targetUrl: `mysql://${MARIA.user}@${MARIA.host}:${MARIA.port}/mf_demo_tgt`,
    });
    expect(report.source).toMatch(/^PostgreSQL /);
    expect(report.target).toMatch(/^MySQL\/MariaDB /);
    expectClean(report);
  }, 60_000);
});
