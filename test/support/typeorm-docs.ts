import type { Knex } from 'knex';
import { EntitySchema } from 'typeorm';
import type { Engine } from './servers.js';

export interface DocRow {
  id: number;
  title: string;
  n: number;
  deletedAt: Date | null;
}

/** A soft-deletable entity whose property names differ from its column names (`deletedAt` ↔ `deleted_at`). */
export function docSchema(engine: Engine): EntitySchema<DocRow> {
  return new EntitySchema<DocRow>({
    name: 'Doc',
    tableName: 'docs',
    columns: {
      id: { type: 'int', primary: true, generated: 'increment' },
      title: { type: 'varchar', length: 40 },
      n: { type: 'int' },
      deletedAt: {
        name: 'deleted_at',
        type: engine === 'pg' ? 'timestamptz' : 'datetime',
        precision: 3,
        nullable: true,
        deleteDate: true,
      },
    },
  });
}

export async function createDocs(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('docs');
  await db.schema.createTable('docs', (t) => {
    t.increments('id').primary();
    t.string('title', 40).notNullable();
    t.integer('n').notNullable();
    t.datetime('deleted_at', { precision: 3 }).nullable();
  });
}
