import { ConfigError, defineMigration, type Engine, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { createConformanceSchema, mirroredCount } from '@midflight/core/testing';
import { midflight } from '@midflight/prisma';
import type { Knex } from 'knex';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mariaPrisma, pgPrisma } from '../packages/prisma/fixtures/clients.js';
import { openFresh, type Engine as Server } from './support/servers.js';

const sum = async (engine: Engine, name: 'rawQueries' | 'uncaptured') =>
  (await engine.metrics[name].get()).values.reduce((n, v) => n + v.value, 0);

/** The tables of fixtures/*.prisma beyond the conformance ones (users ⇐ posts with SET NULL). */
async function createSchema(db: Knex): Promise<void> {
  await createConformanceSchema(db);
  await db.schema.createTable('users', (t) => {
    t.increments('id').primary();
    t.string('email', 80).notNullable();
  });
  await db.schema.createTable('posts', (t) => {
    t.increments('id').primary();
    t.string('title', 80).notNullable();
    t.integer('author_id').unsigned().nullable().references('id').inTable('users').onDelete('SET NULL');
  });
  await db.schema.createTable('gadgets', (t) => {
    t.integer('id').primary();
    t.string('name', 40).notNullable();
    t.string('legacy_code', 20).nullable();
  });
  await db.schema.createTable('notes', (t) => {
    t.integer('id').primary();
  });
}

const client = (kind: Server, db: string) => (kind === 'pg' ? pgPrisma(db) : mariaPrisma(db));

