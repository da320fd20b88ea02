import type { Row } from './change.js';
import type { Dialect } from './dialect.js';

/**
 * How an adapter learns the keys a write touched — decided here, once, for every ORM:
 * - `returning`: the statement returns its rows (RETURNING);
 * - `data`: every inserted row carries its key;
 * - `one-by-one`: insert the rows one at a time for their generated ids (ids of a multi-row
 *   insert are never trusted to be consecutive);
 * - `conflict-select`: an upsert without keys in its rows: select the keys by the conflict
 *   columns right after it, in the same transaction;
 * - `lock-select`: an update or delete by any where: select (and lock) the matching keys first,
 *   in the same transaction, then run the write limited to them;
 * - `uncaptured`: the keys cannot be known; count it (reconcile repairs the rows).
 */
export type KeyStrategy =
  | { readonly kind: 'returning' | 'data' | 'one-by-one' | 'lock-select' }
  | { readonly kind: 'conflict-select'; readonly columns: readonly string[] }
  | { readonly kind: 'uncaptured'; readonly reason: string };

export interface WriteShape {
  readonly op: 'insert' | 'upsert' | 'update' | 'delete';
  /** The rows of an insert or upsert; `undefined` when they come from a query. */
  readonly rows?: readonly Row[] | undefined;
  /** The write sets a key column (its rows move to new keys). */
  readonly setsKey?: boolean;
  /** The adapter can add a RETURNING to this statement (the ORM and the app's own RETURNING allow it). */
  readonly canReturn: boolean;
  /** Conflict columns of an upsert. */
  readonly conflictColumns?: readonly string[] | undefined;
  /** `INSERT IGNORE` / `skipDuplicates`: ignored rows report no id. */
  readonly skipDuplicates?: boolean;
}

export function chooseKeyStrategy(dialect: Dialect, keyColumns: readonly string[], w: WriteShape): KeyStrategy {
  const returns =
    w.op === 'update' ? dialect.updateReturning : w.op === 'delete' ? dialect.deleteReturning : dialect.insertReturning;
  if (w.canReturn && returns && !w.setsKey) return { kind: 'returning' };
  if (w.op === 'update' || w.op === 'delete') return { kind: 'lock-select' };
  const rows = w.rows;
  if (!rows || rows.length === 0) return { kind: 'uncaptured', reason: 'insert_from_query' };
  if (rows.every((r) => keyColumns.every((c) => isPlainValue(r[c])))) return { kind: 'data' };
  if (w.op === 'upsert') {
    const columns = w.conflictColumns ?? [];
    return columns.length > 0 && rows.every((r) => columns.every((c) => r[c] !== undefined))
      ? { kind: 'conflict-select', columns }
      : { kind: 'uncaptured', reason: 'upsert_without_conflict_columns' };
  }
  if (keyColumns.length !== 1 || w.skipDuplicates)
    return { kind: 'uncaptured', reason: 'generated_key_without_returning' };
  return { kind: 'one-by-one' };
}

/** A value a key can be taken from as written (not a SQL expression). */
export function isPlainValue(v: unknown): boolean {
  return v === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof v) || v instanceof Date;
}
