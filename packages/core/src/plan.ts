import type { Key, Row } from './change.js';
import { ConfigError } from './errors.js';
import { keyTypesCompatible, type TableInfo, typeFamily } from './introspect.js';
import type { TableConfig } from './migration.js';
import type { CompareKind } from './normalize.js';

/** One table's migration, resolved against both databases' catalogs. */
export interface TablePlan {
  readonly source: string;
  readonly target: string;
  readonly sourceKey: readonly string[];
  readonly targetKey: readonly string[];
  /** Source columns read to build a target row. */
  readonly sourceColumns: readonly string[];
  /** Target columns written, in the same order as `sourceColumns` when there is no transform. */
  readonly targetColumns: readonly string[];
  /** Same table shape on both sides (only the table name may differ): queries can be re-aimed. */
  readonly queryCompatible: boolean;
  /** A target row can be mapped back to a source row (needed from `rampdown` on). */
  readonly reversible: boolean;
  readonly config: TableConfig;
  /** The table has unique keys besides the mirror key (upserts must not fire on them). */
  readonly sourceOtherUniques: boolean;
  readonly targetOtherUniques: boolean;
  /** How to compare each target column across engines. */
  readonly compareAs: ReadonlyMap<string, CompareKind>;
  toTarget(row: Row): Row;
  toSource(row: Row): Row;
  /** The target key of a source key (key columns keep their values, only names change). */
  targetKeyOf(key: Key): Key;
}

