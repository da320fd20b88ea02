import { type Change, chooseKeyStrategy, type Engine, type Key, type Row, type Side } from '@midflight/core';
import { delegateName, type ModelInfo } from './models.js';

export type Args = Record<string, unknown>;
type Delegate = Record<string, (args?: unknown) => Promise<unknown>> & {
  [op in 'findUnique' | 'findFirst' | 'findMany' | 'create' | 'createManyAndReturn' | 'updateManyAndReturn']: (
    args?: unknown,
  ) => Promise<unknown>;
};
/** A Prisma client or transaction client, seen through the model delegates only. */
export type Db = Record<string, unknown>;

/** Where one write runs: which side, with which key fields, in which transaction. */
export interface Site {
  readonly from: Side;
  readonly models: ReadonlyMap<string, ModelInfo>;
  /** `createManyAndReturn` / `updateManyAndReturn` exist (PostgreSQL). */
  readonly returning: boolean;
  /** Runs the intercepted statement where the app meant it (its transaction, or none). */
  readonly exec: (args: Args) => Promise<unknown>;
  /** The app's transaction client, or the plain client when there is none. */
  readonly tx: Db | undefined;
  readonly root: Db;
  /** Opens a transaction for a write that needs one (keys selected before the write). */
  readonly open: <T>(fn: (tx: Db) => Promise<T>) => Promise<T>;
}

type Tree = Map<string, { model: string; sub: Tree }>;

/**
 * Runs one Prisma write and returns its result and the keys it touched. Bulk writes whose
 * result is only `{count}` get their keys from a RETURNING variant or from a select of the
 * same `where` in the same transaction, the write then restricted to exactly those keys.
 */
