import type { ConformanceOps, ItemInput } from '@midflight/core/testing';
import type { MidflightSubscriber } from '@midflight/typeorm';
import { DataSource, type EntityManager, EntitySchema, LessThan, MoreThanOrEqual } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity.js';
import { type Engine, MARIA, PG } from './servers.js';

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

// EntitySchema with explicit column types: nothing depends on emitDecoratorMetadata.
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

/** An initialised TypeORM DataSource on one of the test databases (tables made with Knex). */
export async function openDataSource(
  engine: Engine,
  database: string,
  entities: EntitySchema[] = [Item as EntitySchema, ItemTag as EntitySchema],
): Promise<DataSource> {
  const common = { database, entities, synchronize: false, logging: false } as const;
  const ds =
    engine === 'pg'
      ? new DataSource({ type: 'postgres', host: PG.host, port: PG.port, username: PG.user, ...common })
      : new DataSource({
          type: 'mariadb',
          host: MARIA.host,
          port: MARIA.port,
          username: MARIA.user,
          password: MARIA.password,
          timezone: 'Z',
          ...common,
        });
  return ds.initialize();
}

/**
 * The conformance operations written the way a TypeORM app writes them, through the
 * DataSource that is authoritative now (or the transaction's manager). The where-based
 * operations use the criteria paths whose events carry no ids.
 */
export function typeormOps(mf: MidflightSubscriber, source: DataSource, tx?: EntityManager): ConformanceOps {
  const manager = () => tx ?? mf.writeDataSource(source, Item).manager;
  const items = () => manager().getRepository(Item);
  const tags = () => manager().getRepository(ItemTag);
  const ops: ConformanceOps = {
    async insert(row) {
      const saved = await items().save(items().create(row as Partial<ItemRow>));
      return saved.id;
    },
    async insertMany(rows) {
      await items().insert(rows.map(values));
    },
    async updateById(id, patch) {
      // save of a partial entity: TypeORM loads the row and fires afterUpdate with it.
      await items().save({ id, ...(patch as Partial<ItemRow>) });
    },
    async updateWhere(minQty, patch) {
      await items().update({ qty: MoreThanOrEqual(minQty) }, values(patch));
    },
    async increment(id, by) {
      await items().increment({ id }, 'qty', by);
    },
    async deleteById(id) {
      const row = await items().findOneByOrFail({ id });
      await items().remove(row);
    },
    async deleteWhere(maxQty) {
      await items().delete({ qty: LessThan(maxQty) });
    },
    async upsert(row) {
      await items().upsert(values(row), ['id']);
    },
    async upsertTag(itemId, tag, note) {
      await tags().upsert({ item_id: itemId, tag, note }, ['item_id', 'tag']);
    },
    async deleteTag(itemId, tag) {
      await tags().delete({ item_id: itemId, tag });
    },
    async findById(id) {
      const repo = tx ? tx.getRepository(Item) : source.getRepository(Item);
      const row = await mf.read(repo, (r) => r.findOne({ where: { id }, select: { id: true, name: true } }));
      return row ?? undefined;
    },
    transaction(fn) {
      return manager().transaction((m) => fn(typeormOps(mf, source, m)));
    },
    async manualRollback(fn) {
      const runner = (tx ?? mf.writeDataSource(source, Item).manager).connection.createQueryRunner();
      await runner.connect();
      try {
        await runner.startTransaction();
        await fn(typeormOps(mf, source, runner.manager));
        await runner.rollbackTransaction();
      } finally {
        await runner.release();
      }
    },
  };
  return ops;
}

/** The suite's input as TypeORM's typing of insert/update values (JSON columns take plain objects). */
function values(row: Partial<ItemInput>): QueryDeepPartialEntity<ItemRow> {
  return row as QueryDeepPartialEntity<ItemRow>;
}