/** Checks one table against the catalogs and builds its plan; throws `ConfigError` naming what is wrong. */
export function planTable(
  table: string,
  config: TableConfig,
  source: TableInfo | undefined,
  target: TableInfo | undefined,
  targetName: string,
): TablePlan {
  if (!source) {
    throw new ConfigError('SOURCE_TABLE_MISSING', `table "${table}" does not exist in the source database`, { table });
  }
  if (!target) {
    throw new ConfigError(
      'TARGET_TABLE_MISSING',
      `target table "${targetName}" (for "${table}") does not exist in the target database`,
      { table },
    );
  }
  const configured =
    config.key === undefined ? undefined : typeof config.key === 'string' ? [config.key] : [...config.key];
  const sourceKey = configured ?? [...source.primaryKey];
  if (sourceKey.length === 0) {
    throw new ConfigError(
      'NO_PRIMARY_KEY',
      `table "${table}" has no primary key and none is configured: set tables.${table}.key`,
      { table },
    );
  }
  for (const k of sourceKey) {
    if (!source.columns.has(k)) {
      throw new ConfigError('KEY_COLUMN_MISSING', `key column "${k}" does not exist in source table "${table}"`, {
        table,
        column: k,
      });
    }
  }
  const rename = config.columns ?? {};
  for (const from of Object.keys(rename)) {
    if (!source.columns.has(from)) {
      throw new ConfigError(
        'SOURCE_COLUMN_MISSING',
        `column mapping names "${table}.${from}", which the source table lacks`,
        {
          table,
          column: from,
        },
      );
    }
  }
  const pairs: Array<[string, string]> = [];
  for (const col of source.columns.keys()) {
    const to = rename[col];
    if (to === false) continue;
    pairs.push([col, to ?? col]);
  }
  const targetOf = new Map(pairs);
  const targetKey = sourceKey.map((k) => targetOf.get(k) as string);
  for (const [i, k] of targetKey.entries()) {
    const tcol = target.columns.get(k);
    const scol = source.columns.get(sourceKey[i] as string);
    if (!tcol) {
      throw new ConfigError(
        'TARGET_KEY_COLUMN_MISSING',
        `key column "${k}" (from "${table}.${sourceKey[i]}") does not exist in target table "${targetName}"`,
        { table, column: k },
      );
    }
    if (scol && !keyTypesCompatible(scol.type, tcol.type)) {
      throw new ConfigError(
        'KEY_TYPE_MISMATCH',
        `key column "${table}.${scol.name}" is ${scol.type} in the source but "${targetName}.${k}" is ${tcol.type} in the target`,
        { table, column: scol.name },
      );
    }
  }
  const sameSet = (a: readonly string[]) => a.length === targetKey.length && a.every((c) => targetKey.includes(c));
  if (!target.uniqueKeys.some(sameSet)) {
    throw new ConfigError(
      'KEY_NOT_UNIQUE_IN_TARGET',
      `target table "${targetName}" has no primary key or unique index on (${targetKey.join(', ')}); mirrored upserts need one`,
      { table },
    );
  }
  if (config.transform === undefined) {
    for (const [from, to] of pairs) {
      if (!target.columns.has(to)) {
        throw new ConfigError(
          'TARGET_COLUMN_MISSING',
          `column "${table}.${from}" maps to "${targetName}.${to}", which the target table lacks (map it elsewhere or set columns.${from}: false)`,
          { table, column: to },
        );
      }
    }
    const written = new Set(pairs.map(([, to]) => to));
    for (const col of target.columns.values()) {
      if (!written.has(col.name) && !col.nullable && !col.hasDefault) {
        throw new ConfigError(
          'TARGET_COLUMN_UNFILLED',
          `target column "${targetName}.${col.name}" is NOT NULL without a default, and no source column maps to it`,
          { table, column: col.name },
        );
      }
    }
  }
  if (config.versionColumn !== undefined && !source.columns.has(config.versionColumn)) {
    throw new ConfigError(
      'VERSION_COLUMN_MISSING',
      `version column "${config.versionColumn}" does not exist in source table "${table}"`,
      { table, column: config.versionColumn },
    );
  }
  const jsonTarget = new Set(
    [...target.columns.values()].filter((c) => typeFamily(c.type) === 'json').map((c) => c.name),
  );
  const jsonSource = new Set(
    [...source.columns.values()].filter((c) => typeFamily(c.type) === 'json').map((c) => c.name),
  );
  const renamed = pairs.some(([a, b]) => a !== b) || pairs.length !== source.columns.size;
  const transform = config.transform;
  const reverse = config.reverseTransform;
  const toTarget = (row: Row): Row => {
    let out: Row = {};
    for (const [from, to] of pairs) if (from in row) out[to] = row[from];
    if (transform) out = transform(out);
    return encodeJson(out, jsonTarget);
  };
  const toSource = (row: Row): Row => {
    let r = row;
    if (reverse) r = reverse({ ...row });
    const out: Row = {};
    for (const [from, to] of pairs) if (to in r) out[from] = r[to];
    return encodeJson(out, jsonSource);
  };
  return {
    source: table,
    target: targetName,
    sourceKey,
    targetKey,
    sourceColumns: pairs.map(([from]) => from),
    targetColumns: pairs.map(([, to]) => to),
    queryCompatible: !renamed && transform === undefined,
    reversible: transform === undefined || reverse !== undefined,
    config,
    sourceOtherUniques: source.uniqueKeys.some((u) => !sameAs(u, sourceKey)),
    targetOtherUniques: target.uniqueKeys.some((u) => !sameSet(u)),
    compareAs: compareKinds(pairs, source, target),
    toTarget,
    toSource,
    targetKeyOf: (key) => key,
  };
}

/** Drivers turn JS arrays into SQL arrays and mysql2 turns objects into `a = 1` lists: send JSON as text. */
function encodeJson(row: Row, jsonColumns: ReadonlySet<string>): Row {
  if (jsonColumns.size === 0) return row;
  for (const c of jsonColumns) {
    const v = row[c];
    if (v !== null && v !== undefined && typeof v !== 'string') row[c] = JSON.stringify(v);
  }
  return row;
}

function sameAs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c) => b.includes(c));
}

function compareKinds(pairs: Array<[string, string]>, source: TableInfo, target: TableInfo): Map<string, CompareKind> {
  const out = new Map<string, CompareKind>();
  for (const [from, to] of pairs) {
    const s = source.columns.get(from)?.type ?? '';
    const t = target.columns.get(to)?.type ?? s;
    const fixed = (x: string) => x === 'character' || x === 'char' || x === 'bpchar';
    const fam = typeFamily(t);
    out.set(
      to,
      fixed(s) || fixed(t)
        ? 'fixed-char'
        : fam === 'json' || typeFamily(s) === 'json'
          ? 'json'
          : fam === 'timestamp' || fam === 'date'
            ? 'timestamp'
            : fam === 'boolean' || typeFamily(s) === 'boolean'
              ? 'boolean'
              : 'value',
    );
  }
  return out;
}
