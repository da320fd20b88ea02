import { defineMigration, type Engine, StaticFlags, silentLogger, startMigration, withContext } from '@midflight/core';
import { mirroredCount } from '@midflight/core/testing';
import { midflight } from '@midflight/knex';
import type { Knex } from 'knex';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openFresh, type Engine as Server } from './support/servers.js';

const sum = async (engine: Engine, name: 'rawQueries' | 'uncaptured' | 'readFallbacks' | 'reads') =>
  (await engine.metrics[name].get()).values.reduce((n, v) => n + v.value, 0);

for (const kind of ['pg', 'mariadb'] as const satisfies readonly Server[]) {
  describe(`knex wrapper on ${kind}: the app sees plain Knex`, () => {
    let source: Knex;
    let target: Knex;
    let engine: Engine;
    let flags: StaticFlags;
    let db: Knex;

    beforeAll(async () => {
      source = await openFresh(kind, `mf_kx_${kind}_src`);
      target = await openFresh('pg', `mf_kx_${kind}_tgt`);
      for (const k of [source, target]) {
        await k.schema.createTable('things', (t) => {
          t.increments('id').primary();
          t.string('name', 50).notNullable();
          t.integer('n').notNullable().defaultTo(0);
        });
        await k.schema.createTable('plain', (t) => {
          t.increments('id').primary();
          t.string('name', 50);
        });
      }
      flags = new StaticFlags({ kx: 'dualwrite' });
      engine = await startMigration(
        defineMigration({
          name: 'kx',
          tables: { things: {} },
          reads: { shadowSampleRate: 0 },
          retry: { attempts: 50, backoffMs: 10, maxBackoffMs: 100 },
        }),
        {
          source,
          target,
          flags,
          logger: silentLogger,
        },
      );
      db = midflight(source, engine);
    });

    afterAll(async () => {
      await engine?.close();
      await source?.destroy();
      await target?.destroy();
    });

    beforeEach(async () => {
      flags.set('kx', 'dualwrite');
      for (const k of [source, target]) await k('things').delete();
    });

    it('returns exactly what plain Knex returns for inserts, updates and deletes', async () => {
      const rows = [{ name: 'a' }, { name: 'b' }];
      const plainInsert = await source('plain').insert(rows);
      const wrappedInsert = await db('things').insert(rows);
      expect(typeof wrappedInsert).toBe(typeof plainInsert);
      if (Array.isArray(plainInsert)) expect(wrappedInsert).toHaveLength(plainInsert.length);
      expect(await db('things').where('n', 0).update({ n: 1 })).toBe(2);
      expect(await source('plain').where('id', '>', 0).update({ name: 'z' })).toBe(2);
      expect(await db('things').where('name', 'a').del()).toBe(1);
      if (kind === 'pg') {
        expect(await db('things').insert({ name: 'c', n: 3 }).returning('name')).toEqual([{ name: 'c' }]);
        expect(await db('things').where({ name: 'c' }).update({ n: 4 }, ['n'])).toEqual([{ n: 4 }]);
      }
      await engine.drain();
      expect((await engine.verify()).differences).toBe(0);
    });

    it('mirrors batchInsert, promise-style transactions and builders passed a transaction', async () => {
      await db.batchInsert(
        'things',
        Array.from({ length: 25 }, (_, i) => ({ name: `b${i}`, n: i })),
        10,
      );
      const trx = await db.transaction();
      await trx('things').insert({ name: 'manual', n: 1 });
      await db('things').transacting(trx).where({ name: 'b1' }).update({ n: 100 });
      await trx.commit();
      await engine.drain();
      expect(await target('things').where({ name: 'manual' }).first()).toBeDefined();
      expect(await target('things').where({ name: 'b1' }).first()).toMatchObject({ n: 100 });
      expect((await engine.verify()).differences).toBe(0);
    });

    it('does not capture knex.raw, and counts it; leaves unmapped tables alone', async () => {
      const before = await sum(engine, 'rawQueries');
      const mirrored = await mirroredCount(engine);
      await db.raw('insert into things (name, n) values (?, ?)', ['raw', 1]);
      await db('plain').insert({ name: 'not migrated' });
      await engine.drain();
      expect(await sum(engine, 'rawQueries')).toBe(before + 1);
      expect(await mirroredCount(engine)).toBe(mirrored);
      expect(await target('things').where({ name: 'raw' }).first()).toBeUndefined();
      // A raw expression inside a builder is part of a captured write, not raw SQL.
      await db('things').insert({ name: 'expr', n: 1 });
      await db('things')
        .where({ name: 'expr' })
        .update({ n: db.raw('?? + 1', ['n']) });
      await engine.drain();
      expect(await target('things').where({ name: 'expr' }).first()).toMatchObject({ n: 2 });
      expect(await sum(engine, 'rawQueries')).toBe(before + 1);
      await db('things').where({ name: 'raw' }).del();
    });

    it('a truncate is counted as uncaptured', async () => {
      const before = await sum(engine, 'uncaptured');
      await db('things').truncate();
      expect(await sum(engine, 'uncaptured')).toBe(before + 1);
    });

    it('falls back to the source when a target read fails, and counts it', async () => {
      await db('things').insert({ name: 'fb', n: 1 });
      await engine.drain();
      flags.set('kx', { stage: 'live', rollout: 100 });
      await target.schema.renameTable('things', 'things_away');
      try {
        const before = await sum(engine, 'readFallbacks');
        expect(await db('things').where({ name: 'fb' }).first()).toMatchObject({ n: 1 });
        expect(await sum(engine, 'readFallbacks')).toBe(before + 1);
      } finally {
        await target.schema.renameTable('things_away', 'things');
      }
    });

    it('in live, a user reads their own write from the source until its mirror lands', async () => {
      flags.set('kx', { stage: 'live', rollout: 100 });
      await target.schema.alterTable('things', (t) => t.string('name', 5).alter());
      try {
        await withContext({ userId: 'writer' }, async () => {
          await db('things').insert({ name: 'long-name-rejected', n: 1 });
        });
        expect(engine.route('things')).toMatchObject({ side: 'target' });
        await withContext({ userId: 'writer' }, async () => {
          expect(engine.route('things')).toMatchObject({ side: 'source', reason: 'read_your_writes' });
          expect(await db('things').where({ name: 'long-name-rejected' }).first()).toBeDefined();
        });
        await withContext({ userId: 'someone-else' }, async () => {
          expect(engine.route('things')).toMatchObject({ side: 'target' });
        });
      } finally {
        await target.schema.alterTable('things', (t) => t.string('name', 50).alter());
        await engine.drain();
      }
      await withContext({ userId: 'writer' }, async () => {
        expect(engine.route('things')).toMatchObject({ side: 'target' });
      });
    });
  });
}

describe('flags at start-up and later', () => {
  let source: Knex;
  let target: Knex;
  beforeAll(async () => {
    source = await openFresh('pg', 'mf_flags_src');
    target = await openFresh('pg', 'mf_flags_tgt');
    for (const k of [source, target]) await k.schema.createTable('t', (t) => t.increments('id').primary());
  });
  afterAll(async () => {
    await source?.destroy();
    await target?.destroy();
  });

  it('unreachable flags at start mean the safe stage; unreachable later keeps the last known state', async () => {
    let state: 'down' | 'up' | 'down-again' = 'down';
    const flags = {
      async start() {
        throw new Error('flag service unreachable');
      },
      get() {
        if (state !== 'up') throw new Error('unreachable');
        return { stage: 'shadow' as const, rollout: 0 };
      },
    };
    const engine = await startMigration(defineMigration({ name: 'fl', tables: { t: {} }, safeStage: 'dualwrite' }), {
      source,
      target,
      flags,
      logger: silentLogger,
    });
    expect(engine.stage('t')).toBe('dualwrite');
    state = 'up';
    expect(engine.stage('t')).toBe('shadow');
    state = 'down-again';
    expect(engine.stage('t')).toBe('shadow');
    await engine.close();
  });
});
