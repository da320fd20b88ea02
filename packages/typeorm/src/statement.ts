import type { Dialect, Key } from '@midflight/core';
import type { QueryResult, QueryRunner } from 'typeorm';

/** The statement shapes TypeORM generates for a where-based write: `UPDATE t SET … WHERE …`, `DELETE FROM t WHERE …`. */
const STATEMENT = /^\s*(UPDATE|DELETE\s+FROM)\s+((?:[`"][^`"]+[`"]\.)?[`"][^`"]+[`"])\s/i;
const ALIAS = 'mf_key_';
/** TypeORM's own `RETURNING` (the builder's `returning()`), always last: `RETURNING *` or quoted columns. */
const OWN_RETURNING = /\sRETURNING\s+(?:\*|"[^"]+"(?:\s*,\s*"[^"]+")*)\s*$/i;

type Query = QueryRunner['query'];

/**
 * How a where-based write reports its keys: `returning` when the database returns rows from
 * UPDATE and DELETE (PostgreSQL), otherwise a locking pre-select in the write's transaction.
 */
export interface KeySite {
  readonly dialect: Dialect;
  /** The table the write is on, as TypeORM names it (unquoted). */
  readonly table: string;
  readonly keyColumns: readonly string[];
  /** Receives the keys once the statement has run (inside its transaction, if any). */
  onKeys(
    keys: Key[],
    op: 'upsert' | 'delete',
    affected: number | undefined,
    rows?: ReadonlyArray<Record<string, unknown>>,
  ): Promise<void>;
  /** The statement did not look like TypeORM's: it runs as written, its keys unknown. */
  onUnresolved(reason: string): void;
}

/**
 * Resolves the keys of the next statement `runner` runs — the UPDATE or DELETE of a
 * `repository.update/delete(criteria)`, QueryBuilder `update()/delete()`, `softDelete` or
 * `restore`, whose events carry no ids. The hook lives on this runner only and resolves the
 * first UPDATE or DELETE on `site.table`; other statements (another subscriber's queries) pass.
 * Resolving any such statement is correct, so a hook whose own statement never ran (the
 * builder threw first) does no harm: the op comes from the statement's verb.
 *
 * Why this is exact under concurrency:
 * - PostgreSQL: `RETURNING` reports exactly the rows the statement changed. A pre-select would
 *   not do: in READ COMMITTED the UPDATE takes a new snapshot and can touch rows that started to
 *   match after the select (and deleted rows cannot be found afterwards).
 * - MySQL/MariaDB (no UPDATE … RETURNING): `SELECT keys … WHERE <same where> FOR UPDATE` in the
 *   write's transaction (one is opened around the two statements when the app has none). InnoDB
 *   locking reads take next-key locks on every scanned record and gap, so under REPEATABLE READ
 *   (the default) no other writer can add a matching row before the write, which then touches
 *   exactly the locked rows. Under READ COMMITTED gap locks are off: a phantom shows up as more
 *   affected rows than keys, which is counted as uncaptured (verify/reconcile repairs it).
 */
export function hookNextStatement(runner: QueryRunner, site: KeySite): void {
  // A newer write event replaces a hook whose statement never ran.
  Reflect.deleteProperty(runner, 'query');
  const original = runner.query;
  const hooked = async (sql: string, parameters?: unknown[], structured?: boolean): Promise<unknown> => {
    const m = STATEMENT.exec(sql);
    const table = m?.[2]?.split('.').pop()?.slice(1, -1);
    if (!m?.[1] || !m[2] || table !== site.table) return Reflect.apply(original, runner, [sql, parameters, structured]);
    Reflect.deleteProperty(runner, 'query');
    const op = /^DELETE/i.test(m[1]) ? 'delete' : 'upsert';
    if (sql.includes(';') || !(parameters === undefined || Array.isArray(parameters))) {
      site.onUnresolved('where_statement_unrecognised');
      return Reflect.apply(original, runner, [sql, parameters, structured]);
    }
    const run = (q: string, p: unknown[] | undefined) =>
      Reflect.apply(original, runner, [q, p, true]) as Promise<QueryResult>;
    const esc = (name: string) => runner.connection.driver.escape(name);
    const shape = (r: QueryResult) => (structured ? r : r.raw);
    if (site.dialect.updateReturning && site.dialect.deleteReturning) {
      const keys = site.keyColumns.map((c, i) => `${esc(c)} AS ${esc(`${ALIAS}${i}`)}`).join(', ');
      const own = !OWN_RETURNING.test(sql);
      // Without a RETURNING of the app's, the whole updated rows come back too: the mirror can
      // write them without reading the row again (it still re-checks them later).
      const whole = own && op === 'upsert';
      const result = await run(own ? `${sql} RETURNING ${whole ? '*, ' : ''}${keys}` : `${sql}, ${keys}`, parameters);
      const rows: Array<Record<string, unknown>> = [];
      const found = result.records.map((row: Record<string, unknown>) => {
        const key = site.keyColumns.map((_, i) => row[`${ALIAS}${i}`]);
        for (let i = 0; i < site.keyColumns.length; i++) delete row[`${ALIAS}${i}`];
        if (whole) rows.push(row);
        return key;
      });
      // The app asked for no RETURNING: it gets the result it would have had without ours.
      if (own) {
        result.records = [];
        if (Array.isArray(result.raw)) result.raw = [[], result.affected];
      }
      await site.onKeys(found, op, result.affected, whole ? rows : undefined);
      return shape(result);
    }
    const where = splitWhere(sql, parameters ?? []);
    if (!where) {
      site.onUnresolved('where_statement_unrecognised');
      return Reflect.apply(original, runner, [sql, parameters, structured]);
    }
    const owned = !runner.isTransactionActive;
    if (owned) await runner.startTransaction();
    try {
      const cols = site.keyColumns.map(esc).join(', ');
      const rows = await run(`SELECT ${cols} FROM ${m[2]}${where.clause} FOR UPDATE`, where.parameters);
      const found = rows.records.map((row: Record<string, unknown>) => site.keyColumns.map((c) => row[c]));
      const result = await run(sql, parameters);
      await site.onKeys(found, op, result.affected);
      if (owned) await runner.commitTransaction();
      return shape(result);
    } catch (e) {
      if (owned && runner.isTransactionActive) await runner.rollbackTransaction().catch(() => {});
      throw e;
    }
  };
  Object.defineProperty(runner, 'query', { value: hooked as Query, configurable: true, writable: true });
}

/**
 * The `WHERE …` tail of a MySQL statement (with any ORDER BY / LIMIT after it) and the `?`
 * parameters it uses, or `undefined` when the placeholders cannot be told apart reliably.
 */
export function splitWhere(
  sql: string,
  parameters: readonly unknown[],
): { clause: string; parameters: unknown[] } | undefined {
  let depth = 0;
  let quote: string | undefined;
  let before = 0;
  let total = 0;
  let at = -1;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i] as string;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === '?') {
      total++;
      if (at < 0) before++;
    } else if (at < 0 && depth === 0 && /^\sWHERE\s/i.test(sql.slice(i, i + 7))) {
      at = i;
    }
  }
  if (total !== parameters.length) return undefined;
  return {
    clause: at < 0 ? '' : sql.slice(at),
    parameters: parameters.slice(before),
  };
}
