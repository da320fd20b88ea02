// One OS process of the hot-key test: random writes on a few keys through the Knex wrapper,
// then drain, then print a JSON summary on stdout.
import { defineMigration, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { midflight } from '@midflight/knex';
import knex from 'knex';
import { hotKeyArgs } from './hot-key-args.js';
import { config } from './servers.js';

const { from, srcDb, to, tgtDb, seed, ops, keys, rand } = hotKeyArgs();

const source = knex(config(from, srcDb));
const target = knex(config(to, tgtDb));
const migration = defineMigration({
  name: 'hot',
  tables: { hot: {} },
  mirror: { deadlineMs: 50 },
  retry: { attempts: 50, backoffMs: 10, maxBackoffMs: 200 },
});
const engine = await startMigration(migration, {
  source,
  target,
  flags: new StaticFlags({ hot: 'dualwrite' }),
  logger: silentLogger,
});
const db = midflight(source, engine);

let failed = 0;
const errors: string[] = [];
for (let i = 0; i < ops; i++) {
  const id = rand(keys) + 1;
  const r = rand(100);
  try {
    if (r < 40)
      await db('hot')
        .where({ id })
        .update({ v: i, note: `p${seed}-${i}` });
    else if (r < 55) await db('hot').where({ id }).del();
    else if (r < 80)
      await db('hot')
        .insert({ id, v: i, note: `i${seed}-${i}` })
        .onConflict('id')
        .merge();
    // A where-based update (keys resolved by the wrapper). One row per statement: multi-row
    // updates racing the two-key transactions below deadlock on the source itself, with or
    // without Midflight, and that is the app's business, not this test's.
    else if (r < 90)
      await db('hot')
        .where('id', '>=', id)
        .andWhere('id', '<', id + 1)
        .increment('v', 1);
    else {
      const other = rand(keys) + 1;
      await db.transaction(async (trx) => {
        for (const k of [id, other].sort((a, b) => a - b))
          await trx('hot')
            .where({ id: k })
            .update({ note: `t${seed}-${i}` });
      });
    }
  } catch (e) {
    failed++;
    if (errors.length < 5) errors.push(String((e as Error).message).slice(0, 200));
  }
}
await engine.drain(120_000);
const { deadLetters } = await engine.queueState();
process.stdout.write(`${JSON.stringify({ seed, ops, failed, errors, deadLetters: deadLetters.length })}\n`);
await engine.close();
await source.destroy();
await target.destroy();
