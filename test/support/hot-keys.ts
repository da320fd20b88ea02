// The hot-key scenario every adapter runs: N OS processes write at random on a few keys through
// the adapter (each process drains its own mirrors before it exits), then a full verify must
// find no difference. Each adapter's test file only names its worker script and the pairs.
import { spawn } from 'node:child_process';
import { defineMigration, silentLogger, startMigration } from '@midflight/core';
import type { Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import { type Engine, openFresh } from './servers.js';

export interface WorkerSummary {
  failed: number;
  errors: string[];
  deadLetters: number;
  uncaptured?: number;
}

/** Runs a worker script in its own Node process (through tsx) and returns its last JSON line. */
export function runNodeScript<T>(script: string, args: readonly string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited ${code}: ${err.slice(-2000)}`));
      resolve(JSON.parse(out.trim().split('\n').pop() as string) as T);
    });
  });
}

export interface HotKeyOptions {
  /** Label, also the database name prefix (`mf_<name>_hot_…`). */
  readonly name: string;
  /** Worker script; argv: from, source db, to, target db, seed, ops, keys. */
  readonly worker: string;
  readonly processes: number;
  readonly ops: number;
  readonly keys?: number;
  /** Source → target pairs; the same pair may repeat (each repeat is another run). */
  readonly runs: ReadonlyArray<readonly [Engine, Engine]>;
}

export function hotKeySuite(o: HotKeyOptions): void {
  const keys = o.keys ?? 10;
  const open: Knex[] = [];
  afterAll(async () => {
    for (const k of open) await k.destroy();
  });
  describe(`${o.name} hot keys: ${o.processes} processes × ${o.ops} writes over ${keys} keys`, () => {
    for (const [i, [from, to]] of o.runs.entries()) {
      it(`${from}→${to} run ${i + 1}: after drain the target equals the source`, { timeout: 300_000 }, async () => {
        const srcDb = `mf_${o.name}_hot_${from}_${to}_src`;
        const tgtDb = `mf_${o.name}_hot_${from}_${to}_tgt`;
        const source = await openFresh(from, srcDb);
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
          Array.from({ length: o.processes }, (_, p) =>
            runNodeScript<WorkerSummary>(o.worker, [
              from,
              srcDb,
              to,
              tgtDb,
              String((i + 1) * 100 + p),
              String(o.ops),
              String(keys),
            ]),
          ),
        );
        for (const r of results) {
          expect(r.errors.join('\n')).toBe('');
          expect(r.failed).toBe(0);
          expect(r.deadLetters).toBe(0);
          expect(r.uncaptured ?? 0).toBe(0);
        }
        const engine = await startMigration(defineMigration({ name: 'hot', tables: { hot: {} } }), {
          source,
          target,
          logger: silentLogger,
        });
        const report = await engine.verify();
        await engine.close();
        expect(report.tables[0]?.sourceRows).toBeGreaterThan(0);
        const t = report.tables[0];
        expect({ missing: t?.missing, extra: t?.extra, different: t?.different }).toEqual({
          missing: [],
          extra: [],
          different: [],
        });
      });
    }
  });
}
