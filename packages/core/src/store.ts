import type { Knex } from 'knex';
import { type Key, keyId, type Row } from './change.js';
import type { Dialect } from './dialect.js';

const READ_CHUNK = 500;

/**
 * Row access on one database through Knex: read by keys, batch upsert, delete by keys and
 * ordered key-range scans. Table and column names come only from the validated plan and Knex
 * quotes them; values are always bindings.
 */
export class KnexStore {
  constructor(
    readonly knex: Knex,
    readonly dialect: Dialect,
  ) {}

  /** Rows for the given keys (missing keys are simply absent from the result). */
  async readByKeys(
    table: string,
    keyColumns: readonly string[],
    keys: readonly Key[],
    columns: readonly string[] | '*' = '*',
    db: Knex | Knex.Transaction = this.knex,
  ): Promise<Row[]> {
    const out: Row[] = [];
    for (let i = 0; i < keys.length; i += READ_CHUNK) {
      const chunk = keys.slice(i, i + READ_CHUNK);
      const q = db(table).select(columns === '*' ? '*' : [...columns]);
      out.push(...((await whereKeys(q, keyColumns, chunk)) as Row[]));
    }
    return out;
  }

  /**
   * Inserts or replaces whole rows by key, sorted by key so that concurrent batches lock in one
   * order. `otherUniques`: the table has unique keys besides `keyColumns` — MySQL's
   * `ON DUPLICATE KEY UPDATE` would then fire on any of them and rewrite another row (even its
   * key), so rows are updated or inserted by key instead, and a clash is an error.
   */
  async upsert(
    table: string,
    keyColumns: readonly string[],
    rows: readonly Row[],
    otherUniques = false,
  ): Promise<void> {
    if (rows.length === 0) return;
    const sorted = [...rows].sort((a, b) =>
      cmp(keyId(keyColumns.map((c) => a[c])), keyId(keyColumns.map((c) => b[c]))),
    );
    if (otherUniques && this.dialect.family === 'mysql') {
      // READ COMMITTED: no gap locks, so concurrent mirrors into an empty range do not deadlock.
      await this.knex.transaction(
        async (trx) => {
          const keys = sorted.map((r) => keyColumns.map((c) => r[c]));
          const found = await whereKeys(
            trx(table)
              .select([...keyColumns])
              .forUpdate(),
            keyColumns,
            keys,
          );
          const exists = new Set((found as Row[]).map((r) => keyId(keyColumns.map((c) => r[c]))));
          const inserts: Row[] = [];
          for (const row of sorted) {
            const key = keyColumns.map((c) => row[c]);
            if (!exists.has(keyId(key))) inserts.push(row);
            else await whereKeys(trx(table).update(row), keyColumns, [key]);
          }
          if (inserts.length) await trx(table).insert(inserts);
        },
        { isolationLevel: 'read committed' },
      );
      return;
    }
    const q = this.knex(table).insert(sorted);
    const allKey = Object.keys(sorted[0] ?? {}).every((c) => keyColumns.includes(c));
    await (allKey ? q.onConflict([...keyColumns]).ignore() : q.onConflict([...keyColumns]).merge());
  }

  async deleteByKeys(table: string, keyColumns: readonly string[], keys: readonly Key[]): Promise<void> {
    for (let i = 0; i < keys.length; i += READ_CHUNK) {
      await whereKeys(this.knex(table).delete(), keyColumns, keys.slice(i, i + READ_CHUNK));
    }
  }

  /** Up to `limit` rows with key greater than `after`, in key order. */
  async scan(
    table: string,
    keyColumns: readonly string[],
    after: Key | undefined,
    limit: number,
    columns: readonly string[] | '*' = '*',
  ): Promise<Row[]> {
    const q = this.knex(table)
      .select(columns === '*' ? '*' : [...columns])
      .orderBy(keyColumns.map((column) => ({ column })))
      .limit(limit);
    if (after !== undefined) {
      if (keyColumns.length === 1) q.where(keyColumns[0] as string, '>', after[0] as Knex.Value);
      else {
        const marks = keyColumns.map(() => '??').join(', ');
        const vals = keyColumns.map(() => '?').join(', ');
        q.whereRaw(`(${marks}) > (${vals})`, [...keyColumns, ...(after as Knex.Value[])]);
      }
    }
    return (await q) as Row[];
  }

  async count(table: string): Promise<number> {
    const r = await this.knex(table).count({ n: '*' });
    return Number((r[0] as { n: unknown } | undefined)?.n ?? 0);
  }
}

/** Adds `WHERE key IN (...)` for single or composite keys. */
export function whereKeys<T extends Knex.QueryBuilder>(q: T, keyColumns: readonly string[], keys: readonly Key[]): T {
  if (keyColumns.length === 1) {
    return q.whereIn(keyColumns[0] as string, keys.map((k) => k[0]) as Knex.Value[]) as T;
  }
  return q.whereIn([...keyColumns], keys.map((k) => [...k]) as Knex.Value[][]) as T;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
