import {
  ConfigError,
  defineMigration,
  type MigrationConfig,
  midflightErrorCodes,
  StaticFlags,
  silentLogger,
  startMigration,
} from '@midflight/core';
import { midflight } from '@midflight/knex';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFresh } from './support/servers.js';

let source: Knex;
let target: Knex;

beforeAll(async () => {
  source = await openFresh('pg', 'mf_cfg_src');
  target = await openFresh('mariadb', 'mf_cfg_tgt');
  for (const db of [source, target]) {
    await db.schema.createTable('users', (t) => {
      t.increments('id').primary();
      t.string('email', 100).notNullable();
      t.string('name', 100);
      t.integer('version').defaultTo(0);
    });
  }
  await source.schema.createTable('nopk', (t) => {
    t.integer('a');
    t.string('b', 10);
  });
  await target.schema.createTable('nopk', (t) => {
    t.integer('a');
    t.string('b', 10);
  });
  await target.schema.createTable('users_v2', (t) => {
    t.increments('id').primary();
    t.string('email', 100).notNullable();
    t.string('full_name', 100);
    t.integer('version').defaultTo(0);
  });
  await target.schema.createTable('users_nokey', (t) => {
    t.integer('id');
    t.string('email', 100);
    t.string('name', 100);
    t.integer('version');
  });
  await target.schema.createTable('users_strkey', (t) => {
    t.string('id', 36).primary();
    t.string('email', 100);
    t.string('name', 100);
    t.integer('version');
  });
  await target.schema.createTable('users_notnull', (t) => {
    t.increments('id').primary();
    t.string('email', 100);
    t.string('name', 100);
    t.integer('version');
    t.string('tenant', 20).notNullable();
  });
});

afterAll(async () => {
  await source?.destroy();
  await target?.destroy();
});

const base = (tables: MigrationConfig['tables'], extra: Partial<MigrationConfig> = {}): MigrationConfig => ({
  name: 'cfg',
  tables,
  ...extra,
});

/** Each bad configuration, the code it must raise, and what the error must name. */
const definitionCases: Array<[string, () => unknown, string, { table?: string; column?: string }]> = [
  [
    'a name with spaces',
    () => defineMigration(base({ users: {} }, { name: 'bad name!' })),
    'MIGRATION_NAME_INVALID',
    {},
  ],
  ['no tables', () => defineMigration(base({})), 'NO_TABLES', {}],
  ['an injected table name', () => defineMigration(base({ 'users; drop table x': {} })), 'IDENTIFIER_INVALID', {}],
  [
    'an injected column name',
    () => defineMigration(base({ users: { columns: { 'name"--': 'x' } } })),
    'IDENTIFIER_INVALID',
    { table: 'users' },
  ],
  [
    'two tables onto one target',
    () => defineMigration(base({ users: { target: 'people' }, nopk: { target: 'people' } })),
    'DUPLICATE_TARGET_TABLE',
    { table: 'nopk' },
  ],
  [
    'two columns onto one target column',
    () => defineMigration(base({ users: { columns: { email: 'contact', name: 'contact' } } })),
    'DUPLICATE_MAPPING',
    { table: 'users', column: 'contact' },
  ],
  [
    'an unknown safe stage',
    () => defineMigration(base({ users: {} }, { safeStage: 'on' as never })),
    'INVALID_STAGE',
    {},
  ],
  ['an unknown table stage', () => defineMigration(base({ users: { stage: 'half' as never } })), 'INVALID_STAGE', {}],
  [
    'a negative deadline',
    () => defineMigration(base({ users: {} }, { mirror: { deadlineMs: -1 } })),
    'INVALID_OPTION',
    {},
  ],
  [
    'an unknown mirror mode',
    () => defineMigration(base({ users: {} }, { mirror: { mode: 'fast' as never } })),
    'INVALID_OPTION',
    {},
  ],
  [
    'a sample rate above 1',
    () => defineMigration(base({ users: {} }, { reads: { shadowSampleRate: 2 } })),
    'INVALID_OPTION',
    {},
  ],
  ['zero retry attempts', () => defineMigration(base({ users: {} }, { retry: { attempts: 0 } })), 'INVALID_OPTION', {}],
  [
    'a key column left out of the mapping',
    () => defineMigration(base({ users: { key: 'id', columns: { id: false } } })),
    'INVALID_OPTION',
    { table: 'users', column: 'id' },
  ],
  ['an empty key list', () => defineMigration(base({ users: { key: [] } })), 'INVALID_OPTION', { table: 'users' }],
  [
    'a transform that is not a function',
    () => defineMigration(base({ users: { transform: 'upper' as never } })),
    'TRANSFORM_INVALID',
    { table: 'users' },
  ],
];

