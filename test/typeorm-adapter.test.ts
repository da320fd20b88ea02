// Every TypeORM write path whose events carry no ids, through the subscriber on real servers:
// criteria update/delete, QueryBuilder update/delete with an arbitrary where, softDelete and
// restore, statements racing on overlapping rows, a manual QueryRunner, and raw SQL counting.
import {
  defineMigration,
  type Engine as MidflightEngine,
  StaticFlags,
  silentLogger,
  startMigration,
} from '@midflight/core';
import { mirroredCount } from '@midflight/core/testing';
import { MidflightSubscriber } from '@midflight/typeorm';
import type { Knex } from 'knex';
import { Between, type DataSource, LessThan, MoreThanOrEqual, type Repository } from 'typeorm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openFresh } from './support/servers.js';
import { createDocs, type DocRow, docSchema } from './support/typeorm-docs.js';
import { openDataSource } from './support/typeorm-ops.js';

// Both ways to resolve keys: RETURNING (PostgreSQL source) and the locking pre-select (MariaDB source).
const pairs = [
  ['pg', 'mariadb'],
  ['mariadb', 'pg'],
] as const;

async function metricSum(engine: MidflightEngine, name: 'uncaptured' | 'rawQueries'): Promise<number> {
  return (await engine.metrics[name].get()).values.reduce((n, v) => n + v.value, 0);
}

