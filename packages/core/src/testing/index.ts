/**
 * The adapter conformance suite. Every adapter's test file builds a harness (fresh databases,
 * and the write/read operations expressed in its ORM) and calls `conformanceSuite(harness)`;
 * the suite runs the same scenarios in every stage and asserts on the real databases.
 *
 * @example
 * conformanceSuite({ name: 'knex pg→pg', databases, bind: (engine, source) => knexOps(midflight(source, engine)) })
 */
import type { Knex } from 'knex';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Engine, startMigration } from '../engine.js';
import { StaticFlags } from '../flags.js';
import { silentLogger } from '../logger.js';
import { defineMigration, type Migration } from '../migration.js';
import { authority, mirrors, STAGES, type Stage } from '../stage.js';
import { createConformanceSchema } from './schema.js';

export { createConformanceSchema };

export interface ItemInput {
  name: string;
  qty: number;
  price?: string | null;
  active?: boolean;
  meta?: Record<string, unknown> | null;
}

/** The writes and reads the suite drives, expressed in the adapter's own API. */
export interface ConformanceOps {
  /** Inserts one item (id generated) and returns its id. */
  insert(row: ItemInput): Promise<number>;
  /** Inserts several items in one statement (ids generated). */
  insertMany(rows: ItemInput[]): Promise<void>;
  updateById(id: number, patch: Partial<ItemInput>): Promise<void>;
  /** Updates every item with `qty >= minQty` (a write whose keys the ORM does not report). */
  updateWhere(minQty: number, patch: Partial<ItemInput>): Promise<void>;
  /** `qty = qty + by` for one item. */
  increment(id: number, by: number): Promise<void>;
  deleteById(id: number): Promise<void>;
  /** Deletes every item with `qty < maxQty`. */
  deleteWhere(maxQty: number): Promise<void>;
  /** Insert-or-update by id. */
  upsert(row: ItemInput & { id: number }): Promise<void>;
  /** Composite-key table. */
  upsertTag(itemId: number, tag: string, note: string): Promise<void>;
  deleteTag(itemId: number, tag: string): Promise<void>;
  /** Reads one item through the adapter (routed by stage). */
  findById(id: number): Promise<{ id: number; name: string } | undefined>;
  /** Runs `fn` in a transaction; `fn` throwing rolls it back (and the error is rethrown). */
  transaction<T>(fn: (ops: ConformanceOps) => Promise<T>): Promise<T>;
  /** Opens a transaction, runs `fn`, then rolls back explicitly (no error). */
  manualRollback(fn: (ops: ConformanceOps) => Promise<void>): Promise<void>;
}

export interface ConformanceHarness {
  readonly name: string;
  /** Mirror mode to run the suite in (default `await`). */
  readonly mode?: 'await' | 'handoff';
  /** Fresh, empty source and target databases (plain Knex on each). */
  databases(): Promise<{ source: Knex; target: Knex }>;
  /** The app-facing handle bound to an engine. */
  bind(engine: Engine, source: Knex): Promise<ConformanceOps> | ConformanceOps;
  close?(): Promise<void>;
}

export function conformanceMigration(name = 'conformance', mode: 'await' | 'handoff' = 'await'): Migration {
  return defineMigration({
    name,
    tables: { items: {}, item_tags: {} },
    mirror: { deadlineMs: 2_000, mode },
    retry: { attempts: 5, backoffMs: 20 },
    reads: { shadowSampleRate: 1 },
  });
}

const cases: Array<{ name: string; run: (ops: ConformanceOps) => Promise<void> }> = [
  {
    name: 'single inserts, updates by key, increments, deletes by key',
    run: async (ops) => {
      const a = await ops.insert({ name: 'alpha', qty: 1, price: '9.99', meta: { b: 2, a: 1 } });
      const b = await ops.insert({ name: 'beta', qty: 2, active: false });
      await ops.updateById(a, { name: 'alpha-2', price: '10.50' });
      await ops.increment(b, 5);
      await ops.deleteById(b);
    },
  },
  {
    name: 'multi-row insert with generated ids',
    run: async (ops) => {
      await ops.insertMany([
        { name: 'm1', qty: 10 },
        { name: 'm2', qty: 20 },
        { name: 'm3', qty: 30 },
      ]);
    },
  },
  {
    name: 'update and delete by an arbitrary where',
    run: async (ops) => {
      await ops.insertMany([
        { name: 'w1', qty: 1 },
        { name: 'w2', qty: 50 },
        { name: 'w3', qty: 60 },
      ]);
      await ops.updateWhere(50, { name: 'bulk' });
      await ops.deleteWhere(5);
    },
  },
  {
    name: 'upsert by key, composite keys',
    run: async (ops) => {
      await ops.upsert({ id: 1000, name: 'u1', qty: 1 });
      await ops.upsert({ id: 1000, name: 'u1-merged', qty: 2 });
      await ops.upsertTag(1000, 'red', 'first');
      await ops.upsertTag(1000, 'blue', 'second');
      await ops.upsertTag(1000, 'red', 'changed');
      await ops.deleteTag(1000, 'blue');
    },
  },
  {
    name: 'transaction commit, with a nested transaction rolled back',
    run: async (ops) => {
      await ops.transaction(async (tx) => {
        const id = await tx.insert({ name: 'tx-kept', qty: 3 });
        await tx.updateById(id, { qty: 4 });
        await expect(
          tx.transaction(async (inner) => {
            await inner.insert({ name: 'nested-dropped', qty: 99 });
            throw new Error('roll back the savepoint');
          }),
        ).rejects.toThrow('roll back the savepoint');
        await tx.upsertTag(id, 'tx', 'in a transaction');
      });
    },
  },
];

