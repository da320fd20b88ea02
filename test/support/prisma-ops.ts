import type { ConformanceOps, ItemInput } from '@midflight/core/testing';
import { PgPrisma } from '../../packages/prisma/fixtures/clients.js';

/** What the ops need of a Prisma client (the extended client, or a transaction client of it). */
interface ItemsClient {
  item: {
    create(a: object): Promise<{ id: number }>;
    createMany(a: object): Promise<unknown>;
    update(a: object): Promise<unknown>;
    updateMany(a: object): Promise<unknown>;
    delete(a: object): Promise<unknown>;
    deleteMany(a: object): Promise<unknown>;
    upsert(a: object): Promise<unknown>;
    findUnique(a: object): Promise<{ id: number; name: string } | null>;
  };
  itemTag: { upsert(a: object): Promise<unknown>; deleteMany(a: object): Promise<unknown> };
  $transaction<T>(fn: (tx: ItemsClient) => Promise<T>): Promise<T>;
}

const ROLLBACK = new Error('explicit rollback');

/** The conformance operations written the way a Prisma app writes them. */
export function prismaOps(db: ItemsClient): ConformanceOps {
  // Prisma wants a sentinel for SQL NULL in a JSON column.
  const enc = (row: Partial<ItemInput>) =>
    row.meta === null ? { ...row, meta: PgPrisma.DbNull } : (row as Omit<ItemInput, 'meta'>);
  const ops: ConformanceOps = {
    async insert(row) {
      return (await db.item.create({ data: enc(row), select: { id: true } })).id;
    },
    async insertMany(rows) {
      await db.item.createMany({ data: rows.map(enc) });
    },
    async updateById(id, patch) {
      await db.item.update({ where: { id }, data: enc(patch) });
    },
    async updateWhere(minQty, patch) {
      await db.item.updateMany({ where: { qty: { gte: minQty } }, data: enc(patch) });
    },
    async increment(id, by) {
      await db.item.update({ where: { id }, data: { qty: { increment: by } } });
    },
    async deleteById(id) {
      await db.item.delete({ where: { id } });
    },
    async deleteWhere(maxQty) {
      await db.item.deleteMany({ where: { qty: { lt: maxQty } } });
    },
    async upsert(row) {
      const { id, ...rest } = enc(row) as ItemInput & { id: number };
      await db.item.upsert({ where: { id }, create: { id, ...rest }, update: rest });
    },
    async upsertTag(itemId, tag, note) {
      await db.itemTag.upsert({
        where: { itemId_tag: { itemId, tag } },
        create: { itemId, tag, note },
        update: { note },
      });
    },
    async deleteTag(itemId, tag) {
      await db.itemTag.deleteMany({ where: { itemId, tag } });
    },
    async findById(id) {
      return (await db.item.findUnique({ where: { id }, select: { id: true, name: true } })) ?? undefined;
    },
    transaction(fn) {
      return db.$transaction((tx) => fn(prismaOps(tx)));
    },
    async manualRollback(fn) {
      // Prisma has no explicit rollback: an interactive transaction rolls back when its callback throws.
      await db
        .$transaction(async (tx) => {
          await fn(prismaOps(tx));
          throw ROLLBACK;
        })
        .catch((e: unknown) => {
          if (e !== ROLLBACK) throw e;
        });
    },
  };
  return ops;
}
