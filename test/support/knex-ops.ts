import type { ConformanceOps, ItemInput } from '@midflight/core/testing';
import type { Knex } from 'knex';

/** The conformance operations written the way a Knex app writes them. */
export function knexOps(db: Knex): ConformanceOps {
  const enc = (row: Partial<ItemInput>) => ({
    ...row,
    ...(row.meta !== undefined ? { meta: row.meta === null ? null : JSON.stringify(row.meta) } : {}),
  });
  const pg = !/mysql/.test(String(db.client.config.client));
  const ops: ConformanceOps = {
    async insert(row) {
      const q = db('items').insert(enc(row));
      const [r] = await (pg ? q.returning('id') : q);
      return Number(typeof r === 'object' ? (r as { id: number }).id : r);
    },
    async insertMany(rows) {
      await db('items').insert(rows.map(enc));
    },
    async updateById(id, patch) {
      await db('items').where({ id }).update(enc(patch));
    },
    async updateWhere(minQty, patch) {
      await db('items').where('qty', '>=', minQty).update(enc(patch));
    },
    async increment(id, by) {
      await db('items').where({ id }).increment('qty', by);
    },
    async deleteById(id) {
      await db('items').where({ id }).delete();
    },
    async deleteWhere(maxQty) {
      await db('items').where('qty', '<', maxQty).del();
    },
    async upsert(row) {
      await db('items').insert(enc(row)).onConflict('id').merge();
    },
    async upsertTag(itemId, tag, note) {
      await db('item_tags').insert({ item_id: itemId, tag, note }).onConflict(['item_id', 'tag']).merge();
    },
    async deleteTag(itemId, tag) {
      await db('item_tags').where({ item_id: itemId, tag }).del();
    },
    async findById(id) {
      return db('items').where({ id }).first('id', 'name');
    },
    transaction(fn) {
      return db.transaction((trx) => fn(knexOps(trx)));
    },
    async manualRollback(fn) {
      const trx = await db.transaction();
      await fn(knexOps(trx));
      await trx.rollback();
    },
  };
  return ops;
}
