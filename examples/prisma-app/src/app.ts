/**
 * A small items service on Prisma 7, the way an app looks once Midflight is installed: one
 * line where the client is made (in `startApp`), and the routes talk to `db` exactly as they
 * talked to the plain client before. Nothing here knows which stage the migration is in.
 *
 * The clients are the Prisma adapter's test fixtures (packages/prisma/fixtures/*.prisma, generated
 * by `pnpm generate` at the root): `items` and `item_tags`, with a PostgreSQL and a MySQL provider.
 *
 * Routes: POST /items, GET/PATCH/DELETE /items/:id, POST /restock (an interactive
 * `$transaction` over both tables), GET /metrics.
 */
import type { Engine } from '@midflight/core';
import { midflight } from '@midflight/prisma';
import type { PrismaPg } from '@prisma/adapter-pg';
import type { MysqlPrismaClient } from '../../../packages/prisma/fixtures/clients.js';
import { PgPrismaClient as PrismaClient } from '../../../packages/prisma/fixtures/clients.js';
import { HttpError, int, itemPatch, price, type RunningApp, serve, text } from './http.js';
import { itemsMigration } from './scenario.js';

/** The migration this app runs: `items` and `item_tags`, keyed by their primary keys. */
export const migration = itemsMigration('items-prisma-demo');

export interface AppOptions {
  /** The driver adapter on the source (the app's database), e.g. `new PrismaPg({ … })`. */
  readonly adapter: PrismaPg;
  /**
   * A Prisma client on the target database, generated for the target's provider with the same
   * models: Midflight routes reads (and, from `rampdown` on, writes) to it.
   */
  readonly target: MysqlPrismaClient;
  readonly engine: Engine;
  /** 0 (default) picks a free port. The app listens on 127.0.0.1 only. */
  readonly port?: number;
}

/** Prisma's "record to update/delete not found". */
const notFound = (e: unknown) => (e as { code?: unknown } | null)?.code === 'P2025';

/** Starts the HTTP service; `close()` also disconnects its client. */
export async function startApp(options: AppOptions): Promise<RunningApp> {
  const { adapter, engine, target } = options;
  // Midflight installed in one line; the routes below use `db` as they used the plain client.
  const db = new PrismaClient({ adapter }).$extends(midflight(engine, { target }));

  const app = await serve(async (req) => {
    const { method, path, itemId: id } = req;

    if (method === 'POST' && path === '/items') {
      const body = await req.body();
      const row = await db.item.create({
        data: {
          name: text(body.name, 'name', 40),
          qty: body.qty === undefined ? 0 : int(body.qty, 'qty', 0, 1_000_000_000),
          price: price(body.price),
          meta: { via: 'api' },
        },
        select: { id: true },
      });
      return [201, { id: row.id }];
    }
    if (id !== undefined && method === 'GET') {
      // Two routed reads: in `shadow`/`live` they may go to the target, with fallback to the source.
      const item = await db.item.findUnique({ where: { id } });
      if (!item) throw new HttpError(404, 'no such item');
      const tags = await db.itemTag.findMany({ where: { itemId: id }, orderBy: { tag: 'asc' } });
      return [200, { ...item, tags: tags.map((t) => ({ tag: t.tag, note: t.note })) }];
    }
    if (id !== undefined && method === 'PATCH') {
      const patch = itemPatch(await req.body());
      try {
        await db.item.update({ where: { id }, data: patch, select: { id: true } });
      } catch (e) {
        if (notFound(e)) throw new HttpError(404, 'no such item');
        throw e;
      }
      return [200, { id }];
    }
    if (id !== undefined && method === 'DELETE') {
      // A batch transaction: the item and its tags go together.
      const [, removed] = await db.$transaction([
        db.itemTag.deleteMany({ where: { itemId: id } }),
        db.item.deleteMany({ where: { id } }),
      ]);
      if (removed.count === 0) throw new HttpError(404, 'no such item');
      return [204];
    }
    if (method === 'POST' && path === '/restock') {
      const body = await req.body();
      const itemId = int(body.id, 'id', 1, 2 ** 31 - 1);
      const by = int(body.by, 'by', 1, 1_000);
      const tag = text(body.tag, 'tag', 30);
      // An interactive transaction: the update locks the item first, so that two restocks of
      // one item (hot keys) queue on it instead of racing on its tag.
      const qty = await db.$transaction(async (tx) => {
        let item: { qty: number };
        try {
          item = await tx.item.update({
            where: { id: itemId },
            data: { qty: { increment: by } },
            select: { qty: true },
          });
        } catch (e) {
          if (notFound(e)) throw new HttpError(404, 'no such item');
          throw e;
        }
        const note = `restocked +${by}`;
        await tx.itemTag.upsert({
          where: { itemId_tag: { itemId, tag } },
          create: { itemId, tag, note },
          update: { note },
        });
        return item.qty;
      });
      return [200, { id: itemId, qty }];
    }
    return undefined;
  }, options);
  return {
    ...app,
    async close() {
      await app.close();
      await db.$disconnect();
    },
  };
}