export async function runWrite(
  engine: Engine,
  info: ModelInfo,
  op: string,
  args: Args,
  site: Site,
): Promise<{ result: unknown; changes: Change[] }> {
  const table = info.table;
  const keyFields = keysOf(info, site.from);
  const d = delegateName(info.name);
  const on = (db: Db) => db[d] as Delegate;
  const inTx = <T>(fn: (db: Db) => Promise<T>) => (site.tx ? fn(site.tx) : site.open(fn));
  // In the app's transaction the statement runs through Prisma's own chain; in ours, on our client.
  const stmt = (db: Db | undefined, name: string, a: Args) =>
    db && !site.tx ? (on(db)[name] as (a: Args) => Promise<unknown>)(a) : site.exec(a);
  const keySelect = Object.fromEntries(keyFields.map((f) => [f, true]));
  const keyOf = (row: Row, fields = keyFields): Key => fields.map((f) => row[f]);
  const changes: Change[] = [];
  const upsert = (row: Row, hinted = true) =>
    changes.push({ table, key: keyOf(row), op: 'upsert', row: hinted ? hint(info, row) : undefined });
  const restrict = async (db: Db) => {
    const found = (await on(db).findMany({ where: args.where, select: keySelect, take: args.limit })) as Row[];
    return {
      found,
      where: {
        AND: [
          args.where ?? {},
          whereKeys(
            keyFields,
            found.map((r) => keyOf(r)),
          ),
        ],
      },
    };
  };

  switch (op) {
    case 'create':
    case 'update':
    case 'upsert':
    case 'delete': {
      const data = op === 'upsert' ? [args.create, args.update] : args.data;
      const tree = op === 'delete' ? related(info, site) : relationTree(site, info, data);
      const movesKey =
        (op === 'update' || op === 'upsert') && setsKey(op === 'update' ? args.data : args.update, keyFields);
      const [a, added] = withKeys(args, keyFields);
      let row: Row;
      if (tree.size === 0 && !movesKey) row = (await site.exec(a)) as Row;
      else {
        row = await inTx(async (db) => {
          const select = { ...keySelect, ...selectOf(site, tree) };
          const before =
            op === 'create' ? null : ((await on(db).findUnique({ where: args.where, select })) as Row | null);
          const r = (await stmt(db, op, a)) as Row;
          if (before) changes.push({ table, key: keyOf(before), op: 'upsert' });
          const after =
            op === 'delete' || tree.size === 0
              ? null
              : ((await on(db).findFirst({ where: keyWhere(keyFields, keyOf(r)), select })) as Row | null);
          for (const snapshot of [before, after]) collect(site, tree, snapshot, changes);
          return r;
        });
      }
      if (op === 'delete') changes.push({ table, key: keyOf(row), op: 'delete' });
      else upsert(row);
      return { result: strip(row, added), changes };
    }
    case 'createManyAndReturn':
    case 'updateManyAndReturn': {
      const [a, added] = withKeys(args, keyFields);
      const rows = (await site.exec(a)) as Row[];
      for (const r of rows) upsert(r);
      return { result: rows.map((r) => strip(r, added)), changes };
    }
    case 'createMany':
    case 'updateMany':
    case 'deleteMany': {
      const rows = op === 'createMany' ? ([] as Row[]).concat((args.data ?? []) as Row[]) : undefined;
      const strategy = chooseKeyStrategy(engine[site.from].dialect, keyFields, {
        op: op === 'createMany' ? 'insert' : op === 'updateMany' ? 'update' : 'delete',
        rows,
        setsKey: op === 'updateMany' && setsKey(args.data, keyFields),
        // createManyAndReturn / updateManyAndReturn exist where the engine has RETURNING; deleteMany has none.
        canReturn: site.returning && op !== 'deleteMany',
        skipDuplicates: args.skipDuplicates === true,
      });
      switch (strategy.kind) {
        case 'returning': {
          const { where, data, limit, skipDuplicates } = args;
          const returned = (await (op === 'createMany'
            ? on(site.tx ?? site.root).createManyAndReturn({ data, skipDuplicates })
            : on(site.tx ?? site.root).updateManyAndReturn({ where, data, limit }))) as Row[];
          for (const r of returned) upsert(r);
          return { result: { count: returned.length }, changes };
        }
        case 'data': {
          const result = await site.exec(args);
          for (const r of rows ?? []) upsert(r, false);
          return { result, changes };
        }
        case 'one-by-one':
          await inTx(async (db) => {
            for (const r of rows ?? []) upsert((await on(db).create({ data: r, select: keySelect })) as Row, false);
          });
          return { result: { count: rows?.length ?? 0 }, changes };
        case 'lock-select': {
          if (op === 'updateMany' && setsKey(args.data, keyFields))
            engine.countUncaptured(table, 'key_set_by_update_many');
          const result = await inTx(async (db) => {
            const { found, where } = await restrict(db);
            if (found.length === 0) return { count: 0 };
            for (const r of found)
              changes.push({ table, key: keyOf(r), op: op === 'deleteMany' ? 'delete' : 'upsert' });
            return stmt(db, op, { ...args, where, limit: undefined });
          });
          return { result, changes };
        }
        default:
          engine.countUncaptured(table, strategy.kind === 'uncaptured' ? strategy.reason : strategy.kind);
          return { result: await site.exec(args), changes };
      }
    }
    default:
      return { result: await site.exec(args), changes };
  }
}

function keysOf(info: ModelInfo, from: Side): readonly string[] {
  return from === 'source' ? info.sourceKey : info.targetKey;
}

/** `{ id: { in } }` for one key field, `{ OR: [{ a, b }, …] }` for a composite key. */
function whereKeys(fields: readonly string[], keys: readonly Key[]): Args {
  const [only] = fields;
  if (fields.length === 1 && only !== undefined) return { [only]: { in: keys.map((k) => k[0]) } };
  return { OR: keys.map((k) => keyWhere(fields, k)) };
}

function keyWhere(fields: readonly string[], key: Key): Args {
  return Object.fromEntries(fields.map((f, i) => [f, key[i]]));
}

