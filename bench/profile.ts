// Where the wrapper's time goes (not part of `pnpm bench`): `tsx bench/profile.ts`.
// UPDATE-by-key latency of variants that add one piece of the wrapper's work at a time
// (RETURNING *, the wrapper in stage 'off', hand-written target upsert, background re-read,
// batched or single-flight background work, the wrapper with its re-read served from memory),
// in interleaved rounds; the split of an awaited write (source part / engine.capture / target
// upsert); and the engine's own JS per write with database calls stubbed.
// Env: PROF_N (updates per variant, default 3000), PROF_ROUNDS (default 6), PROF_VARIANTS
// (comma-separated ids, default all; plain is always included), BENCH_SYNCHRONOUS_COMMIT.
// Databases: mf_bench_prof_src / mf_bench_prof_tgt (dropped and recreated).
// CPU profile of one variant: PROF_VARIANTS=await node --cpu-prof --import tsx bench/profile.ts
import os from 'node:os';
import { defineMigration, type Engine, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { midflight } from '@midflight/knex';
import knex, { type Knex } from 'knex';
import { BASE_TIME, createItems, freshDatabase, pg, positiveInt, ROWS } from './setup.js';
import { ms, ratio, summarize, table } from './stats.js';

const N = positiveInt('PROF_N', 3000);
const ROUNDS = positiveInt('PROF_ROUNDS', 6);
const SRC = 'mf_bench_prof_src';
const TGT = 'mf_bench_prof_tgt';
const COLS = ['id', 'name', 'qty', 'price', 'updated_at'];

interface Variant {
  readonly id: string;
  readonly label: string;
  update(id: number, i: number): Promise<unknown>;
}

const values = (i: number) => ({
  qty: i,
  price: ((i % 1_000_000) / 100).toFixed(2),
  updated_at: new Date(BASE_TIME + i * 1000),
});

async function main(): Promise<void> {
  await freshDatabase(SRC);
  await freshDatabase(TGT);
  const open: Knex[] = [];
  const engines: Engine[] = [];
  const connect = (db: string) => {
    const k = knex(pg(db));
    open.push(k);
    return k;
  };
  try {
    const s0 = connect(SRC);
    const t0 = connect(TGT);
    await createItems(s0, 'items');
    await createItems(t0, 'items');

    // Split of one awaited write: [whole write, engine.capture, target upsert inside it].
    const split = { capture: 0, upsert: 0 };
    const awaitParts: Array<[number, number, number]> = [];
    const floorParts: Array<[number, number]> = [];
    const recheckParts: Array<[number, number]> = [];
    const wrapped = async (name: string, stage: 'off' | 'dualwrite', mode: 'await' | 'handoff') => {
      const source = connect(SRC);
      const target = connect(TGT);
      const engine = await startMigration(defineMigration({ name, tables: { items: {} }, mirror: { mode } }), {
        source,
        target,
        flags: new StaticFlags({ [name]: stage }),
        logger: silentLogger,
      });
      engines.push(engine);
      if (name === 'prof-await-no-reread') {
        // Ablation: the re-check reads the rows this engine just wrote from memory instead of the
        // source, so the wrapper runs without its third query (everything else unchanged).
        const last = new Map<string, Record<string, unknown>>();
        const upsert = engine.target.upsert.bind(engine.target);
        engine.target.upsert = async (table, keyColumns, rows, otherUniques) => {
          for (const r of rows) last.set(String(r.id), r);
          await upsert(table, keyColumns, rows, otherUniques);
        };
        engine.source.readByKeys = async (_t, _k, keys) =>
          keys.map((k) => last.get(String(k[0]))).filter((r): r is Record<string, unknown> => r !== undefined);
      }
      if (name === 'prof-await') {
        // Instance-level timers around engine.capture and the target store's upsert (no package edits).
        const capture = engine.capture.bind(engine);
        engine.capture = async (...args: Parameters<Engine['capture']>) => {
          const t = performance.now();
          await capture(...args);
          split.capture = performance.now() - t;
        };
        const upsert = engine.target.upsert.bind(engine.target);
        engine.target.upsert = async (...args: Parameters<Engine['target']['upsert']>) => {
          const t = performance.now();
          await upsert(...args);
          split.upsert = performance.now() - t;
        };
      }
      return midflight(source, engine);
    };
    const off = await wrapped('prof-off', 'off', 'await');
    const aw = await wrapped('prof-await', 'dualwrite', 'await');
    const ho = await wrapped('prof-handoff', 'dualwrite', 'handoff');
    const awNoReread = await wrapped('prof-await-no-reread', 'dualwrite', 'await');
    const src = connect(SRC);
    const tgt = connect(TGT);
    const upsert = (row: Record<string, unknown>) => tgt('items').insert(row).onConflict(['id']).merge();
    const recheck = (id: number) => src('items').select(COLS).whereIn('id', [id]);
    let background = Promise.resolve();
    const later = (fn: () => Promise<unknown>) => {
      setImmediate(() => {
        background = background.then(fn).then(() => {});
      });
    };

    // Background work batched over a short window instead of one flush per write.
    const WINDOW_MS = 5;
    const pendingRows = new Map<number, Record<string, unknown>>();
    const pendingRechecks = new Set<number>();
    let windowTimer: NodeJS.Timeout | undefined;
    const flushWindow = async () => {
      windowTimer = undefined;
      const rows = [...pendingRows.values()].sort((a, b) => Number(a.id) - Number(b.id));
      const ids = [...pendingRechecks];
      pendingRows.clear();
      pendingRechecks.clear();
      if (rows.length) await tgt('items').insert(rows).onConflict(['id']).merge();
      if (ids.length) await src('items').select(COLS).whereIn('id', ids);
    };
    const inWindow = (row: Record<string, unknown> | undefined, id: number) => {
      if (row) pendingRows.set(id, row);
      pendingRechecks.add(id);
      windowTimer ??= setTimeout(() => {
        background = background.then(flushWindow);
      }, WINDOW_MS);
    };

    // Single flight: one background batch at a time, started on the next turn; whatever arrives
    // while it runs goes into the next batch (adaptive batching, no fixed delay).
    const sfRows = new Map<number, Record<string, unknown>>();
    const sfRechecks = new Set<number>();
    let sfRunning: Promise<void> | undefined;
    const singleFlight = (row: Record<string, unknown> | undefined, id: number) => {
      if (row) sfRows.set(id, row);
      sfRechecks.add(id);
      sfRunning ??= (async () => {
        await new Promise((r) => setImmediate(r));
        while (sfRows.size || sfRechecks.size) {
          const rows = [...sfRows.values()].sort((a, b) => Number(a.id) - Number(b.id));
          const ids = [...sfRechecks];
          sfRows.clear();
          sfRechecks.clear();
          if (rows.length) await tgt('items').insert(rows).onConflict(['id']).merge();
          if (ids.length) await src('items').select(COLS).whereIn('id', ids);
        }
      })().finally(() => {
        sfRunning = undefined;
      });
    };

    const all: Variant[] = [
      { id: 'plain', label: 'UPDATE', update: (id, i) => src('items').where({ id }).update(values(i)) },
      {
        id: 'returning',
        label: 'UPDATE … RETURNING *',
        update: (id, i) => src('items').where({ id }).update(values(i)).returning('*'),
      },
      { id: 'off', label: "wrapper, stage 'off'", update: (id, i) => off('items').where({ id }).update(values(i)) },
      {
        id: 'floor',
        label: 'RETURNING * + target upsert',
        update: async (id, i) => {
          const t = performance.now();
          const [row] = (await src('items').where({ id }).update(values(i)).returning('*')) as Array<
            Record<string, unknown>
          >;
          const t1 = performance.now();
          await upsert(row as Record<string, unknown>);
          floorParts.push([t1 - t, performance.now() - t1]);
        },
      },
      {
        id: 'floor+recheck',
        label: '… + background re-read',
        update: async (id, i) => {
          const t = performance.now();
          const [row] = (await src('items').where({ id }).update(values(i)).returning('*')) as Array<
            Record<string, unknown>
          >;
          const t1 = performance.now();
          await upsert(row as Record<string, unknown>);
          recheckParts.push([t1 - t, performance.now() - t1]);
          later(() => recheck(id));
        },
      },
      {
        id: 'floor-update',
        label: 'RETURNING * + target UPDATE',
        update: async (id, i) => {
          await src('items').where({ id }).update(values(i)).returning('*');
          await tgt('items').where({ id }).update(values(i));
        },
      },
      {
        id: 'floor+batched',
        label: `… upsert + re-reads batched ${WINDOW_MS} ms`,
        update: async (id, i) => {
          const [row] = (await src('items').where({ id }).update(values(i)).returning('*')) as Array<
            Record<string, unknown>
          >;
          await upsert(row as Record<string, unknown>);
          inWindow(undefined, id);
        },
      },
      {
        id: 'floor+single-flight',
        label: '… upsert + re-reads single-flight',
        update: async (id, i) => {
          const [row] = (await src('items').where({ id }).update(values(i)).returning('*')) as Array<
            Record<string, unknown>
          >;
          await upsert(row as Record<string, unknown>);
          singleFlight(undefined, id);
        },
      },
      {
        id: 'await',
        label: "wrapper, mode 'await'",
        update: async (id, i) => {
          const t = performance.now();
          await aw('items').where({ id }).update(values(i));
          awaitParts.push([performance.now() - t, split.capture, split.upsert]);
        },
      },
      {
        id: 'await-no-reread',
        label: "wrapper, 'await', re-check from memory",
        update: (id, i) => awNoReread('items').where({ id }).update(values(i)),
      },
      {
        id: 'manual-handoff',
        label: 'RETURNING * + bg upsert + re-read',
        update: async (id, i) => {
          const [row] = (await src('items').where({ id }).update(values(i)).returning('*')) as Array<
            Record<string, unknown>
          >;
          later(async () => {
            await upsert(row as Record<string, unknown>);
            await recheck(id);
          });
        },
      },
      {
        id: 'batched-handoff',
        label: `RETURNING * + upsert/re-read batched ${WINDOW_MS} ms`,
        update: async (id, i) => {
          const [row] = (await src('items').where({ id }).update(values(i)).returning('*')) as Array<
            Record<string, unknown>
          >;
          inWindow(row, id);
        },
      },
      {
        id: 'single-flight-handoff',
        label: 'RETURNING * + upsert/re-read single-flight',
        update: async (id, i) => {
          const [row] = (await src('items').where({ id }).update(values(i)).returning('*')) as Array<
            Record<string, unknown>
          >;
          singleFlight(row, id);
        },
      },
      {
        id: 'handoff',
        label: "wrapper, mode 'handoff'",
        update: (id, i) => ho('items').where({ id }).update(values(i)),
      },
    ];
    const wanted = process.env.PROF_VARIANTS?.split(',').map((s) => s.trim());
    const variants = wanted ? all.filter((v) => wanted.includes(v.id) || v.id === 'plain') : all;

    let counter = 0;
    const settle = async () => {
      while (windowTimer) await new Promise((r) => setTimeout(r, WINDOW_MS));
      await background;
      await sfRunning;
      for (const e of engines) await e.drain();
    };
    const samples = new Map<string, number[]>(variants.map((v) => [v.id, []]));
    const cpu = new Map<string, number>(variants.map((v) => [v.id, 0]));
    const sys = new Map<string, number>(variants.map((v) => [v.id, 0]));
    const block = async (v: Variant, n: number, out: number[] | undefined) => {
      for (let j = 0; j < n; j++) {
        const i = ++counter;
        const t = performance.now();
        await v.update((i % ROWS) + 1, i);
        out?.push(performance.now() - t);
      }
    };
    for (const v of variants) {
      await block(v, 200, undefined);
      await settle();
    }
    awaitParts.length = 0;
    floorParts.length = 0;
    recheckParts.length = 0;
    const per = Math.ceil(N / ROUNDS);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(r + k) % variants.length] as Variant;
        const c = process.cpuUsage();
        await block(v, per, samples.get(v.id));
        await settle();
        const u = process.cpuUsage(c);
        cpu.set(v.id, (cpu.get(v.id) ?? 0) + u.user + u.system);
        sys.set(v.id, (sys.get(v.id) ?? 0) + u.system);
      }
    }
    const base = summarize(samples.get('plain') as number[]);
    console.log(`UPDATE by key, ${per * ROUNDS} per variant, ${ROUNDS} interleaved rounds; load ${os.loadavg()[0]}`);
    console.log(
      table(
        ['variant', 'p50 ms', 'p99 ms', 'mean ms', 'p50 ×plain', 'p99 ×plain', 'CPU µs/write', 'of which sys'],
        variants.map((v) => {
          const s = summarize(samples.get(v.id) as number[]);
          return [
            `${v.id}: ${v.label}`,
            ms(s.p50),
            ms(s.p99),
            ms(s.mean),
            ratio(s.p50 / base.p50),
            ratio(s.p99 / base.p99),
            ((cpu.get(v.id) ?? 0) / (per * ROUNDS)).toFixed(0),
            ((sys.get(v.id) ?? 0) / (per * ROUNDS)).toFixed(0),
          ];
        }),
      ),
    );
    const p50 = (xs: number[]) => ms(summarize(xs).p50);
    if (awaitParts.length) {
      console.log(
        `'await' split (p50 of each part): source write through the wrapper ${p50(awaitParts.map(([w, c]) => w - c))} ms, ` +
          `engine.capture ${p50(awaitParts.map(([, c]) => c))} ms, of which target upsert ${p50(awaitParts.map(([, , u]) => u))} ms ` +
          `and engine/propagator JS ${p50(awaitParts.map(([, c, u]) => c - u))} ms`,
      );
    }
    for (const [name, parts] of [
      ['floor', floorParts],
      ['floor+recheck', recheckParts],
    ] as const) {
      if (!parts.length) continue;
      console.log(
        `'${name}' split (p50 of each part): source UPDATE … RETURNING * ${p50(parts.map(([a]) => a))} ms, ` +
          `target upsert ${p50(parts.map(([, b]) => b))} ms`,
      );
    }

    // The engine's own JS per captured write: same engines, database calls stubbed out, so what
    // is left is capture → propagator → metrics → re-check bookkeeping (CPU, one write at a time).
    const M = 20_000;
    const tick = () => new Promise<void>((r) => setImmediate(r));
    const row = { id: 1, name: 'x', qty: 1, price: '1.00', updated_at: new Date(BASE_TIME) };
    const cpuPer = async (fn: () => Promise<void>) => {
      for (let j = 0; j < 2000; j++) await fn();
      const c = process.cpuUsage();
      const t = performance.now();
      for (let j = 0; j < M; j++) await fn();
      const u = process.cpuUsage(c);
      return { cpu: (u.user + u.system) / M, wall: ((performance.now() - t) * 1000) / M };
    };
    const baseline = await cpuPer(tick);
    const lines: string[][] = [];
    for (const e of engines.slice(1, 3)) {
      e.target.upsert = async () => {};
      e.target.deleteByKeys = async () => {};
      e.source.readByKeys = async (_t, _k, keys) => keys.map((k) => ({ ...row, id: k[0] }));
      const r = await cpuPer(async () => {
        await e.capture([{ table: 'items', key: [1], op: 'upsert', row }], 'source');
        await tick();
        await tick();
      });
      lines.push([e.migration.name, (r.cpu - baseline.cpu).toFixed(1), (r.wall - baseline.wall).toFixed(1)]);
    }
    console.log('\nEngine JS per captured write, database calls stubbed (minus an empty event-loop turn):');
    console.log(table(['engine', 'CPU µs', 'wall µs'], lines));
  } finally {
    for (const e of engines) await e.close().catch(() => {});
    for (const k of open) await k.destroy().catch(() => {});
  }
}

await main();
