import {
  defineMigration,
  type Engine,
  type Logger,
  type Migration,
  type Stage,
  StaticFlags,
  silentLogger,
  startMigration,
} from '@midflight/core';
import { mirroredCount } from '@midflight/core/testing';
import { midflight } from '@midflight/knex';
import knex, { type Knex } from 'knex';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { config, MARIA, openFresh, waitFor } from './support/servers.js';
import { TcpProxy } from './support/tcp-proxy.js';

let source: Knex;
let target: Knex;
const engines: Engine[] = [];

beforeAll(async () => {
  source = await openFresh('pg', 'mf_fault_src');
  target = await openFresh('mariadb', 'mf_fault_tgt');
});

afterAll(async () => {
  await source?.destroy();
  await target?.destroy();
});

beforeEach(async () => {
  for (const db of [source, target]) {
    await db.schema.dropTableIfExists('notes');
    await db.schema.createTable('notes', (t) => {
      t.increments('id').primary();
      t.string('title', 100).notNullable();
      t.string('body', db === target ? 12 : 200);
      t.integer('n').notNullable().defaultTo(0);
    });
  }
});

afterEach(async () => {
  while (engines.length) await engines.pop()?.close();
});

function migration(extra: Partial<Parameters<typeof defineMigration>[0]> = {}): Migration {
  return defineMigration({
    name: 'faults',
    tables: { notes: {} },
    mirror: { deadlineMs: 100 },
    retry: { attempts: 4, backoffMs: 20, maxBackoffMs: 100 },
    ...extra,
  });
}

async function start(
  m: Migration,
  tgt: Knex = target,
  logger: Logger = silentLogger,
  stage: Stage = 'dualwrite',
): Promise<Engine> {
  const engine = await startMigration(m, { source, target: tgt, flags: new StaticFlags({ [m.name]: stage }), logger });
  engines.push(engine);
  return engine;
}

describe('late and stale mirrors', () => {
  it('a mirror carrying an old row is corrected by the re-check against the source', async () => {
    const engine = await start(migration());
    const [{ id }] = await source('notes').insert({ title: 'new', n: 2 }).returning('id');
    // As if another process's mirror, holding the row from before the last update, landed last.
    await engine.capture([{ table: 'notes', key: [id], op: 'upsert', row: { id, title: 'old', body: null, n: 1 } }]);
    await engine.drain();
    expect(await target('notes').where({ id }).first()).toMatchObject({ title: 'new', n: 2 });
  });

  it('a late delete does not remove a row that exists again', async () => {
    const engine = await start(migration());
    const [{ id }] = await source('notes').insert({ title: 'back', n: 1 }).returning('id');
    await engine.capture([{ table: 'notes', key: [id], op: 'delete' }]);
    await engine.drain();
    expect(await target('notes').where({ id }).first()).toMatchObject({ title: 'back' });
  });

  it('a late upsert does not resurrect a deleted row', async () => {
    const engine = await start(migration());
    await engine.capture([
      { table: 'notes', key: [424242], op: 'upsert', row: { id: 424242, title: 'ghost', body: null, n: 0 } },
    ]);
    await engine.drain();
    expect(await target('notes').where({ id: 424242 }).first()).toBeUndefined();
  });
});

describe('a row the target rejects', () => {
  it('fails only its own mirror, with a readable reason in the dead letters; the app and other rows go on', async () => {
    const engine = await start(migration());
    const db = midflight(source, engine);
    const [{ id: bad }] = await db('notes')
      .insert({ title: 'too long', body: 'x'.repeat(50) })
      .returning('id');
    const [{ id: good }] = await db('notes').insert({ title: 'fine', body: 'short' }).returning('id');
    await db('notes').where({ id: good }).update({ n: 5 });
    await engine.drain();
    const { deadLetters } = await engine.queueState();
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]).toMatchObject({ table: 'notes', key: [bad], attempts: 4 });
    expect(deadLetters[0]?.reason).toMatch(/ER_DATA_TOO_LONG|too long/i);
    expect(await target('notes').where({ id: good }).first()).toMatchObject({ n: 5 });
    expect(await target('notes').where({ id: bad }).first()).toBeUndefined();
    const dead = await engine.metrics.deadLettered.get();
    expect(dead.values.reduce((n, v) => n + v.value, 0)).toBe(1);

    // Fix the target, retry the dead letter: it lands and the tables agree.
    await target.schema.alterTable('notes', (t) => t.string('body', 200).alter());
    expect(await engine.retryDeadLetters()).toBe(1);
    await engine.drain();
    expect((await engine.queueState()).deadLetters).toEqual([]);
    expect((await engine.verify()).differences).toBe(0);
  });
});

