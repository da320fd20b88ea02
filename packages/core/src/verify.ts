import { type Key, keyId, type Row } from './change.js';
import { diffRows } from './normalize.js';
import type { TablePlan } from './plan.js';
import type { KnexStore } from './store.js';

export interface TableDiff {
  readonly table: string;
  readonly sourceRows: number;
  readonly targetRows: number;
  /** Keys in the source but not the target. */
  readonly missing: readonly Key[];
  /** Keys in the target but not the source. */
  readonly extra: readonly Key[];
  /** Keys in both whose mapped rows differ, with the differing target column names. */
  readonly different: ReadonlyArray<{ readonly key: Key; readonly columns: readonly string[] }>;
}

export interface VerifyReport {
  readonly tables: readonly TableDiff[];
  /** missing + extra + different, over all tables. */
  readonly differences: number;
}

export interface VerifyOptions {
  readonly chunkSize?: number;
  readonly onProgress?: (table: string, rowsSeen: number) => void;
}

/**
 * Compares one table's mapped source rows with its target rows, key by key. Walks the source in
 * key order and looks the chunk's keys up in the target (so differing collations cannot skew
 * the ranges), then walks the target for keys the source lacks.
 */
export async function verifyTable(
  plan: TablePlan,
  source: KnexStore,
  target: KnexStore,
  options: VerifyOptions = {},
): Promise<TableDiff> {
  const chunk = options.chunkSize ?? 1000;
  const missing: Key[] = [];
  const extra: Key[] = [];
  const different: Array<{ key: Key; columns: string[] }> = [];
  let sourceRows = 0;
  let targetRows = 0;
  let after: Key | undefined;
  for (;;) {
    const rows = await source.scan(plan.source, plan.sourceKey, after, chunk, plan.sourceColumns);
    if (rows.length === 0) break;
    sourceRows += rows.length;
    const keys = rows.map((r) => plan.sourceKey.map((c) => r[c]));
    const found = byKey(await target.readByKeys(plan.target, plan.targetKey, keys, plan.targetColumns), plan.targetKey);
    for (const [i, row] of rows.entries()) {
      const key = keys[i] as Key;
      const t = found.get(keyId(key));
      if (!t) missing.push(key);
      else {
        const columns = diffRows(plan.toTarget({ ...row }), t, plan.targetColumns, plan.compareAs);
        if (columns.length) different.push({ key, columns });
      }
    }
    after = keys[keys.length - 1];
    options.onProgress?.(plan.source, sourceRows);
    if (rows.length < chunk) break;
  }
  after = undefined;
  for (;;) {
    const rows = await target.scan(plan.target, plan.targetKey, after, chunk, plan.targetKey);
    if (rows.length === 0) break;
    targetRows += rows.length;
    const keys = rows.map((r) => plan.targetKey.map((c) => r[c]));
    const found = byKey(await source.readByKeys(plan.source, plan.sourceKey, keys, plan.sourceKey), plan.sourceKey);
    for (const key of keys) if (!found.has(keyId(key))) extra.push(key);
    after = keys[keys.length - 1];
    if (rows.length < chunk) break;
  }
  return { table: plan.source, sourceRows, targetRows, missing, extra, different };
}

function byKey(rows: readonly Row[], keyCols: readonly string[]): Map<string, Row> {
  return new Map(rows.map((r) => [keyId(keyCols.map((c) => r[c])), r]));
}