/** Makes sure the result carries the key fields; returns the fields the app did not ask for. */
function withKeys(args: Args, keys: readonly string[]): [Args, string[]] {
  const select = args.select as Args | undefined;
  const omit = args.omit as Args | undefined;
  if (select) {
    const added = keys.filter((k) => !select[k]);
    return [{ ...args, select: { ...select, ...Object.fromEntries(added.map((k) => [k, true])) } }, added];
  }
  if (omit) {
    const added = keys.filter((k) => omit[k]);
    return [{ ...args, omit: { ...omit, ...Object.fromEntries(added.map((k) => [k, false])) } }, added];
  }
  return [args, []];
}

function strip(row: Row, added: readonly string[]): Row {
  if (added.length === 0 || !row) return row;
  const out = { ...row };
  for (const k of added) delete out[k];
  return out;
}

function setsKey(data: unknown, keys: readonly string[]): boolean {
  return typeof data === 'object' && data !== null && keys.some((k) => k in data);
}

/** The written row by column name, as a hint for the mirror (only complete rows are used). */
function hint(info: ModelInfo, row: Row): Row {
  const out: Row = {};
  for (const [field, column] of info.columns) {
    const v = row[field];
    if (v === undefined) continue;
    const decimal = typeof v === 'object' && v !== null && v.constructor?.name === 'Decimal';
    out[column] = decimal ? String(v) : v instanceof Uint8Array ? Buffer.from(v) : v;
  }
  return out;
}

/** Relations a nested write touches, down every level of nesting (`create`, `update`, `upsert`…). */
function relationTree(site: Site, info: ModelInfo, data: unknown): Tree {
  const tree: Tree = new Map();
  for (const d of ([] as unknown[]).concat(data)) {
    if (typeof d !== 'object' || d === null) continue;
    for (const [field, payload] of Object.entries(d)) {
      const model = info.relations.get(field);
      const rel = model === undefined ? undefined : site.models.get(model);
      if (!rel || typeof payload !== 'object' || payload === null) continue;
      const p = payload as Args;
      const nested = [p.create, pick(p.connectOrCreate, 'create'), p.update, pick(p.update, 'data'), p.upsert]
        .concat(pick(p.upsert, 'create'), pick(p.upsert, 'update'), pick(p.createMany, 'data'))
        .flat();
      const sub = relationTree(site, rel, nested);
      const prev = tree.get(field)?.sub ?? new Map();
      tree.set(field, { model: rel.name, sub: new Map([...prev, ...sub]) });
    }
  }
  return tree;
}

/** Rows of migrated models related to a deleted row: referential actions may change them. */
function related(info: ModelInfo, site: Site): Tree {
  const tree: Tree = new Map();
  for (const [field, model] of info.relations) {
    if (site.models.get(model)?.plan) tree.set(field, { model, sub: new Map() });
  }
  return tree;
}

function pick(v: unknown, key: string): unknown[] {
  return ([] as unknown[]).concat(v ?? []).map((x) => (x as Args | null)?.[key]);
}

function selectOf(site: Site, tree: Tree): Args {
  const out: Args = {};
  for (const [field, node] of tree) {
    const info = site.models.get(node.model) as ModelInfo;
    const keys = Object.fromEntries(keysOf(info, site.from).map((k) => [k, true]));
    const select = { ...keys, ...selectOf(site, node.sub) };
    if (Object.keys(select).length) out[field] = { select };
  }
  return out;
}

/** Adds every migrated row found under the snapshot's relations (before or after the write). */
function collect(site: Site, tree: Tree, snapshot: Row | null | undefined, out: Change[]): void {
  if (!snapshot) return;
  for (const [field, node] of tree) {
    const info = site.models.get(node.model) as ModelInfo;
    for (const row of ([] as Row[]).concat((snapshot[field] ?? []) as Row[])) {
      if (info.plan) out.push({ table: info.table, key: keysOf(info, site.from).map((f) => row[f]), op: 'upsert' });
      collect(site, node.sub, row, out);
    }
  }
}
