/** A row as the database driver returns it, keyed by column name. */
export type Row = Record<string, unknown>;

/** Key values in the order of the table's key columns. */
export type Key = readonly unknown[];

/**
 * What an adapter reports for each row a committed write touched. `row` is an optional
 * hint (the row as the write returned it); the propagator never trusts it beyond one attempt.
 *
 * @example
 * engine.capture([{ table: 'users', key: [42], op: 'upsert' }])
 */
export interface Change {
  /** Source-side table name, as configured. */
  readonly table: string;
  readonly key: Key;
  readonly op: 'upsert' | 'delete';
  readonly row?: Row | undefined;
}

/** A stable string for a key, used for de-duplication and job ids. */
export function keyId(key: Key): string {
  return JSON.stringify(key.map(keyPart));
}

function keyPart(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return v.toString('hex');
  // Numeric keys arrive as numbers from one driver and strings from another (bigint columns).
  if (typeof v === 'number') return String(v);
  return v;
}

export function keyOf(row: Row, keyColumns: readonly string[]): Key {
  return keyColumns.map((c) => row[c]);
}
