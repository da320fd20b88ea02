// Drain row for `pnpm bench`: jobs/s of one retry worker mirroring real rows, against the same
// BullMQ setup processing no-op jobs, measured in the same run.
import { BullMqRetryQueue, startWorker } from '@midflight/bullmq';
import { defineMigration, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import knex, { type Knex } from 'knex';

const N = Number(process.env.BENCH_DRAIN_N ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_DRAIN_CONCURRENCY ?? 16);
const pg = (database: string): Knex.Config => ({
  client: 'pg',
  connection: { host: '127.0.0.1', port: 5432, user: 'postgres', database },
  pool: { min: 0, max: 20 },
});

async function fresh(name: string): Promise<Knex> {
  const admin = knex(pg('postgres'));
  await admin.raw(`drop database if exists "${name}" with (force)`);
  await admin.raw(`create database "${name}"`);
  await admin.destroy();
  return knex(pg(name));
}

async function timeDrain(
  queue: BullMqRetryQueue,
  handler: 'real' | 'noop',
  run: () => Promise<{ close(): Promise<void> }>,
): Promise<number> {
  for (let id = 1; id <= N; id++)
    await queue.add({ migration: queue.migration.name, table: 'items', key: [id], epoch: 0, from: 'source' });
  const started = performance.now();
  const worker = await run();
  while ((await queue.size()) > 0) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  await worker.close();
  if (handler === 'real' && (await queue.deadLetters()).length) throw new Error('dead letters during the drain bench');
  return N / seconds;
}

export async function drainBench(): Promise<{ realPerSec: number; noopPerSec: number; ratio: number }> {
  const source = await fresh('mf_bench_drain_src');
  const target = await fresh('mf_bench_drain_tgt');
  for (const db of [source, target]) {
    await db.schema.createTable('items', (t) => {
      t.increments('id').primary();
      t.string('name', 40).notNullable();
      t.integer('qty').notNullable();
      t.decimal('price', 10, 2);
      t.timestamp('updated_at', { useTz: true }).defaultTo(db.fn.now());
    });
  }
  await source.batchInsert(
    'items',
    Array.from({ length: N }, (_, i) => ({ name: `item ${i}`, qty: i, price: (i / 7).toFixed(2) })),
    1000,
  );
  const migration = defineMigration({ name: 'bench-drain', tables: { items: {} } });
  const prefix = `mfbench${Date.now().toString(36)}`;
  const queue = new BullMqRetryQueue(migration, { connection: { host: '127.0.0.1', port: 6379 }, prefix });
  const engine = await startMigration(migration, {
    source,
    target,
    flags: new StaticFlags({ 'bench-drain': 'dualwrite' }),
    retryQueue: queue,
    logger: silentLogger,
  });
  try {
    // Interleave: no-op, real, no-op, real — each measured on a full queue of N jobs.
    const noop: number[] = [];
    const real: number[] = [];
    for (let round = 0; round < 2; round++) {
      noop.push(
        await timeDrain(queue, 'noop', async () => {
          const w = queue.createWorker(async () => {}, CONCURRENCY);
          return { close: () => w.close() };
        }),
      );
      await target('items').delete();
      real.push(await timeDrain(queue, 'real', () => startWorker({ engine, queue, concurrency: CONCURRENCY })));
      await engine.settle();
    }
    const report = await engine.verify();
    if (report.differences !== 0) throw new Error(`drain bench left ${report.differences} differences`);
    const realPerSec = Math.max(...real);
    const noopPerSec = Math.max(...noop);
    return { realPerSec, noopPerSec, ratio: realPerSec / noopPerSec };
  } finally {
    await queue.queue.obliterate({ force: true }).catch(() => {});
    await engine.close();
    await queue.close();
    await source.destroy();
    await target.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await drainBench();
  console.log(
    `drain (${N} jobs, concurrency ${CONCURRENCY}): real mirror ${r.realPerSec.toFixed(0)} jobs/s, no-op ${r.noopPerSec.toFixed(0)} jobs/s, ratio ${r.ratio.toFixed(2)}× (target ≥ 0.5×) ${r.ratio >= 0.5 ? 'MET' : 'MISSED'}`,
  );
}
