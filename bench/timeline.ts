// Timeline of one write, from Knex 'query' / 'query-response' events (not part of `pnpm bench`):
// median gap between consecutive events of each write, for one variant per process.
// Run `tsx bench/profile.ts` first (it creates mf_bench_prof_src / mf_bench_prof_tgt), then e.g.
//   BENCH_SYNCHRONOUS_COMMIT=off TL_VARIANT=await tsx bench/timeline.ts
// TL_VARIANT: off | await | handoff | await-no-reread | floor | floor+recheck. TL_N: writes (4000).
import { defineMigration, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { midflight } from '@midflight/knex';
import knex, { type Knex } from 'knex';
import { BASE_TIME, pg, positiveInt, ROWS } from './setup.js';

const VARIANTS = ['off', 'await', 'handoff', 'await-no-reread', 'floor', 'floor+recheck'] as const;
type VariantId = (typeof VARIANTS)[number];
const variant = (process.env.TL_VARIANT ?? 'await') as VariantId;
if (!VARIANTS.includes(variant)) throw new Error(`TL_VARIANT must be one of ${VARIANTS.join(', ')}`);
const N = positiveInt('TL_N', 4000);
const SKIP = Math.min(500, Math.floor(N / 4));

const src = knex(pg('mf_bench_prof_src'));
const tgt = knex(pg('mf_bench_prof_tgt'));
const engine = await startMigration(
  defineMigration({ name: 'tl', tables: { items: {} }, mirror: { mode: variant === 'handoff' ? 'handoff' : 'await' } }),
  {
    source: src,
    target: tgt,
    flags: new StaticFlags({ tl: variant === 'off' ? 'off' : 'dualwrite' }),
    logger: silentLogger,
  },
);
if (variant === 'await-no-reread') {
  // The re-check reads what this engine just wrote from memory: the wrapper without its third query.
  const last = new Map<string, Record<string, unknown>>();
  const upsert = engine.target.upsert.bind(engine.target);
  engine.target.upsert = async (table, keyColumns, rows, otherUniques) => {
    for (const r of rows) last.set(String(r.id), r);
    await upsert(table, keyColumns, rows, otherUniques);
  };
  engine.source.readByKeys = async (_t, _k, keys) =>
    keys.map((k) => last.get(String(k[0]))).filter((r): r is Record<string, unknown> => r !== undefined);
}
const db = midflight(src, engine);
const values = (i: number) => ({ qty: i, price: '1.00', updated_at: new Date(BASE_TIME + i) });
const write = async (id: number, i: number): Promise<void> => {
  if (variant !== 'floor' && variant !== 'floor+recheck') {
    await db('items').where({ id }).update(values(i));
    return;
  }
  const [row] = (await src('items').where({ id }).update(values(i)).returning('*')) as Array<Record<string, unknown>>;
  await tgt('items').insert(row).onConflict(['id']).merge();
  if (variant === 'floor+recheck')
    setImmediate(() => void src('items').select('id', 'name', 'qty', 'price', 'updated_at').whereIn('id', [id]));
};

const events: Array<[string, number]> = [];
const listen = (k: Knex, side: string) => {
  const verb = (sql: string) => sql.split(' ')[0] ?? '?';
  k.on('query', (q: { sql: string }) => events.push([`${side} send ${verb(q.sql)}`, performance.now()]));
  k.on('query-response', (_r: unknown, q: { sql: string }) =>
    events.push([`${side} resp ${verb(q.sql)}`, performance.now()]),
  );
};
listen(src, 'src');
listen(tgt, 'tgt');

const gaps = new Map<string, number[]>();
const totals: number[] = [];
for (let i = 1; i <= N; i++) {
  events.length = 0;
  const t0 = performance.now();
  await write((i % ROWS) + 1, i);
  const t1 = performance.now();
  if (i <= SKIP) continue;
  totals.push(t1 - t0);
  let prev: [string, number] = ['start', t0];
  for (const e of [...events, ['end', t1] as [string, number]]) {
    const k = `${prev[0]} → ${e[0]}`;
    const list = gaps.get(k) ?? [];
    list.push(e[1] - prev[1]);
    gaps.set(k, list);
    prev = e;
  }
}
await engine.drain();
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
console.log(
  `${variant}: ${totals.length} writes, median ${(median(totals) * 1000).toFixed(0)} µs; gaps (count, median):`,
);
for (const [k, xs] of [...gaps].sort((a, b) => b[1].length - a[1].length))
  console.log(`  ${k.padEnd(34)} ${String(xs.length).padStart(5)} ${(median(xs) * 1000).toFixed(0).padStart(6)} µs`);
await engine.close();
await src.destroy();
await tgt.destroy();