for (const [from, to] of [
  ['pg', 'mariadb'],
  ['mariadb', 'pg'],
] as const) {
  describe(`prisma extension ${from}→${to}`, () => {
    const srcName = `mf_prisma_ad_${from}_${to}_src`;
    const tgtName = `mf_prisma_ad_${from}_${to}_tgt`;
    let source: Knex;
    let target: Knex;
    let engine: Engine;
    const flags = new StaticFlags({ pa: 'dualwrite' });
    const base = client(from, srcName);
    const targetClient = client(to, tgtName);
    // Both generated clients have the same models; tests use the PostgreSQL one's typing.
    const extend = () => (base as ReturnType<typeof pgPrisma>).$extends(midflight(engine, { target: targetClient }));
    let db: ReturnType<typeof extend>;

    beforeAll(async () => {
      source = await openFresh(from, srcName);
      target = await openFresh(to, tgtName);
      for (const k of [source, target]) await createSchema(k);
      engine = await startMigration(
        defineMigration({
          name: 'pa',
          tables: { items: {}, item_tags: {}, users: {}, posts: {} },
          mirror: { deadlineMs: 2_000 },
          retry: { attempts: 5, backoffMs: 20 },
          reads: { shadowSampleRate: 0 },
        }),
        { source, target, flags, logger: silentLogger },
      );
      db = extend();
    });

    afterAll(async () => {
      await engine?.close();
      await base.$disconnect();
      await targetClient.$disconnect();
      await source?.destroy();
      await target?.destroy();
    });

    beforeEach(async () => {
      flags.set('pa', 'dualwrite');
      for (const k of [source, target]) {
        for (const t of ['posts', 'users', 'item_tags', 'items']) await k(t).delete();
      }
    });

    const expectInStep = async () => {
      await engine.drain();
      const report = await engine.verify();
      expect(report.tables.map((t) => [t.table, t.missing, t.extra, t.different])).toEqual(
        report.tables.map((t) => [t.table, [], [], []]),
      );
      expect((await engine.queueState()).deadLetters).toEqual([]);
      return report;
    };

    it('holds writes while a cutover freezes the gate, and lets them through when it lifts', async () => {
      engine.gate.freeze('test-freeze');
      let landed = false;
      const write = db.item.create({ data: { name: 'held', qty: 1 } }).then(() => {
        landed = true;
      });
      const tx = db.$transaction(async (t) => {
        await t.item.create({ data: { name: 'held-tx', qty: 2 } });
      });
      await new Promise((r) => setTimeout(r, 150));
      expect(landed).toBe(false);
      expect(Number((await source('items').whereIn('name', ['held', 'held-tx']).count({ n: '*' }))[0]?.n)).toBe(0);
      engine.gate.lift('test-freeze');
      await Promise.all([write, tx]);
      expect(landed).toBe(true);
      expect(engine.gate.inFlight).toBe(0);
      await engine.drain();
      const names = (await target('items').whereIn('name', ['held', 'held-tx']).orderBy('name')).map(
        (r: { name: string }) => r.name,
      );
      expect(names).toEqual(['held', 'held-tx']);
    });

    it('nested writes: create with posts, connect, disconnect, nested update/delete, delete with SET NULL', async () => {
      const alice = await db.user.create({
        data: { email: 'alice@example.com', posts: { create: [{ title: 'one' }, { title: 'two' }] } },
        include: { posts: true },
      });
      const loose = await db.post.create({ data: { title: 'loose' } });
      const bob = await db.user.create({ data: { email: 'bob@example.com' } });
      const [one, two] = alice.posts;
      await db.user.update({
        where: { id: alice.id },
        data: {
          posts: {
            connect: { id: loose.id },
            disconnect: { id: one!.id },
            update: { where: { id: two!.id }, data: { title: 'two (edited)' } },
            create: { title: 'three' },
          },
        },
      });
      await db.user.update({ where: { id: bob.id }, data: { posts: { connect: [{ id: one!.id }] } } });
      await db.user.update({ where: { id: bob.id }, data: { posts: { delete: { id: one!.id } } } });
      await db.user.update({ where: { id: bob.id }, data: { posts: { set: [{ id: loose.id }] } } });
      await db.post.create({ data: { title: 'by connect', author: { connect: { id: bob.id } } } });
      await db.post.create({ data: { title: 'with author', author: { create: { email: 'carol@example.com' } } } });
      const report = await expectInStep();
      expect(report.tables.find((t) => t.table === 'posts')?.sourceRows).toBe(5);
      // The database sets the posts' author_id to NULL: those rows changed without a Prisma write.
      await db.user.delete({ where: { id: bob.id } });
      await expectInStep();
      expect(await target('posts').whereNull('author_id').count({ n: '*' })).toEqual([{ n: from === 'pg' ? 2 : '2' }]);
    });

    it('bulk writes: createMany (generated ids), updateMany and deleteMany by where, the *AndReturn forms', async () => {
      await db.item.createMany({ data: [1, 2, 3, 4].map((q) => ({ name: `b${q}`, qty: q })) });
      await db.item.createMany({ data: [{ id: 500, name: 'given', qty: 9 }] });
      await db.item.updateMany({ where: { qty: { gte: 3 } }, data: { name: 'big' } });
      await db.item.deleteMany({ where: { qty: { lt: 2 } } });
      if (from === 'pg') {
        const made = await db.item.createManyAndReturn({ data: [{ name: 'r1', qty: 7 }], select: { name: true } });
        expect(made).toEqual([{ name: 'r1' }]);
        await db.item.updateManyAndReturn({ where: { qty: 7 }, data: { name: 'r2' } });
      }
      // The app's `select` and `omit` stay as asked, though the extension needs the key.
      const c = await db.item.create({ data: { name: 'sel', qty: 1 }, select: { name: true } });
      expect(c).toEqual({ name: 'sel' });
      const u = await db.item.update({ where: { id: 500 }, data: { qty: 10 }, omit: { id: true, meta: true } });
      expect(Object.keys(u).sort()).toEqual(['active', 'name', 'price', 'qty']);
      await expectInStep();
      expect(await sum(engine, 'uncaptured')).toBe(0);
    });

    it('batch $transaction: committed together, dropped on rollback', async () => {
      const before = await mirroredCount(engine);
      await db.$transaction([
        db.item.create({ data: { id: 1, name: 'a', qty: 1 } }),
        db.item.updateMany({ where: { id: 1 }, data: { qty: 2 } }),
        db.itemTag.create({ data: { itemId: 1, tag: 't' } }),
      ]);
      await expectInStep();
      const committed = await mirroredCount(engine);
      expect(committed).toBeGreaterThan(before);
      await expect(
        db.$transaction([
          db.item.create({ data: { id: 2, name: 'b', qty: 1 } }),
          db.item.create({ data: { id: 1, name: 'duplicate', qty: 1 } }),
        ]),
      ).rejects.toThrow();
      await expectInStep();
      expect(await mirroredCount(engine)).toBe(committed);
      expect(await source('items').pluck('id')).toEqual([1]);
    });

    it('interactive $transaction: a committed nested transaction is dropped with its rolled-back parent', async () => {
      const before = await mirroredCount(engine);
      await expect(
        db.$transaction(async (tx) => {
          await tx.item.create({ data: { name: 'outer', qty: 1 } });
          await tx.$transaction(async (inner) => {
            await inner.item.create({ data: { name: 'inner', qty: 1 } });
          });
          throw new Error('roll back all');
        }),
      ).rejects.toThrow('roll back all');
      await engine.drain();
      expect(await mirroredCount(engine)).toBe(before);
      expect(await source('items').count({ n: '*' })).toEqual([{ n: from === 'pg' ? '0' : 0 }]);
    });

    it('raw SQL is not captured, but counted', async () => {
      const before = await sum(engine, 'rawQueries');
      await db.$executeRawUnsafe('delete from items where 1 = 0');
      await db.$queryRaw`select 1`;
      expect(await sum(engine, 'rawQueries')).toBe(before + 2);
    });

    it('reads are routed: count, aggregate, groupBy from the target once it serves reads', async () => {
      await target('items').insert({ id: 9, name: 'only-in-target', qty: 4 });
      flags.set('pa', { stage: 'live', rollout: 100 });
      expect(await db.item.count()).toBe(1);
      expect((await db.item.aggregate({ _sum: { qty: true } }))._sum.qty).toBe(4);
      expect(await db.item.groupBy({ by: ['name'], _count: true })).toEqual([{ name: 'only-in-target', _count: 1 }]);
      await expect(db.item.findUniqueOrThrow({ where: { id: 9 } })).resolves.toMatchObject({ id: 9 });
      flags.set('pa', 'dualwrite');
      expect(await db.item.count()).toBe(0);
    });

    it('typed errors at creation: a migrated table without a model, a named column without a field', async () => {
      const check = async (tables: Record<string, object>, code: string, column?: string) => {
        const e = await startMigration(defineMigration({ name: 'pa_bad', tables }), {
          source,
          target,
          logger: silentLogger,
        });
        try {
          const err = (() => {
            try {
              base.$extends(midflight(e, { target: targetClient }));
            } catch (x) {
              return x;
            }
          })();
          expect(err).toBeInstanceOf(ConfigError);
          expect(err).toMatchObject({ code, column });
        } finally {
          await e.close();
        }
      };
      await check({ notes: {} }, 'SOURCE_TABLE_MISSING');
      await check({ gadgets: { columns: { legacy_code: 'legacy_code' } } }, 'SOURCE_COLUMN_MISSING', 'legacy_code');
      // Columns the migration leaves out, or does not name, need no field.
      await expect(midflightFor({ gadgets: { columns: { legacy_code: false } } })).resolves.toBeUndefined();
    });

    async function midflightFor(tables: Record<string, object>): Promise<undefined> {
      const e = await startMigration(defineMigration({ name: 'pa_ok', tables }), {
        source,
        target,
        logger: silentLogger,
      });
      try {
        base.$extends(midflight(e, { target: targetClient }));
      } finally {
        await e.close();
      }
      return undefined;
    }
  });
}