describe('target outage', () => {
  it('no app write fails while the target is unreachable; after it returns the retries converge', async () => {
    const proxy = new TcpProxy(MARIA.port);
    const port = await proxy.start();
    const quiet = { warn() {}, error() {}, debug() {}, deprecate() {} };
    const viaProxy = knex({ ...config('mariadb', 'mf_fault_tgt', port), acquireConnectionTimeout: 1000, log: quiet });
    try {
      const engine = await start(migration({ retry: { attempts: 200, backoffMs: 20, maxBackoffMs: 250 } }), viaProxy);
      const db = midflight(source, engine);
      let failed = 0;
      let served = 0;
      const ids: number[] = [];
      const write = async (i: number) => {
        try {
          if (ids.length > 3 && i % 3 === 0) {
            await db('notes')
              .where({ id: ids[i % ids.length] })
              .update({ n: i });
          } else if (ids.length > 3 && i % 7 === 0) {
            await db('notes').where({ id: ids.shift() }).del();
          } else {
            const [{ id }] = await db('notes')
              .insert({ title: `t${i}`, body: 'ok', n: i })
              .returning('id');
            ids.push(id);
          }
          served++;
        } catch {
          failed++;
        }
      };
      let i = 0;
      for (; i < 60; i++) await write(i);
      await proxy.cut();
      const cutAt = Date.now();
      for (; i < 160; i++) await write(i);
      const failedMirrors = await engine.metrics.mirrorFailed.get();
      expect(failedMirrors.values.reduce((n, v) => n + v.value, 0)).toBeGreaterThan(0);
      expect((await engine.queueState()).queued).toBeGreaterThan(0);
      await proxy.restore();
      const outageMs = Date.now() - cutAt;
      for (; i < 200; i++) await write(i);
      await engine.drain(60_000);
      expect({ failed, served }).toEqual({ failed: 0, served: 200 });
      expect(outageMs).toBeGreaterThan(0);
      expect((await engine.queueState()).deadLetters).toEqual([]);
      expect((await engine.verify()).differences).toBe(0);
      const retried = await engine.metrics.retried.get();
      expect(retried.values.find((v) => v.labels.outcome === 'ok')?.value ?? 0).toBeGreaterThan(0);
    } finally {
      await proxy.close();
      await viaProxy.destroy();
    }
  });
});

describe('logs never carry row values', () => {
  it('a canary written through every path, including failures, never appears in log output', async () => {
    const CANARY = 'CANARY-7f3a9c';
    const lines: string[] = [];
    const capture = (level: string) => (event: string, fields?: Record<string, unknown>) =>
      lines.push(JSON.stringify({ level, event, ...fields }));
    // The default logger's sink, at its most verbose level, recorded in memory.
    const logger: Logger = {
      debug: capture('debug'),
      info: capture('info'),
      warn: capture('warn'),
      error: capture('error'),
    };
    const origOut = process.stdout.write.bind(process.stdout);
    const origErr = process.stderr.write.bind(process.stderr);
    const spy = (chunk: unknown, ...rest: unknown[]) => {
      lines.push(String(chunk));
      return (origErr as (...a: unknown[]) => boolean)(chunk, ...rest);
    };
    process.stdout.write = spy as typeof process.stdout.write;
    process.stderr.write = spy as typeof process.stderr.write;
    try {
      // A unique index the source lacks: the target's duplicate-key error quotes the value.
      await target.schema.alterTable('notes', (t) => t.unique(['title']));
      const engine = await start(
        migration({ reads: { shadowSampleRate: 1 }, retry: { attempts: 2, backoffMs: 10, maxBackoffMs: 20 } }),
        target,
        logger,
        'shadow',
      );
      const db = midflight(source, engine);
      const [{ id: a }] = await db('notes').insert({ title: CANARY, body: 'ok' }).returning('id');
      await db('notes').insert({ title: CANARY, body: 'ok' }); // duplicate on the target only
      await db('notes').insert({ title: `${CANARY}-long`, body: `${CANARY}${'y'.repeat(40)}` }); // too long for the target
      await db('notes')
        .where({ id: a })
        .update({ body: CANARY.slice(0, 12) });
      await db.transaction(async (trx) => {
        await trx('notes').insert({ title: `${CANARY}-tx`, body: 'tx' });
      });
      await target('notes').where({ id: a }).update({ body: 'diverged' }); // a shadow mismatch
      await engine.drain();
      await db('notes').where({ id: a }).first();
      await waitFor(async () => ((await engine.metrics.shadowCompared.get()).values[0]?.value ?? 0) > 0);
      const { deadLetters } = await engine.queueState();
      expect(deadLetters.length).toBeGreaterThanOrEqual(2);
      for (const d of deadLetters) expect(d.reason).not.toContain(CANARY);
      expect(await mirroredCount(engine)).toBeGreaterThan(0);
      expect(lines.some((l) => l.includes('dead_letter'))).toBe(true);
      expect(lines.some((l) => l.includes('shadow_mismatch'))).toBe(true);
    } finally {
      process.stdout.write = origOut;
      process.stderr.write = origErr;
    }
    expect(lines.filter((l) => l.includes(CANARY))).toEqual([]);
  });
});