for (const [from, to] of pairs) {
  describe(`typeorm ${from}→${to}: writes without ids`, () => {
    let source: Knex;
    let target: Knex;
    let engine: MidflightEngine;
    let flags: StaticFlags;
    let app: DataSource;
    let tgt: DataSource;
    let docs: Repository<DocRow>;

    beforeAll(async () => {
      source = await openFresh(from, `mf_typeorm_paths_${from}_src`);
      target = await openFresh(to, `mf_typeorm_paths_${from}_tgt`);
      await createDocs(source);
      await createDocs(target);
      flags = new StaticFlags({ docs: 'dualwrite' });
      engine = await startMigration(
        defineMigration({ name: 'docs', tables: { docs: {} }, retry: { attempts: 5, backoffMs: 20 } }),
        { source, target, flags, logger: silentLogger },
      );
      app = await openDataSource(from, `mf_typeorm_paths_${from}_src`, [docSchema(from)]);
      tgt = await openDataSource(to, `mf_typeorm_paths_${from}_tgt`, [docSchema(to)]);
      app.subscribers.push(new MidflightSubscriber(engine, { target: tgt }));
      docs = app.getRepository<DocRow>('Doc');
    });

    afterAll(async () => {
      await app?.destroy();
      await tgt?.destroy();
      await engine?.close();
      await source?.destroy();
      await target?.destroy();
    });

    beforeEach(async () => {
      flags.set('docs', 'dualwrite');
      await source('docs').delete();
      await target('docs').delete();
      await docs.insert(Array.from({ length: 20 }, (_, i) => ({ title: `d${i}`, n: i })));
      await engine.drain();
    });

    async function expectIdentical(): Promise<void> {
      await engine.drain();
      const report = await engine.verify();
      const t = report.tables[0];
      expect({ missing: t?.missing, extra: t?.extra, different: t?.different }).toEqual({
        missing: [],
        extra: [],
        different: [],
      });
      expect(t?.sourceRows).toBeGreaterThan(0);
      expect((await engine.metrics.uncaptured.get()).values.filter((v) => v.value > 0)).toEqual([]);
    }

    it('writes wait while a cutover freezes the gate and go through when it lifts', async () => {
      engine.gate.freeze('typeorm-freeze');
      let done = 0;
      const writes = [
        docs.update({ n: MoreThanOrEqual(18) }, { title: 'held' }).then(() => done++),
        docs.insert({ title: 'held-insert', n: 100 }).then(() => done++),
        app
          .transaction(async (m) => {
            await m.getRepository<DocRow>('Doc').delete({ n: LessThan(2) });
          })
          .then(() => done++),
      ];
      await new Promise((r) => setTimeout(r, 150));
      expect(done).toBe(0);
      expect(Number((await source('docs').where({ title: 'held-insert' }).count({ n: '*' }))[0]?.n)).toBe(0);
      engine.gate.lift('typeorm-freeze');
      await Promise.all(writes);
      expect(done).toBe(3);
      expect(engine.gate.inFlight).toBe(0);
      await expectIdentical();
    });

    it('criteria update and criteria delete', async () => {
      const updated = await docs.update({ n: MoreThanOrEqual(15) }, { title: 'high' });
      expect(updated.affected).toBe(5);
      // The RETURNING added on PostgreSQL is not visible to the app.
      if (from === 'pg') expect(updated.raw).toEqual([]);
      const deleted = await docs.delete({ n: LessThan(3) });
      expect(deleted.affected).toBe(3);
      await expectIdentical();
    });

    it('QueryBuilder update and delete with an arbitrary where', async () => {
      await app
        .createQueryBuilder()
        .update('Doc')
        .set({ n: () => 'n + 100' })
        .where('n BETWEEN :a AND :b OR title = :t', { a: 4, b: 8, t: 'd12' })
        .execute();
      await app.createQueryBuilder().delete().from('Doc').where("title LIKE 'd1%' AND n < :n", { n: 20 }).execute();
      await expectIdentical();
      expect(Number((await target('docs').where('n', '>=', 100).count({ c: '*' }))[0]?.c)).toBe(6);
    });

    it.runIf(from === 'pg')("the app's own RETURNING is kept as it asked", async () => {
      const result = await app
        .createQueryBuilder()
        .update('Doc')
        .set({ title: 'ret' })
        .where('n IN (:...ns)', { ns: [3, 4] })
        .returning(['title'])
        .execute();
      expect(result.raw).toEqual([{ title: 'ret' }, { title: 'ret' }]);
      const removed = await app.createQueryBuilder().delete().from('Doc').where('n = 5').returning('*').execute();
      expect(removed.raw).toEqual([expect.objectContaining({ n: 5, title: 'd5' })]);
      expect(Object.keys(removed.raw[0]).sort()).toEqual(['deleted_at', 'id', 'n', 'title']);
      await expectIdentical();
    });

    it('softDelete and restore by criteria, softRemove and recover of entities', async () => {
      await docs.softDelete({ n: Between(2, 6) });
      await expectIdentical();
      expect(Number((await target('docs').whereNotNull('deleted_at').count({ c: '*' }))[0]?.c)).toBe(5);
      await docs.restore({ n: Between(2, 3) });
      const one = await docs.findOneByOrFail({ n: 10 });
      await docs.softRemove(one);
      await expectIdentical();
      const back = await docs.findOneOrFail({ where: { n: 10 }, withDeleted: true });
      await docs.recover(back);
      await expectIdentical();
      expect(Number((await target('docs').whereNotNull('deleted_at').count({ c: '*' }))[0]?.c)).toBe(3);
    });

    it('where-based statements racing on overlapping rows', async () => {
      let deadlocks = 0;
      for (let round = 0; round < 8; round++) {
        const settled = await Promise.allSettled([
          docs.increment({ n: Between(0, 12) }, 'n', 3),
          app
            .createQueryBuilder()
            .update('Doc')
            .set({ title: `r${round}`, n: () => 'n + 1' })
            .where('n >= :m', { m: 6 })
            .execute(),
          docs.update({ n: Between(8, 14) }, { title: `u${round}` }),
          app
            .createQueryBuilder()
            .delete()
            .from('Doc')
            .where('n = :x', { x: 9 + round })
            .execute(),
          docs.softDelete({ n: Between(20, 21) }),
          app.transaction(async (m) => {
            await m.update('Doc', { n: MoreThanOrEqual(14) }, { title: `t${round}` });
            await m.delete('Doc', { n: 25 + round });
          }),
        ]);
        // Multi-row statements racing in other orders can deadlock on the database itself, with
        // or without Midflight; the loser is rolled back and must not be mirrored.
        for (const r of settled) {
          if (r.status === 'fulfilled') continue;
          expect(String((r.reason as Error).message)).toMatch(/deadlock/i);
          deadlocks++;
        }
      }
      expect(deadlocks).toBeLessThan(8 * 6);
      await expectIdentical();
    });

    it('a manual QueryRunner transaction: commit mirrors, rollback does not', async () => {
      const runner = app.createQueryRunner();
      await runner.connect();
      try {
        await runner.startTransaction();
        await runner.manager.update('Doc', { n: Between(0, 4) }, { title: 'committed' });
        await runner.manager.delete('Doc', { n: 19 });
        await runner.manager.save('Doc', { title: 'new', n: 50 });
        // Nothing leaves before the commit.
        expect(Number((await target('docs').where({ title: 'committed' }).count({ c: '*' }))[0]?.c)).toBe(0);
        await runner.commitTransaction();
        await expectIdentical();

        const before = await mirroredCount(engine);
        await runner.startTransaction();
        await runner.manager.update('Doc', { n: Between(5, 9) }, { title: 'doomed' });
        await runner.manager.softDelete('Doc', { n: 10 });
        await runner.manager.insert('Doc', { title: 'doomed', n: 60 });
        await runner.rollbackTransaction();
        await engine.drain();
        expect(await mirroredCount(engine)).toBe(before);
        await expectIdentical();
      } finally {
        await runner.release();
      }
    });

    it('a failing where-based write leaves nothing held and fails as it would without Midflight', async () => {
      await expect(docs.update({ n: 1 }, { title: 'x'.repeat(200) })).rejects.toThrow();
      await docs.update({ n: 1 }, { title: 'after-failure' });
      await expectIdentical();
      expect((await target('docs').where({ n: 1 }).first())?.title).toBe('after-failure');
    });

    it('raw SQL writes on a migrated table are counted, not captured', async () => {
      const before = await metricSum(engine, 'rawQueries');
      await app.query(
        from === 'pg' ? 'UPDATE docs SET n = n WHERE id = $1' : 'UPDATE docs SET n = n WHERE id = ?',
        [1],
      );
      await app.manager.query('SELECT 1');
      expect(await metricSum(engine, 'rawQueries')).toBe(before + 1);
    });

    it('nothing is resolved or mirrored while the stage is off', async () => {
      flags.set('docs', 'off');
      const before = await mirroredCount(engine);
      await docs.update({ n: MoreThanOrEqual(0) }, { title: 'unmirrored' });
      await engine.drain();
      expect(await mirroredCount(engine)).toBe(before);
    });
  });
}
