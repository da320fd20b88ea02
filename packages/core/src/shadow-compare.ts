import { keyId, type Row } from './change.js';
import { canonicalJson, diffRows, normalizeValue } from './normalize.js';
import type { TablePlan } from './plan.js';

/** One difference between the two sides' answers: names only, values only on request. */
export interface Mismatch {
  readonly table: string;
  /** Key of the differing row, when the result has the key columns. */
  readonly key?: string | undefined;
  readonly kind: 'missing' | 'extra' | 'different' | 'shape';
  readonly columns?: readonly string[];
  readonly values?: { readonly primary: unknown; readonly secondary: unknown };
}

/**
 * Compares what two sides answered to the same query, after normalisation. Results may be row
 * lists (compared as sets by key), one row, a count or `undefined`.
 */
export function compareResults(
  plan: TablePlan,
  primary: unknown,
  secondary: unknown,
  recordValues = false,
): Mismatch[] {
  const table = plan.source;
  const withValues = (m: Mismatch, p: unknown, s: unknown): Mismatch =>
    recordValues ? { ...m, values: { primary: p, secondary: s } } : m;
  if (isRowList(primary) && isRowList(secondary)) {
    const keyCols = plan.sourceKey;
    const hasKey = (r: Row) => keyCols.every((c) => c in r);
    const id = (r: Row) => (hasKey(r) ? keyId(keyCols.map((c) => r[c])) : canonicalJson(normalizeRow(r)));
    const a = new Map(primary.map((r) => [id(r), r]));
    const b = new Map(secondary.map((r) => [id(r), r]));
    const out: Mismatch[] = [];
    for (const [k, r] of a) {
      const o = b.get(k);
      const key = hasKey(r) ? k : undefined;
      if (!o) out.push(withValues({ table, key, kind: 'missing' }, r, undefined));
      else {
        const cols = diffRows(r, o, new Set([...Object.keys(r), ...Object.keys(o)]), plan.compareAs);
        if (cols.length) out.push(withValues({ table, key, kind: 'different', columns: cols }, r, o));
      }
    }
    for (const [k, r] of b)
      if (!a.has(k)) out.push(withValues({ table, key: hasKey(r) ? k : undefined, kind: 'extra' }, undefined, r));
    return out;
  }
  if (isRow(primary) && isRow(secondary)) {
    return compareResults(plan, [primary], [secondary], recordValues);
  }
  if (primary === undefined && secondary === undefined) return [];
  if (canonicalJson(norm(primary)) === canonicalJson(norm(secondary))) return [];
  return [withValues({ table, kind: 'shape' }, primary, secondary)];
}

function isRow(v: unknown): v is Row {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function isRowList(v: unknown): v is Row[] {
  return Array.isArray(v) && v.every(isRow);
}

function normalizeRow(r: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) out[k] = normalizeValue(v);
  return out;
}

function norm(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(norm);
  if (isRow(v)) return normalizeRow(v);
  return normalizeValue(v);
}
