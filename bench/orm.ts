// The Prisma and TypeORM rows of `pnpm bench`: a single-row UPDATE by key through the plain ORM,
// and through Midflight with the mirror awaited and handed off (stage dualwrite, PostgreSQL →
// PostgreSQL), interleaved in rounds, in one run. Run alone: `tsx bench/orm.ts`.
import { defineMigration, type Engine, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { midflight as prismaMidflight } from '@midflight/prisma';
import { MidflightSubscriber } from '@midflight/typeorm';
import knex, { type Knex } from 'knex';
import { pgPrisma } from '../packages/prisma/fixtures/clients.js';
import { Item, openDataSource } from '../test/support/typeorm-ops.js';
import { freshDatabase, pg, positiveInt } from './setup.js';
import { ms, ratio, summarize, table } from './stats.js';

const N = positiveInt('BENCH_ORM_N', 1500);
const ROUNDS = positiveInt('BENCH_ROUNDS', 10);
const ROWS = 500;

type Write = (id: number, i: number) => Promise<unknown>;
interface Variant {
  readonly label: string;
  readonly write: Write;
  readonly engine?: Engine;
}

async function freshItems(name: string): Promise<Knex> {
  await freshDatabase(name);
  const db = knex(pg(name));
  await db.schema.createTable('items', (t) => {
    t.increments('id').primary();
    t.string('name', 40).notNullable();
    t.integer('qty').notNullable().defaultTo(0);
    t.decimal('price', 10, 2).nullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.json('meta').nullable();
  });
  await db.batchInsert(
    'items',
    Array.from({ length: ROWS }, (_, i) => ({ name: `item ${i}`, qty: i })),
    500,
  );
  return db;
}

async function engineFor(name: string, source: Knex, target: Knex, mode: 'await' | 'handoff'): Promise<Engine> {
  const migration = defineMigration({ name, tables: { items: {} }, mirror: { mode } });
  return startMigration(migration, {
    source,
    target,
    flags: new StaticFlags({ [name]: 'dualwrite' }),
    logger: silentLogger,
  });
}

async function measure(title: string, variants: readonly Variant[]): Promise<string> {
  const samples = variants.map(() => [] as number[]);
  const perRound = Math.ceil(N / ROUNDS);
  for (const v of variants) for (let i = 0; i < 100; i++) await v.write((i % ROWS) + 1, i); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    const order = variants.map((_, i) => i).sort(() => (round % 2 ? 1 : -1));
    for (const vi of order) {
      const v = variants[vi] as Variant;
      for (let k = 0; k < perRound; k++) {
        const i = round * perRound + k;
        const started = performance.now();
        await v.write((i % ROWS) + 1, i);
        (samples[vi] as number[]).push(performance.now() - started);
      }
      await v.engine?.drain();
    }
  }
  const base = summarize(samples[0] as number[]);
  const rows = variants.map((v, i) => {
    const s = summarize(samples[i] as number[]);
    return [v.label, String(s.n), ms(s.p50), ms(s.p99), ratio(s.p50 / base.p50), ratio(s.p99 / base.p99)];
  });
  const lines = [title, table(['variant', 'n', 'p50 ms', 'p99 ms', 'p50 ×plain', 'p99 ×plain'], rows)];
  for (const v of variants) {
    if (!v.engine) continue;
    const report = await v.engine.verify();
    if (report.differences !== 0) throw new Error(`${v.label}: ${report.differences} differences after the bench`);
  }
  lines.push('verify: 0 differences for every Midflight variant');
  return lines.join('\n');
}

export async function ormBench(): Promise<string> {
  const dbs = {
    plain: await freshItems('mf_bench_orm_plain'),
    awaitSrc: await freshItems('mf_bench_orm_await_src'),
    awaitTgt: await freshItems('mf_bench_orm_await_tgt'),
    handoffSrc: await freshItems('mf_bench_orm_handoff_src'),
    handoffTgt: await freshItems('mf_bench_orm_handoff_tgt'),
  };
  const awaitEngine = await engineFor('orm-await', dbs.awaitSrc, dbs.awaitTgt, 'await');
  const handoffEngine = await engineFor('orm-handoff', dbs.handoffSrc, dbs.handoffTgt, 'handoff');
  const out: string[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  try {
    // Prisma: update by key.
    const plainPrisma = pgPrisma('mf_bench_orm_plain');
    const prismaAwait = pgPrisma('mf_bench_orm_await_src').$extends(
      prismaMidflight(awaitEngine, { target: pgPrisma('mf_bench_orm_await_tgt') }),
    );
    const prismaHandoff = pgPrisma('mf_bench_orm_handoff_src').$extends(
      prismaMidflight(handoffEngine, { target: pgPrisma('mf_bench_orm_handoff_tgt') }),
    );
    closers.push(
      () => plainPrisma.$disconnect(),
      () => prismaAwait.$disconnect(),
      () => prismaHandoff.$disconnect(),
    );
    const prismaUpdate =
      (db: typeof plainPrisma): Write =>
      (id, i) =>
        db.item.update({ where: { id }, data: { qty: i } });
    out.push(
      await measure('Prisma: item.update({ where: { id } })', [
        { label: 'plain Prisma', write: prismaUpdate(plainPrisma) },
        {
          label: "midflight mode 'await'",
          write: prismaUpdate(prismaAwait as unknown as typeof plainPrisma),
          engine: awaitEngine,
        },
        {
          label: "midflight mode 'handoff'",
          write: prismaUpdate(prismaHandoff as unknown as typeof plainPrisma),
          engine: handoffEngine,
        },
      ]),
    );
    // TypeORM: repository.update(criteria) — the path whose event carries no ids.
    const plainDs = await openDataSource('pg', 'mf_bench_orm_plain', [Item as never]);
    const awaitDs = await openDataSource('pg', 'mf_bench_orm_await_src', [Item as never]);
    const handoffDs = await openDataSource('pg', 'mf_bench_orm_handoff_src', [Item as never]);
    const awaitTgtDs = await openDataSource('pg', 'mf_bench_orm_await_tgt', [Item as never]);
    const handoffTgtDs = await openDataSource('pg', 'mf_bench_orm_handoff_tgt', [Item as never]);
    awaitDs.subscribers.push(new MidflightSubscriber(awaitEngine, { target: awaitTgtDs }));
    handoffDs.subscribers.push(new MidflightSubscriber(handoffEngine, { target: handoffTgtDs }));
    closers.push(...[plainDs, awaitDs, handoffDs, awaitTgtDs, handoffTgtDs].map((d) => () => d.destroy()));
    const typeormUpdate =
      (ds: typeof plainDs): Write =>
      (id, i) =>
        ds.getRepository('Item').update({ id }, { qty: i });
    out.push(
      await measure('TypeORM: repository.update({ id }, values)', [
        { label: 'plain TypeORM', write: typeormUpdate(plainDs) },
        { label: "midflight mode 'await'", write: typeormUpdate(awaitDs), engine: awaitEngine },
        { label: "midflight mode 'handoff'", write: typeormUpdate(handoffDs), engine: handoffEngine },
      ]),
    );
  } finally {
    for (const c of closers) await c().catch(() => {});
    await awaitEngine.close();
    await handoffEngine.close();
    for (const db of Object.values(dbs)) await db.destroy();
  }
  out.push('Targets (issues 3, 4): awaited ≤ 2.1× the plain ORM write, handed off ≤ 1.1×.');
  return out.join('\n\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(await ormBench());
}
