// One OS process of the Prisma hot-key test: random writes on a few keys through a PrismaClient
// with the Midflight extension, then drain, then print a JSON summary on stdout.
// Args: source-engine (pg) source-db target-engine target-db seed ops keys
import { defineMigration, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { midflight } from '@midflight/prisma';
import knex from 'knex';
import { mariaPrisma, pgPrisma } from '../../packages/prisma/fixtures/clients.js';
import { hotKeyArgs } from './hot-key-args.js';
import { config } from './servers.js';

const { srcDb, to, tgtDb, seed, ops, keys, rand } = hotKeyArgs();

const source = knex(config('pg', srcDb));
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
const base = pgPrisma(srcDb);
const targetClient = to === 'pg' ? pgPrisma(tgtDb) : mariaPrisma(tgtDb);
const db = base.$extends(midflight(engine, { target: targetClient }));

let failed = 0;
const errors: string[] = [];
for (let i = 0; i < ops; i++) {
  const id = rand(keys) + 1;
  const r = rand(100);
  try {
    if (r < 30) await db.hot.updateMany({ where: { id }, data: { v: i, note: `p${seed}-${i}` } });
    else if (r < 45) await db.hot.deleteMany({ where: { id } });
    else if (r < 65)
      await db.hot.upsert({ where: { id }, create: { id, v: i, note: `i${seed}-${i}` }, update: { v: i } });
    else if (r < 72) {
      const row = await db.hot.findUnique({ where: { id } });
      if (row) await db.hot.delete({ where: { id } }).catch(() => undefined);
      else await db.hot.createMany({ data: [{ id, v: i, note: `c${seed}-${i}` }], skipDuplicates: true });
    }
    // Where-based, one row per statement (multi-row updates racing the two-key transactions
    // below deadlock on the source itself, with or without Midflight).
    else if (r < 82) await db.hot.updateMany({ where: { id: { gte: id, lt: id + 1 } }, data: { v: { increment: 1 } } });
    else if (r < 91) {
      const other = rand(keys) + 1;
      await db.$transaction(async (tx) => {
        for (const k of [id, other].sort((a, b) => a - b))
          await tx.hot.updateMany({ where: { id: k }, data: { note: `t${seed}-${i}` } });
      });
    } else {
      const other = rand(keys) + 1;
      await db.$transaction(
        [id, other]
          .sort((a, b) => a - b)
          .map((k) => db.hot.updateMany({ where: { id: k }, data: { note: `b${seed}-${i}` } })),
      );
    }
  } catch (e) {
    failed++;
    if (errors.length < 5) errors.push(String((e as Error).message).slice(0, 300));
  }
}
await engine.drain(120_000);
const { deadLetters } = await engine.queueState();
const uncaptured = (await engine.metrics.uncaptured.get()).values.reduce((n, v) => n + v.value, 0);
process.stdout.write(`${JSON.stringify({ seed, ops, failed, errors, deadLetters: deadLetters.length, uncaptured })}\n`);
await engine.close();
await base.$disconnect();
await targetClient.$disconnect();
await source.destroy();
await target.destroy();