const startCases: Array<[string, MigrationConfig['tables'], string, { table?: string; column?: string }]> = [
  ['a table the source lacks', { ghosts: {} }, 'SOURCE_TABLE_MISSING', { table: 'ghosts' }],
  [
    'a target table that does not exist',
    { users: { target: 'users_nowhere' } },
    'TARGET_TABLE_MISSING',
    { table: 'users' },
  ],
  ['no primary key and none configured', { nopk: {} }, 'NO_PRIMARY_KEY', { table: 'nopk' }],
  [
    'a configured key column the source lacks',
    { users: { key: 'uuid' } },
    'KEY_COLUMN_MISSING',
    { table: 'users', column: 'uuid' },
  ],
  [
    'a key renamed to a column the target lacks',
    { users: { columns: { id: 'user_id' } } },
    'TARGET_KEY_COLUMN_MISSING',
    { table: 'users', column: 'user_id' },
  ],
  [
    'an integer key onto a text key',
    { users: { target: 'users_strkey' } },
    'KEY_TYPE_MISMATCH',
    { table: 'users', column: 'id' },
  ],
  [
    'a target without a unique key',
    { users: { target: 'users_nokey' } },
    'KEY_NOT_UNIQUE_IN_TARGET',
    { table: 'users' },
  ],
  [
    'a mapping from a column the source lacks',
    { users: { columns: { nickname: 'name' } } },
    'SOURCE_COLUMN_MISSING',
    { table: 'users', column: 'nickname' },
  ],
  [
    'a column the target lacks',
    { users: { target: 'users_v2' } },
    'TARGET_COLUMN_MISSING',
    { table: 'users', column: 'name' },
  ],
  [
    'a NOT NULL target column nothing fills',
    { users: { target: 'users_notnull' } },
    'TARGET_COLUMN_UNFILLED',
    { table: 'users', column: 'tenant' },
  ],
  [
    'a version column the source lacks',
    { users: { versionColumn: 'updated_at' } },
    'VERSION_COLUMN_MISSING',
    { table: 'users', column: 'updated_at' },
  ],
];

describe('bad configuration is a typed error naming the table and column', () => {
  it(`covers ${definitionCases.length + startCases.length} distinct mistakes`, () => {
    expect(definitionCases.length + startCases.length).toBeGreaterThanOrEqual(15);
    expect(new Set([...definitionCases, ...startCases].map((c) => c[2])).size).toBeGreaterThanOrEqual(15);
    for (const [, , code] of [...definitionCases, ...startCases]) expect(midflightErrorCodes).toContain(code);
  });

  for (const [what, run, code, names] of definitionCases) {
    it(`defineMigration: ${what} → ${code}`, () => {
      let error: unknown;
      try {
        run();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ code, ...names });
      if (names.table) expect((error as Error).message).toContain(names.table);
      if (names.column) expect((error as Error).message).toContain(names.column);
    });
  }

  for (const [what, tables, code, names] of startCases) {
    it(`startMigration: ${what} → ${code}`, async () => {
      const error = await startMigration(defineMigration(base(tables)), { source, target, logger: silentLogger }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ code, ...names });
      if (names.table) expect((error as Error).message).toContain(names.table);
      if (names.column) expect((error as Error).message).toContain(names.column);
    });
  }

  it('a flag file with an unknown stage is rejected with INVALID_STAGE', () => {
    const flags = new StaticFlags();
    expect(() => flags.set('cfg', { stage: 'sideways' as never, rollout: 0 })).toThrow(
      expect.objectContaining({ code: 'INVALID_STAGE' }),
    );
  });
});

describe('a valid mapping with renames and a transform', () => {
  it('mirrors through the mapping and verifies clean', async () => {
    const migration = defineMigration({
      name: 'cfg-ok',
      tables: {
        users: {
          target: 'users_v2',
          columns: { name: 'full_name' },
          transform: (row) => ({ ...row, email: String(row.email).toLowerCase() }),
          versionColumn: 'version',
        },
      },
    });
    const engine = await startMigration(migration, {
      source,
      target,
      flags: new StaticFlags({ 'cfg-ok': 'dualwrite' }),
      logger: silentLogger,
    });
    const db = midflight(source, engine);
    const [{ id }] = await db('users').insert({ email: 'Ada@Example.COM', name: 'Ada' }).returning('id');
    await db('users').where({ id }).update({ name: 'Ada L.' });
    await engine.drain();
    expect(await target('users_v2').where({ id }).first()).toMatchObject({
      email: 'ada@example.com',
      full_name: 'Ada L.',
    });
    expect((await engine.verify()).differences).toBe(0);
    // Column renames make the table unroutable to the target: reads stay on the source, and say why.
    expect(engine.route('users')).toMatchObject({ side: 'source' });
    await engine.close();
  });
});
