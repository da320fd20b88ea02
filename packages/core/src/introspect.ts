import type { Knex } from 'knex';
import type { Dialect } from './dialect.js';
import { splitQualified } from './identifiers.js';

export interface ColumnInfo {
  readonly name: string;
  /** Lower-case database type, e.g. `integer`, `character varying`, `int`, `varchar`. */
  readonly type: string;
  readonly nullable: boolean;
  readonly hasDefault: boolean;
  readonly maxLength: number | undefined;
}

export interface TableInfo {
  readonly name: string;
  readonly columns: ReadonlyMap<string, ColumnInfo>;
  readonly primaryKey: readonly string[];
  /** Column sets with a unique constraint or index (primary key included). */
  readonly uniqueKeys: readonly (readonly string[])[];
}

/** Reads a table's columns and keys from the catalog; `undefined` when it does not exist. */
export async function introspectTable(knex: Knex, dialect: Dialect, qualified: string): Promise<TableInfo | undefined> {
  const { schema, table } = splitQualified(qualified);
  return dialect.family === 'postgres'
    ? introspectPg(knex, schema, table, qualified)
    : introspectMy(knex, schema, table, qualified);
}

async function introspectPg(
  knex: Knex,
  schema: string | undefined,
  table: string,
  name: string,
): Promise<TableInfo | undefined> {
  const schemaExpr = schema === undefined ? knex.raw('current_schema()') : schema;
  const cols = await knex('information_schema.columns')
    .select('column_name', 'data_type', 'is_nullable', 'column_default', 'character_maximum_length', 'is_identity')
    .where({ table_name: table })
    .andWhere('table_schema', schemaExpr)
    .orderBy('ordinal_position');
  if (cols.length === 0) return undefined;
  const cons = await knex.raw(
    `select c.contype as kind, array_to_string(array(
        select a.attname from unnest(c.conkey) with ordinality k(attnum, ord)
        join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum order by k.ord), ',') as cols
     from pg_constraint c join pg_class t on t.oid = c.conrelid join pg_namespace n on n.oid = t.relnamespace
     where t.relname = ? and n.nspname = coalesce(?, current_schema()) and c.contype in ('p','u')
     union all
     select 'i' as kind, array_to_string(array(
        select a.attname from unnest(i.indkey) with ordinality k(attnum, ord)
        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum order by k.ord), ',') as cols
     from pg_index i join pg_class t on t.oid = i.indrelid join pg_namespace n on n.oid = t.relnamespace
     where t.relname = ? and n.nspname = coalesce(?, current_schema()) and i.indisunique and i.indpred is null`,
    [table, schema ?? null, table, schema ?? null],
  );
  const rows = (cons as { rows: Array<{ kind: string; cols: string }> }).rows;
  const pk = rows.find((r) => r.kind === 'p')?.cols.split(',') ?? [];
  return {
    name,
    columns: new Map(
      cols.map((c: Record<string, unknown>) => [
        String(c.column_name),
        {
          name: String(c.column_name),
          type: String(c.data_type).toLowerCase(),
          nullable: c.is_nullable === 'YES',
          hasDefault: c.column_default != null || c.is_identity === 'YES',
          maxLength: c.character_maximum_length == null ? undefined : Number(c.character_maximum_length),
        },
      ]),
    ),
    primaryKey: pk,
    uniqueKeys: rows.filter((r) => r.cols !== '').map((r) => r.cols.split(',')),
  };
}

async function introspectMy(
  knex: Knex,
  schema: string | undefined,
  table: string,
  name: string,
): Promise<TableInfo | undefined> {
  const schemaExpr = schema === undefined ? knex.raw('database()') : schema;
  const cols = await knex('information_schema.columns')
    .select({
      column_name: 'COLUMN_NAME',
      data_type: 'DATA_TYPE',
      is_nullable: 'IS_NULLABLE',
      column_default: 'COLUMN_DEFAULT',
      max_len: 'CHARACTER_MAXIMUM_LENGTH',
      extra: 'EXTRA',
    })
    .where('TABLE_NAME', table)
    .andWhere('TABLE_SCHEMA', schemaExpr)
    .orderBy('ORDINAL_POSITION');
  if (cols.length === 0) return undefined;
  const idx = await knex('information_schema.statistics')
    .select({ index_name: 'INDEX_NAME', column_name: 'COLUMN_NAME', seq: 'SEQ_IN_INDEX' })
    .where('TABLE_NAME', table)
    .andWhere('TABLE_SCHEMA', schemaExpr)
    .andWhere('NON_UNIQUE', 0)
    .orderBy([{ column: 'INDEX_NAME' }, { column: 'SEQ_IN_INDEX' }]);
  const byIndex = new Map<string, string[]>();
  for (const r of idx as Array<{ index_name: string; column_name: string }>) {
    const list = byIndex.get(r.index_name) ?? [];
    list.push(r.column_name);
    byIndex.set(r.index_name, list);
  }
  return {
    name,
    columns: new Map(
      cols.map((c: Record<string, unknown>) => {
        // MariaDB reports a missing default as the string 'NULL' in information_schema.
        const def = c.column_default;
        const hasDefault =
          (def != null && !(def === 'NULL' && c.is_nullable === 'YES')) || String(c.extra).includes('auto_increment');
        return [
          String(c.column_name),
          {
            name: String(c.column_name),
            type: String(c.data_type).toLowerCase(),
            nullable: c.is_nullable === 'YES',
            hasDefault,
            maxLength: c.max_len == null ? undefined : Number(c.max_len),
          },
        ];
      }),
    ),
    primaryKey: byIndex.get('PRIMARY') ?? [],
    uniqueKeys: [...byIndex.values()],
  };
}

/** Broad type families, to compare key types across engines. */
export function typeFamily(type: string): string {
  const t = type.toLowerCase();
  if (/^(smallint|integer|int|bigint|tinyint|mediumint|serial|bigserial|int[248])/.test(t)) return 'integer';
  if (/^(numeric|decimal)/.test(t)) return 'decimal';
  if (/^(real|double|float)/.test(t)) return 'float';
  if (/^(uuid)/.test(t)) return 'uuid';
  if (/(char|text|enum|set)/.test(t)) return 'text';
  if (/^(bytea|binary|varbinary|blob|tinyblob|mediumblob|longblob)/.test(t)) return 'binary';
  if (/^(timestamp|datetime)/.test(t)) return 'timestamp';
  if (/^date$/.test(t)) return 'date';
  if (/^(boolean|bool)/.test(t)) return 'boolean';
  if (/^json/.test(t)) return 'json';
  return t;
}

/** Whether a source key type may be stored in a target key column. */
export function keyTypesCompatible(source: string, target: string): boolean {
  const s = typeFamily(source);
  const t = typeFamily(target);
  if (s === t) return true;
  // A uuid may live in a char(36) column on engines without a uuid type.
  if ((s === 'uuid' && t === 'text') || (s === 'text' && t === 'uuid')) return true;
  return false;
}
