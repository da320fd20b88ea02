import type { Knex } from 'knex';

// Kept apart from the suite (which imports vitest) so that example apps and scripts can create
// the same tables outside a test run: `@midflight/core/testing/schema`.

/** Creates the suite's tables: `items` (generated id) and `item_tags` (composite key). */
export async function createConformanceSchema(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('item_tags');
  await db.schema.dropTableIfExists('items');
  await db.schema.createTable('items', (t) => {
    t.increments('id').primary();
    t.string('name', 40).notNullable();
    t.integer('qty').notNullable().defaultTo(0);
    t.decimal('price', 10, 2).nullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.json('meta').nullable();
  });
  await db.schema.createTable('item_tags', (t) => {
    t.integer('item_id').notNullable();
    t.string('tag', 30).notNullable();
    t.string('note', 100).nullable();
    t.primary(['item_id', 'tag']);
  });
}
