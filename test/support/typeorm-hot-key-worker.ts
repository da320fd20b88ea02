// One OS process of the TypeORM hot-key test: random writes on a few keys through a TypeORM
// DataSource with the Midflight subscriber, then drain, then print a JSON summary on stdout.
import { defineMigration, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { MidflightSubscriber } from '@midflight/typeorm';
import knex from 'knex';
import { Between, EntitySchema } from 'typeorm';
import { hotKeyArgs } from './hot-key-args.js';
import { config } from './servers.js';
import { openDataSource } from './typeorm-ops.js';

interface HotRow {
  id: number;
  v: number;
  note: string | null;
}

const Hot = new EntitySchema<HotRow>({
  name: 'Hot',
  tableName: 'hot',
  columns: {
    id: { type: 'int', primary: true },
    v: { type: 'int' },
    note: { type: 'varchar', length: 40, nullable: true },
  },
});

const { from, srcDb, to, tgtDb, seed, ops, keys, rand } = hotKeyArgs();

const source = knex(config(from, srcDb));
const target = knex(config(to, tgtDb));
const engine = await startMigration(
  defineMigration({
    name: 'hot',
    tables: { hot: {} },
    mirror: { deadlineMs: 50 },
    retry: { attempts: 50, backoffMs: 10, maxBackoffMs: 200 },
  }),
  { source, target, flags: new StaticFlags({ hot: 'dualwrite' }), logger: silentLogger },
);
const app = await openDataSource(from, srcDb, [Hot as EntitySchema]);
const tgt = await openDataSource(to, tgtDb, [Hot as EntitySchema]);
app.subscribers.push(new MidflightSubscriber(engine, { target: tgt }));
const hot = app.getRepository(Hot);

let failed = 0;
const errors: string[] = [];
for (let i = 0; i < ops; i++) {
  const id = rand(keys) + 1;
  const r = rand(100);
  try {
    if (r < 30) await hot.update({ id }, { v: i, note: `p${seed}-${i}` });
    else if (r < 45) await hot.delete({ id });
    else if (r < 70) await hot.upsert({ id, v: i, note: `i${seed}-${i}` }, ['id']);
    // Where-based, one row per statement (multi-row updates racing the two-key transactions
    // below deadlock on the source itself, with or without Midflight).
    else if (r < 80) await hot.increment({ id: Between(id, id) }, 'v', 1);
    else if (r < 88) {
      const row = await hot.findOneBy({ id });
      // save() is select-then-insert-or-update: when another process deletes and re-inserts the
      // row in between, TypeORM's own INSERT collides — with or without Midflight. That
      // statement failed and was rolled back; it is the app's race, not a lost write.
      if (row)
        await hot.save({ ...row, note: `s${seed}-${i}` }).catch((e: Error) => {
          if (!/duplicate/i.test(e.message)) throw e;
        });
    } else {
      const other = rand(keys) + 1;
      await app.transaction(async (m) => {
        for (const k of [id, other].sort((a, b) => a - b)) await m.update(Hot, { id: k }, { note: `t${seed}-${i}` });
      });
    }
  } catch (e) {
    failed++;
    if (errors.length < 5) errors.push(String((e as Error).message).slice(0, 200));
  }
}
await engine.drain(120_000);
const { deadLetters } = await engine.queueState();
const uncaptured = (await engine.metrics.uncaptured.get()).values.reduce((n, v) => n + v.value, 0);
process.stdout.write(`${JSON.stringify({ seed, ops, failed, errors, deadLetters: deadLetters.length, uncaptured })}\n`);
await engine.close();
await app.destroy();
await tgt.destroy();
await source.destroy();
await target.destroy();
