import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BullMqRetryQueue, CutoverParticipant, currentAuthority, cutover, startWorker } from '@midflight/bullmq';
import { defineMigration, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFresh, waitFor } from './support/servers.js';

const APP = fileURLToPath(new URL('./support/cutover-app.ts', import.meta.url));
const SRC = 'mf_cut_src';
const TGT = 'mf_cut_tgt';
const PREFIX = `mfcut${Date.now().toString(36)}`;
const connection = { host: '127.0.0.1', port: 6379 };

let source: Knex;
let target: Knex;
const children: ChildProcess[] = [];

beforeAll(async () => {
  source = await openFresh('pg', SRC);
  target = await openFresh('mariadb', TGT);
  for (const db of [source, target]) {
    await db.schema.createTable('acct', (t) => {
      t.integer('id').primary();
      t.integer('v').notNullable();
      t.string('note', 20);
    });
  }
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  const r = new Redis(connection);
  const ks = await r.keys(`${PREFIX}*`);
  if (ks.length) await r.del(...ks);
  r.disconnect();
  await source?.destroy();
  await target?.destroy();
});

interface Summary {
  writes: number;
  failed: number;
  errors: string[];
  maxMs: number;
  p99Ms: number;
  maxGateWaitMs: number;
  authority: string;
  stage: string;
}

function startApp(seed: number): Promise<{ child: ChildProcess; done: Promise<Summary> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', APP, PREFIX, SRC, TGT, String(seed)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const done = new Promise<Summary>((resolve, reject) => {
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`app exited ${code}: ${err.slice(-1500)}`));
      resolve(JSON.parse(out.trim().split('\n').pop() as string) as Summary);
    });
  });
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve({ child, done });
    });
    child.on('exit', (code) => reject(new Error(`app exited ${code} before ready: ${err.slice(-1500)}`)));
  });
}

describe('coordinated cutover across app instances', () => {
  it(
    'cutover, reverse, cutover under continuous writes from 3 processes: no failed write, no difference, short pauses',
    { timeout: 180_000 },
    async () => {
      const migration = defineMigration({
        name: 'cut',
        tables: { acct: {} },
        retry: { attempts: 100, backoffMs: 20, maxBackoffMs: 200 },
      });
      const queue = new BullMqRetryQueue(migration, {
        connection,
        prefix: PREFIX,
        spool: { path: `/tmp/mf-cut-${PREFIX}-worker/spool.jsonl` },
      });
      const engine = await startMigration(migration, {
        source,
        target,
        flags: new StaticFlags({ cut: 'live' }),
        retryQueue: queue,
        logger: silentLogger,
      });
      const participant = new CutoverParticipant(engine, { connection, prefix: PREFIX, heartbeatMs: 200 });
      await participant.start();
      const worker = await startWorker({ engine, queue, concurrency: 8 });
      try {
        const apps = await Promise.all([startApp(1), startApp(2), startApp(3)]);
        const pending = () => queue.size();
        const settle = () => new Promise((r) => setTimeout(r, 1500));
        await settle();
        const results = [];
        for (const to of ['target', 'source', 'target'] as const) {
          const r = await cutover({
            connection,
            prefix: PREFIX,
            migration: 'cut',
            to,
            pending,
            ackTimeoutMs: 5000,
            drainTimeoutMs: 10_000,
          });
          results.push(r);
          expect(r).toMatchObject({ ok: true, side: to, instances: 4 });
          await waitFor(() => engine.authority === to, 5000, `worker engine sees ${to}`);
          await settle();
        }
        expect(results.map((r) => (r.ok ? r.epoch : 0))).toEqual([1, 2, 3]);

        // One instance that never acknowledges: the cutover aborts and nothing flips.
        const r = new Redis(connection);
        await r.hset(`${PREFIX}:cutover:cut:instances`, 'frozen-instance', String(Date.now()));
        const aborted = await cutover({
          connection,
          prefix: PREFIX,
          migration: 'cut',
          to: 'source',
          pending,
          ackTimeoutMs: 800,
        });
        await r.hdel(`${PREFIX}:cutover:cut:instances`, 'frozen-instance');
        r.disconnect();
        expect(aborted).toMatchObject({ ok: false, missing: ['frozen-instance'] });
        expect(await currentAuthority({ connection, prefix: PREFIX, migration: 'cut' })).toEqual({
          side: 'target',
          epoch: 3,
        });
        await settle();

        for (const a of apps) a.child.kill('SIGTERM');
        const summaries = await Promise.all(apps.map((a) => a.done));
        const pauses = summaries.map((s) => s.maxGateWaitMs);
        const p99 = Math.max(...summaries.map((s) => s.p99Ms));
        console.log(
          `cutover: ${results.map((x) => `${x.ok ? x.side : 'aborted'} frozen ${x.frozenMs} ms`).join(', ')}; ` +
            `writes ${summaries.map((s) => s.writes).join('/')}, longest write pause ${Math.max(...pauses).toFixed(0)} ms, ` +
            `p99 write ${p99.toFixed(1)} ms, max write ${Math.max(...summaries.map((s) => s.maxMs)).toFixed(0)} ms`,
        );
        for (const s of summaries) {
          expect(s.errors).toEqual([]);
          expect(s.failed).toBe(0);
          expect(s.writes).toBeGreaterThan(50);
          // Every instance flipped with the cutover: target authoritative, the live flag read as rampdown.
          expect({ authority: s.authority, stage: s.stage }).toEqual({ authority: 'target', stage: 'rampdown' });
        }
        expect(Math.max(...pauses)).toBeLessThan(5000);
        await engine.drain(60_000);
        const report = await engine.verify();
        expect(report.differences).toBe(0);
      } finally {
        await worker.close();
        await participant.stop();
        await engine.close();
        await queue.queue.obliterate({ force: true }).catch(() => {});
        await queue.close();
      }
    },
  );
});