/**
 * Registers the conformance scenarios for one adapter and database pair, in every stage.
 */
export function conformanceSuite(harness: ConformanceHarness): void {
  describe(`conformance: ${harness.name}`, () => {
    let source: Knex;
    let target: Knex;
    let engine: Engine;
    let flags: StaticFlags;
    let ops: ConformanceOps;
    const migration = conformanceMigration('conformance', harness.mode);

    beforeAll(async () => {
      ({ source, target } = await harness.databases());
      await createConformanceSchema(source);
      await createConformanceSchema(target);
      flags = new StaticFlags({ [migration.name]: 'off' });
      engine = await startMigration(migration, { source, target, flags, logger: silentLogger });
      ops = await harness.bind(engine, source);
    });

    afterAll(async () => {
      await engine?.close();
      await harness.close?.();
      await source?.destroy();
      await target?.destroy();
    });

    beforeEach(async () => {
      for (const db of [source, target]) {
        await db('item_tags').delete();
        await db('items').delete();
      }
    });

    for (const stage of STAGES) {
      describe(`stage ${stage}`, () => {
        beforeEach(() => flags.set(migration.name, { stage, rollout: 100 }));

        for (const c of cases) {
          it(c.name, async () => {
            await c.run(ops);
            await engine.drain();
            await expectStageOutcome(engine, stage, source, target);
          });
        }

        it('a rolled-back transaction leaves the mirrored side untouched', async () => {
          const before = await mirroredCount(engine);
          await expect(
            ops.transaction(async (tx) => {
              await tx.insert({ name: 'doomed', qty: 1 });
              throw new Error('rollback please');
            }),
          ).rejects.toThrow('rollback please');
          await ops.manualRollback(async (tx) => {
            await tx.insert({ name: 'doomed-too', qty: 2 });
          });
          await engine.drain();
          // Dropped, not mirrored and then repaired: nothing reached the mirror at all.
          expect(await mirroredCount(engine)).toBe(before);
          expect(await names(source)).toEqual([]);
          expect(await names(target)).toEqual([]);
        });

        it('reads go where the stage says', async () => {
          // A row that exists only on the target tells which side answered.
          await target('items').insert({ id: 7777, name: 'only-in-target', qty: 0 });
          const found = await ops.findById(7777);
          const expectTarget = stage === 'live' || stage === 'rampdown' || stage === 'complete';
          expect(found?.name).toBe(expectTarget ? 'only-in-target' : undefined);
          await engine.drain();
        });
      });
    }
  });
}

/** Rows mirrored so far, from the engine's own metrics. */
export async function mirroredCount(engine: Engine): Promise<number> {
  const m = await engine.metrics.mirrored.get();
  return m.values.reduce((n, v) => n + v.value, 0);
}

async function names(db: Knex): Promise<string[]> {
  return (await db('items').select('name').orderBy('name')).map((r: { name: string }) => r.name);
}

async function expectStageOutcome(engine: Engine, stage: Stage, source: Knex, target: Knex): Promise<void> {
  const { deadLetters } = await engine.queueState();
  expect(deadLetters).toEqual([]);
  const srcNames = await names(source);
  const tgtNames = await names(target);
  if (!mirrors(stage)) {
    // One side only: the authoritative side has the writes, the other stays empty.
    const [written, untouched] = authority(stage) === 'source' ? [srcNames, tgtNames] : [tgtNames, srcNames];
    expect(written.length).toBeGreaterThan(0);
    expect(untouched).toEqual([]);
    return;
  }
  expect(tgtNames).toEqual(srcNames);
  const report = await engine.verify();
  expect(
    report.tables.map((t) => ({ table: t.table, missing: t.missing, extra: t.extra, different: t.different })),
  ).toEqual(report.tables.map((t) => ({ table: t.table, missing: [], extra: [], different: [] })));
  expect(report.differences).toBe(0);
  expect(srcNames.length).toBeGreaterThan(0);
}
