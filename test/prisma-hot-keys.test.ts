import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { defineMigration, silentLogger, startMigration } from '@midflight/core';
import type { Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { type Engine, openFresh } from './support/servers.js';

const WORKER = fileURLToPath(new URL('./support/prisma-hot-key-worker.ts', import.meta.url));
const PROCESSES = 3;
const OPS = Number(process.env.HOT_KEY_OPS ?? 1000);
const KEYS = 10;

interface Summary {
  failed: number;
  errors: string[];
  deadLetters: number;
  uncaptured: number;
}

function runWorker(args: string[]): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`worker exited ${code}: ${err.slice(-2000)}`));
      resolve(JSON.parse(out.trim().split('\n').pop() as string));
    });
  });
}

const open: Knex[] = [];
afterAll(async () => {
  for (const k of open) await k.destroy();
});

describe(`prisma hot keys: ${PROCESSES} processes × ${OPS} writes over ${KEYS} keys`, () => {
  // PG→MariaDB (the cross-engine pair) by default; MIDFLIGHT_PRISMA_HOT_ALL=1 adds PG→PG.
  const pairs: Engine[] = process.env.MIDFLIGHT_PRISMA_HOT_ALL ? ['mariadb', 'pg'] : ['mariadb'];
  for (const to of pairs) {
    it(`pg→${to}: after drain the target equals the source`, { timeout: 120_000 }, async () => {
      const srcDb = `mf_prisma_hot_pg_${to}_src`;
      const tgtDb = `mf_prisma_hot_pg_${to}_tgt`;
      const source = await openFresh('pg', srcDb);
      const target = await openFresh(to, tgtDb);
      open.push(source, target);
      for (const db of [source, target]) {
        await db.schema.createTable('hot', (t) => {
          t.integer('id').primary();
          t.integer('v').notNullable();
          t.string('note', 40);
        });
      }
      const results = await Promise.all(
        Array.from({ length: PROCESSES }, (_, i) =>
          runWorker([srcDb, to, tgtDb, String(100 + i), String(OPS), String(KEYS)]),
        ),
      );
      for (const r of results) {
        expect(r.errors).toEqual([]);
        expect(r.failed).toBe(0);
        expect(r.deadLetters).toBe(0);
        expect(r.uncaptured).toBe(0);
      }
      const engine = await startMigration(defineMigration({ name: 'hot', tables: { hot: {} } }), {
        source,
        target,
        logger: silentLogger,
      });
      const report = await engine.verify();
      await engine.close();
      expect(report.tables[0]?.sourceRows).toBeGreaterThan(0);
      expect({
        missing: report.tables[0]?.missing,
        extra: report.tables[0]?.extra,
        different: report.tables[0]?.different,
      }).toEqual({ missing: [], extra: [], different: [] });
    });
  }
});
