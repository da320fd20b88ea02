import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BullMqRetryQueue, startWorker } from '@midflight/bullmq';
import {
  defineMigration,
  type Engine,
  type Migration,
  StaticFlags,
  silentLogger,
  startMigration,
} from '@midflight/core';
import { midflight } from '@midflight/knex';
import knex, { type Knex } from 'knex';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { config, MARIA, openFresh, waitFor } from './support/servers.js';
import { TcpProxy } from './support/tcp-proxy.js';

const WORKER = fileURLToPath(new URL('./support/bullmq-worker.ts', import.meta.url));
const SRC = 'mf_bq_src';
const TGT = 'mf_bq_tgt';
const quiet = { warn() {}, error() {}, debug() {}, deprecate() {} };

let source: Knex;
let target: Knex;
let prefix: string;
const cleanup: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  source = await openFresh('pg', SRC);
  target = await openFresh('mariadb', TGT);
});

afterAll(async () => {
  await source?.destroy();
  await target?.destroy();
});

beforeEach(async () => {
  prefix = `mfq${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  for (const db of [source, target]) {
    await db.schema.dropTableIfExists('items');
    await db.schema.createTable('items', (t) => {
      t.increments('id').primary();
      t.string('name', 40).notNullable();
      t.integer('n').notNullable().defaultTo(0);
    });
  }
  return async () => {
    while (cleanup.length) {
      const fn = cleanup.pop();
      const t = Date.now();
      await fn?.();
      if (process.env.DEBUG_CLEANUP) console.log('cleanup', Date.now() - t, String(fn).slice(0, 80));
    }
  };
});

function migration(attempts = 200): Migration {
  return defineMigration({
    name: 'bq',
    tables: { items: {} },
    mirror: { deadlineMs: 50 },
    retry: { attempts, backoffMs: 50, maxBackoffMs: 500 },
  });
}

async function engineWith(
  queue: BullMqRetryQueue,
  m: Migration,
  tgt: Knex = target,
  stage: 'dualwrite' | 'rampdown' = 'dualwrite',
): Promise<Engine> {
  const flags = new StaticFlags({ bq: stage });
  const engine = await startMigration(m, { source, target: tgt, flags, retryQueue: queue, logger: silentLogger });
  cleanup.push(() => engine.close());
  return engine;
}

function newQueue(m: Migration, port = 6379, spoolDir = mkdtempSync(join(tmpdir(), 'mf-spool-'))): BullMqRetryQueue {
  const q = new BullMqRetryQueue(m, {
    connection: { host: '127.0.0.1', port },
    prefix,
    spool: { path: join(spoolDir, 'spool.jsonl') },
  });
  cleanup.push(async () => {
    await q.queue.obliterate({ force: true }).catch(() => {});
    await q.close().catch(() => {});
  });
  return q;
}

async function verifyClean(engine: Engine): Promise<void> {
  const report = await engine.verify();
  expect(report.tables[0]?.sourceRows).toBeGreaterThan(0);
  expect(report.differences).toBe(0);
}

describe('BullMQ retry queue', () => {
  it(
    'a ~10 s target outage under steady writes: no failed app write, jobs pile up then drain, no difference',
    { timeout: 120_000 },
    async () => {
      const proxy = new TcpProxy(MARIA.port);
      const port = await proxy.start();
      const viaProxy = knex({ ...config('mariadb', TGT, port), acquireConnectionTimeout: 500, log: quiet });
      cleanup.push(
        () => viaProxy.destroy(),
        () => proxy.close(),
      );
      const m = migration();
      const queue = newQueue(m);
      const engine = await engineWith(queue, m, viaProxy);
      const worker = await startWorker({ engine, queue, concurrency: 4 });
      cleanup.push(() => worker.close());
      const db = midflight(source, engine);
      let failed = 0;
      let served = 0;
      const ids: number[] = [];
      const writeFor = async (ms: number) => {
        const end = Date.now() + ms;
        for (let i = 0; Date.now() < end; i++) {
          try {
            if (ids.length > 5 && i % 2 === 0)
              await db('items')
                .where({ id: ids[i % ids.length] })
                .update({ n: i });
            else
              ids.push(
                (
                  await db('items')
                    .insert({ name: `w${i}` })
                    .returning('id')
                )[0].id,
              );
            served++;
          } catch {
            failed++;
          }
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await writeFor(1000);
      await proxy.cut();
      await writeFor(10_000);
      const pending = await queue.size();
      expect(pending).toBeGreaterThan(10);
      await proxy.restore();
      await writeFor(1000);
      await engine.drain(60_000);
      expect(failed).toBe(0);
      expect(served).toBeGreaterThan(100);
      await verifyClean(engine);
      const mirrorFailed = (await engine.metrics.mirrorFailed.get()).values.reduce((n, v) => n + v.value, 0);
      const retriedOk = (await engine.metrics.retried.get()).values.find((v) => v.labels.outcome === 'ok')?.value ?? 0;
      expect(mirrorFailed).toBeGreaterThan(0);
      expect(retriedOk).toBeGreaterThan(0);
    },
  );

  it(
    'Redis really stopped while mirrors fail: changes wait in the local spool and reach the queue when Redis is back',
    { timeout: 120_000 },
    async () => {
      const redisPort = 6390 + Math.floor(Math.random() * 50);
      const dir = mkdtempSync(join(tmpdir(), 'mf-redis-'));
      const startRedis = () => {
        const p = spawn(
          'redis-server',
          ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
          { stdio: 'ignore' },
        );
        cleanup.push(() => p.kill('SIGKILL'));
        return p;
      };
      let redis = startRedis();
      const ping = knexlessPing(redisPort);
      await waitFor(ping, 10_000, 'redis up');
      const proxy = new TcpProxy(MARIA.port);
      const port = await proxy.start();
      const viaProxy = knex({ ...config('mariadb', TGT, port), acquireConnectionTimeout: 500, log: quiet });
      cleanup.push(
        () => viaProxy.destroy(),
        () => proxy.close(),
      );
      const m = migration();
      const queue = newQueue(m, redisPort);
      const engine = await engineWith(queue, m, viaProxy);
      const db = midflight(source, engine);
      let failed = 0;
      const write = async (i: number) => {
        try {
          await db('items').insert({ name: `r${i}`, n: i });
        } catch {
          failed++;
        }
      };
      for (let i = 0; i < 20; i++) await write(i);
      await proxy.cut();
      redis.kill('SIGKILL');
      await waitFor(async () => !(await ping()), 10_000, 'redis down');
      for (let i = 20; i < 80; i++) await write(i);
      await waitFor(() => queue.spool.size() > 0, 10_000, 'spooled jobs');
      const spooled = queue.spool.size();
      redis = startRedis();
      await waitFor(ping, 10_000, 'redis up again');
      await waitFor(() => queue.spool.size() === 0, 20_000, 'spool replayed');
      await proxy.restore();
      const worker = await startWorker({ engine, queue, concurrency: 4 });
      cleanup.push(() => worker.close());
      await engine.drain(60_000);
      expect(failed).toBe(0);
      expect(spooled).toBeGreaterThan(0);
      expect(queue.spool.needsReconcile).toBe(false);
      await verifyClean(engine);
    },
  );

  it(
    'a worker killed with SIGKILL mid-drain: another worker finishes, nothing lost',
    { timeout: 120_000 },
    async () => {
      const N = 3000;
      await source.batchInsert(
        'items',
        Array.from({ length: N }, (_, i) => ({ name: `k${i}`, n: i })),
        500,
      );
      const m = migration();
      const queue = newQueue(m);
      for (let id = 1; id <= N; id++)
        await queue.add({ migration: 'bq', table: 'items', key: [id], epoch: 0, from: 'source' });
      const log = join(mkdtempSync(join(tmpdir(), 'mf-w-')), 'log');
      writeFileSync(log, '');
      const a = await spawnWorker(log);
      await waitFor(() => lines(log).length > 300, 60_000, 'first worker progress');
      a.kill('SIGKILL');
      const doneByA = lines(log).length;
      expect(doneByA).toBeLessThan(N);
      const b = await spawnWorker(log);
      await waitFor(async () => (await queue.size()) === 0, 90_000, 'queue drained by the second worker');
      b.kill('SIGTERM');
      const engine = await engineWith(queue, m);
      await verifyClean(engine);
    },
  );

  it(
    'three workers drain one queue; a key is never mirrored by two workers at once',
    { timeout: 120_000 },
    async () => {
      const N = 1500;
      await source.batchInsert(
        'items',
        Array.from({ length: N }, (_, i) => ({ name: `s${i}`, n: i })),
        500,
      );
      const m = migration();
      const queue = newQueue(m);
      const log = join(mkdtempSync(join(tmpdir(), 'mf-w-')), 'log');
      writeFileSync(log, '');
      const workers = await Promise.all([spawnWorker(log), spawnWorker(log), spawnWorker(log)]);
      // Keys enqueued several times while workers run: one job per key at a time.
      for (let round = 0; round < 2; round++) {
        for (let id = 1; id <= N; id++)
          await queue.add({ migration: 'bq', table: 'items', key: [id], epoch: 0, from: 'source' });
      }
      await waitFor(async () => (await queue.size()) === 0, 90_000, 'drained');
      for (const w of workers) w.kill('SIGTERM');
      const runs = lines(log).map((l) => {
        const [pid, id, start, end] = l.split(' ');
        return { pid, id, start: Number(start), end: Number(end) };
      });
      expect(new Set(runs.map((r) => r.pid)).size).toBe(3);
      const byKey = new Map<string, typeof runs>();
      for (const r of runs) byKey.set(r.id as string, [...(byKey.get(r.id as string) ?? []), r]);
      expect(byKey.size).toBe(N);
      for (const list of byKey.values()) {
        list.sort((x, y) => x.start - y.start);
        for (let i = 1; i < list.length; i++) expect(list[i]?.start).toBeGreaterThanOrEqual(list[i - 1]?.end as number);
      }
      const engine = await engineWith(queue, m);
      await verifyClean(engine);
    },
  );

  it(
    'a row the target rejects ends in the dead letters with its reason; retry after the fix succeeds',
    { timeout: 60_000 },
    async () => {
      await target.schema.alterTable('items', (t) => t.string('name', 5).alter());
      const m = migration(3);
      const queue = newQueue(m);
      const engine = await engineWith(queue, m);
      const worker = await startWorker({ engine, queue, concurrency: 2 });
      cleanup.push(() => worker.close());
      const db = midflight(source, engine);
      await db('items').insert({ name: 'much too long for five' });
      await db('items').insert({ name: 'ok' });
      await waitFor(async () => (await queue.deadLetters()).length === 1, 30_000, 'dead letter');
      const [dead] = await queue.deadLetters();
      expect(dead).toMatchObject({ table: 'items', key: [1], attempts: 3 });
      expect(dead?.reason).toMatch(/too long/i);
      expect(dead?.reason).not.toContain('much too long');
      await target.schema.alterTable('items', (t) => t.string('name', 40).alter());
      expect(await queue.retryDeadLetters()).toBe(1);
      await engine.drain(30_000);
      expect(await queue.deadLetters()).toEqual([]);
      await verifyClean(engine);
    },
  );

  it('a job from before an authority flip is re-evaluated, never applied blindly', { timeout: 60_000 }, async () => {
    await source('items').insert({ id: 1, name: 'old', n: 1 });
    await target('items').insert({ id: 1, name: 'new', n: 2 });
    const m = migration();
    const queue = newQueue(m);
    // The job was made under source authority; the target is authoritative now (rampdown).
    await queue.add({ migration: 'bq', table: 'items', key: [1], epoch: 0, from: 'source' });
    const engine = await engineWith(queue, m, target, 'rampdown');
    const worker = await startWorker({ engine, queue, concurrency: 1 });
    cleanup.push(() => worker.close());
    await engine.drain(30_000);
    expect(await target('items').where({ id: 1 }).first()).toMatchObject({ name: 'new', n: 2 });
    expect(await source('items').where({ id: 1 }).first()).toMatchObject({ name: 'new', n: 2 });
  });
});

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

async function spawnWorker(log: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, prefix, SRC, TGT, '6379', log], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanup.push(() => child.kill('SIGKILL'));
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d) => {
      if (String(d).includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`worker exited ${code}: ${err.slice(-1500)}`)));
  });
  return child;
}

function knexlessPing(port: number): () => Promise<boolean> {
  return async () => {
    const { Redis } = await import('ioredis');
    const r = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    r.on('error', () => {});
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  };
}
