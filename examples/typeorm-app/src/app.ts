/**
 * A small items service on TypeORM 1.x, the way an app looks once Midflight is installed: the
 * `MidflightSubscriber` is pushed onto the app's DataSource, writes go through
 * `mf.writeDataSource(…)` (the app's DataSource until `rampdown`, the target's after the flip)
 * and reads through `mf.read(…)` (routed by stage, with fallback and shadow compare from core).
 * Nothing here knows which stage the migration is in.
 *
 * Routes: POST /items, GET/PATCH/DELETE /items/:id, POST /restock (a transaction over both
 * tables), GET /metrics — the same as the Prisma example, whose HTTP plumbing it shares.
 */
import type { Engine } from '@midflight/core';
import { MidflightSubscriber } from '@midflight/typeorm';
import { type DataSource, EntitySchema } from 'typeorm';
import { HttpError, int, itemPatch, price, type RunningApp, serve, text } from '../../prisma-app/src/http.js';
import { itemsMigration } from '../../prisma-app/src/scenario.js';

/** The migration this app runs: `items` and `item_tags`, keyed by their primary keys. */
export const migration = itemsMigration('items-typeorm-demo');

export interface ItemRow {
  id: number;
  name: string;
  qty: number;
  price: string | null;
  active: boolean;
  meta: Record<string, unknown> | null;
}

export interface TagRow {
  item_id: number;
  tag: string;
  note: string | null;
}

// EntitySchema with explicit column types: nothing depends on emitDecoratorMetadata (tsx,
// esbuild and vitest do not emit it).
export const Item = new EntitySchema<ItemRow>({
  name: 'Item',
  tableName: 'items',
  columns: {
    id: { type: 'int', primary: true, generated: 'increment' },
    name: { type: 'varchar', length: 40 },
    qty: { type: 'int', default: 0 },
    price: { type: 'decimal', precision: 10, scale: 2, nullable: true },
    active: { type: 'boolean', default: true },
    meta: { type: 'json', nullable: true },
  },
});

export const ItemTag = new EntitySchema<TagRow>({
  name: 'ItemTag',
  tableName: 'item_tags',
  columns: {
    item_id: { type: 'int', primary: true },
    tag: { type: 'varchar', length: 30, primary: true },
    note: { type: 'varchar', length: 100, nullable: true },
  },
});

export const ENTITIES = [Item, ItemTag];

export interface AppOptions {
  /** The app's DataSource (the source database), initialised. */
  readonly dataSource: DataSource;
  /** The target database as a DataSource with the same entities, initialised. */
  readonly target: DataSource;
  readonly engine: Engine;
  /** 0 (default) picks a free port. The app listens on 127.0.0.1 only. */
  readonly port?: number;
}

/** Starts the HTTP service with Midflight installed on `dataSource`. */
export async function startApp(options: AppOptions): Promise<RunningApp> {
  const { dataSource, engine, target } = options;
  // After initialize(): TypeORM's `subscribers` option only takes classes. The subscriber
  // registers itself on the target too (its writes are the authoritative ones from `rampdown` on).
  const mf = new MidflightSubscriber(engine, { target });
  dataSource.subscribers.push(mf);

  /** The DataSource writes (and transactions) go through now. */
  const writes = () => mf.writeDataSource(dataSource, Item);

  return serve(async (req) => {
    const { method, path, itemId: id } = req;

    if (method === 'POST' && path === '/items') {
      const body = await req.body();
      const items = writes().getRepository(Item);
      const saved = await items.save(
        items.create({
          name: text(body.name, 'name', 40),
          qty: body.qty === undefined ? 0 : int(body.qty, 'qty', 0, 1_000_000_000),
          price: price(body.price),
          meta: { via: 'api' },
        }),
      );
      return [201, { id: saved.id }];
    }
    if (id !== undefined && method === 'GET') {
      // Two routed reads: in `shadow`/`live` they may go to the target, with fallback to the source.
      const item = await mf.read(dataSource.getRepository(Item), (r) => r.findOneBy({ id }));
      if (!item) throw new HttpError(404, 'no such item');
      const tags = await mf.read(dataSource.getRepository(ItemTag), (r) =>
        r.find({ where: { item_id: id }, order: { tag: 'ASC' } }),
      );
      return [200, { ...item, tags: tags.map((t) => ({ tag: t.tag, note: t.note })) }];
    }
    if (id !== undefined && method === 'PATCH') {
      const patch = itemPatch(await req.body());
      const result = await writes().getRepository(Item).update({ id }, patch);
      if (result.affected === 0) throw new HttpError(404, 'no such item');
      return [200, { id }];
    }
    if (id !== undefined && method === 'DELETE') {
      // The item and its tags go together.
      const removed = await writes().transaction(async (m) => {
        await m.delete(ItemTag, { item_id: id });
        return (await m.delete(Item, { id })).affected ?? 0;
      });
      if (removed === 0) throw new HttpError(404, 'no such item');
      return [204];
    }
    if (method === 'POST' && path === '/restock') {
      const body = await req.body();
      const itemId = int(body.id, 'id', 1, 2 ** 31 - 1);
      const by = int(body.by, 'by', 1, 1_000);
      const tag = text(body.tag, 'tag', 30);
      const qty = await writes().transaction(async (m) => {
        // Lock the item first, so that two restocks of one item (hot keys) queue on it
        // instead of racing on its tag.
        const item = await m.findOne(Item, { where: { id: itemId }, lock: { mode: 'pessimistic_write' } });
        if (!item) throw new HttpError(404, 'no such item');
        await m.increment(Item, { id: itemId }, 'qty', by);
        await m.upsert(ItemTag, { item_id: itemId, tag, note: `restocked +${by}` }, ['item_id', 'tag']);
        return item.qty + by;
      });
      return [200, { id: itemId, qty }];
    }
    return undefined;
  }, options);
}
