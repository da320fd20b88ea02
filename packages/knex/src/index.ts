import type { Change, Dialect, Engine, Key, Row, Side, TablePlan } from '@midflight/core';
import { ChangeScope, chooseKeyStrategy, isPlainValue, whereKeys } from '@midflight/core';
import type { Knex } from 'knex';

/**
 * Wraps a Knex instance so that every write on a migrated table is mirrored and every read is
 * routed by the migration's stage. The app keeps using it exactly like the Knex it wraps.
 *
 * @example
 * const engine = await startMigration(migration, { source: knex(pg), target: knex(maria), flags })
 * const db = midflight(knex(pg), engine) // use `db` wherever the app used knex
 * await db('users').where({ id }).update({ name }) // mirrored after it commits
 */
export function midflight<K extends Knex>(knex: K, engine: Engine): K {
  return new KnexBinding(knex, engine).wrap(knex) as K;
}

/** Knex's query builder, with the internals the wrapper reads. */
interface Builder extends Knex.QueryBuilder {
  _method: string;
  _single: {
    table?: unknown;
    insert?: unknown;
    update?: Row;
    counter?: Row;
    returning?: unknown;
    onConflict?: unknown;
    limit?: unknown;
  };
  _statements: Array<{ grouping: string }>;
  client: Client;
  [RETURNING]?: { user: unknown; rows: Row[] | undefined; project: string[] | undefined };
}
type Client = Knex.Client & {
  processResponse: (
    obj: { response?: { rows?: Row[] }; returning?: unknown },
    runner: { builder?: Builder },
  ) => unknown;
};

interface Scope {
  readonly raw: Knex.Transaction;
  readonly parent: Scope | undefined;
  /** The transaction's changes and write-gate hold (core decides what happens at its end). */
  readonly changes: ChangeScope;
  /** A transaction on the target opened beside this one once a write goes there (rampdown). */
  target: Promise<Knex.Transaction> | undefined;
  rolledBack: boolean;
  released: Promise<void>;
}

/** Where and how one captured write runs. */
interface WriteSite {
  readonly plan: TablePlan;
  readonly from: Side;
  readonly table: string;
  readonly keyCols: readonly string[];
  readonly dialect: Dialect;
  readonly root: Knex;
  /** The open transaction the write runs in, if any, and where its changes wait for commit. */
  readonly trx: Knex.Transaction | undefined;
  readonly held: ChangeScope | undefined;
}

const RETURNING = Symbol('midflight.returning');
const INSTRUMENTED = Symbol('midflight.instrumented');
const READS = new Set(['select', 'first', 'pluck']);
const WRITES = new Set(['insert', 'update', 'del']);
const PLAIN = /^[A-Za-z_][A-Za-z0-9_$]*$/;

class KnexBinding {
  private readonly scopes = new WeakMap<object, Scope>();
  private readonly patched = new WeakSet<object>();
  private readonly run: (this: unknown) => Promise<unknown>;
  private readonly clone: (this: unknown) => Builder;

  constructor(
    private readonly root: Knex,
    private readonly engine: Engine,
  ) {
    const proto = Object.getPrototypeOf(root.queryBuilder()) as { then: () => Promise<unknown>; clone: () => Builder };
    this.run = proto.then;
    this.clone = proto.clone;
    this.patchClient(root.client);
    this.patchClient(engine.target.knex.client);
  }

  wrap(k: Knex): Knex {
    const cache = new Map<PropertyKey, unknown>();
    return new Proxy(k, {
      apply: (t, thisArg, args) => this.instrument(Reflect.apply(t as never, thisArg, args)),
      get: (t, prop) => {
        if (cache.has(prop)) return cache.get(prop);
        const value = Reflect.get(t, prop);
        let out: unknown = value;
        if (prop === 'transaction' || prop === 'savepoint') {
          out = (a?: unknown, b?: unknown) => this.transaction(t, a, b);
        } else if (prop === 'commit' && this.scopes.has(t.client)) {
          const scope = this.scopes.get(t.client) as Scope;
          out = async (v?: unknown) => {
            const r = await (t as Knex.Transaction).commit(v);
            await scope.released;
            return r;
          };
        } else if (prop === 'transactionProvider') {
          // One transaction per provider, opened on first use, wrapped like `transaction()`.
          out = (config?: Knex.TransactionConfig) => {
            let trx: Promise<unknown> | undefined;
            return () => {
              trx ??= this.transaction(t, config, undefined) as Promise<unknown>;
              return trx;
            };
          };
        } else if (prop === 'batchInsert') {
          out = (table: string, rows: Row[], size = 1000) => this.batchInsert(k, table, rows, size);
        } else if (typeof value === 'function') {
          out = (...args: unknown[]) => this.instrument((value as (...a: unknown[]) => unknown).apply(t, args));
        }
        cache.set(prop, out);
        return out;
      },
    });
  }

  /** Makes a builder (or raw) run through the wrapper when awaited. */
  private instrument<T>(value: T): T {
    if (!value || typeof value !== 'object' || (value as { [INSTRUMENTED]?: boolean })[INSTRUMENTED]) return value;
    const v = value as unknown as Record<PropertyKey, unknown>;
    const self = this;
    if (typeof v.toSQL === 'function' && typeof v._method === 'string') {
      v[INSTRUMENTED] = true;
      // biome-ignore lint/suspicious/noThenProperty: a Knex builder runs when awaited; this is the hook.
      v.then = function (this: Builder, ok?: (x: unknown) => unknown, err?: (e: unknown) => unknown) {
        return self.execute(this).then(ok, err);
      };
      v.clone = function (this: Builder) {
        return self.instrument(self.clone.call(this));
      };
    } else if (typeof v.toSQL === 'function' && typeof v.then === 'function' && 'sql' in v) {
      // knex.raw(...) is executed as written: not captured, but counted so that it is visible.
      v[INSTRUMENTED] = true;
      const then = v.then as (...a: unknown[]) => Promise<unknown>;
      // biome-ignore lint/suspicious/noThenProperty: counting raw queries at the moment they run.
      v.then = function (this: unknown, ...args: unknown[]) {
        self.engine.countRaw('knex');
        return then.apply(this, args);
      };
    }
    return value;
  }

  private async execute(qb: Builder): Promise<unknown> {
    const table = tableName(qb._single.table);
    const plan = table === undefined ? undefined : this.engine.plan(table);
    if (!plan || table === undefined) return this.run.call(qb);
    const scope = this.scopes.get(qb.client);
    if (!WRITES.has(qb._method)) return this.route(qb, plan, table, scope);
    // A write passes the engine's gate first (held during a cutover), then decides its side.
    if (scope) {
      await scope.changes.enterGate();
      return this.route(qb, plan, table, scope);
    }
    const done = await this.engine.beginWrite();
    try {
      return await this.route(qb, plan, table, scope);
    } finally {
      done();
    }
  }

  private async route(qb: Builder, plan: TablePlan, table: string, scope: Scope | undefined): Promise<unknown> {
    const method = qb._method;
    const targetFirst = this.engine.writeSide(table) === 'target' && plan.queryCompatible;
    if (scope && targetFirst) {
      // The target is authoritative: the transaction's statements run in a target transaction beside it.
      const trx = await this.targetTransaction(scope);
      this.onTarget(qb, plan).client = trx.client as Client;
      if (!WRITES.has(method)) return this.run.call(qb);
      return this.write(qb, this.site(plan, table, 'target', trx, scope.changes));
    }
    if (READS.has(method)) {
      // Inside a transaction the app reads its own writes on its own connection.
      if (scope) return this.run.call(qb);
      return this.engine.read(table, (side) =>
        side === 'source' ? this.run.call(qb) : this.run.call(this.onTarget(this.clone.call(qb), plan)),
      );
    }
    if (method === 'truncate') {
      this.engine.countUncaptured(table, 'truncate');
      return this.run.call(qb);
    }
    if (!WRITES.has(method)) return this.run.call(qb);
    if (targetFirst) return this.write(this.onTarget(qb, plan), this.site(plan, table, 'target', undefined, undefined));
    return this.write(qb, this.site(plan, table, 'source', scope?.raw, scope?.changes));
  }

  private site(
    plan: TablePlan,
    table: string,
    from: Side,
    trx: Knex.Transaction | undefined,
    held: ChangeScope | undefined,
  ): WriteSite {
    const side = from === 'source' ? this.engine.source : this.engine.target;
    const keyCols = from === 'source' ? plan.sourceKey : plan.targetKey;
    const root = from === 'source' ? this.root : side.knex;
    return { plan, from, table, keyCols, dialect: side.dialect, root, trx, held };
  }

  private targetTransaction(scope: Scope): Promise<Knex.Transaction> {
    if (!scope.target) {
      const open = scope.parent
        ? this.targetTransaction(scope.parent).then((p) => p.transaction())
        : this.engine.target.knex.transaction();
      scope.target = open.then((t) => {
        this.patchClient(t.client);
        return t;
      });
    }
    return scope.target;
  }

  /** Points a builder at the target database and table. */
  private onTarget(qb: Builder, plan: TablePlan): Builder {
    qb.client = this.engine.target.knex.client as Client;
    const raw = String(qb._single.table);
    qb._single.table = raw.replace(/^\s*[\w$.]+/, plan.target);
    return qb;
  }

  /** Runs a write and reports the keys it touched (after commit, or into the open transaction). */
  private async write(qb: Builder, site: WriteSite): Promise<unknown> {
    const { keyCols } = site;
    const single = qb._single;
    const method = qb._method;
    const set = { ...single.update, ...single.counter };
    const user = single.returning;
    const data = single.insert;
    const list = Array.isArray(data) ? data : [data];
    const rows = list.every((r) => r?.constructor === Object) ? (list as Row[]) : undefined;
    const conflict = ([] as unknown[])
      .concat(single.onConflict ?? [])
      .filter((c): c is string => typeof c === 'string');
    const strategy = chooseKeyStrategy(site.dialect, keyCols, {
      op: method === 'del' ? 'delete' : method === 'update' ? 'update' : single.onConflict ? 'upsert' : 'insert',
      rows,
      setsKey: keyCols.some((c) => c in set),
      // Knex compiles RETURNING itself only where the engine has it; the app's own must be plain columns.
      canReturn: site.dialect.knexReturning && (user === undefined || isPlainReturning(user)),
      conflictColumns: conflict,
    });
    const changes: Change[] = [];
    const op = method === 'del' ? 'delete' : 'upsert';
    const push = (keys: readonly Key[]) => {
      for (const key of keys) changes.push({ table: site.table, key, op });
    };
    let result: unknown;
    switch (strategy.kind) {
      case 'returning': {
        const all = user === undefined || user === '*' || (Array.isArray(user) && user.includes('*'));
        qb[RETURNING] = { user, rows: undefined, project: all ? undefined : ([] as string[]).concat(user as string[]) };
        qb.returning(method === 'del' ? [...keyCols] : '*');
        result = await this.run.call(qb);
        for (const row of qb[RETURNING]?.rows ?? []) changes.push(change(site, row, method === 'del'));
        break;
      }
      case 'data':
        result = await this.run.call(qb);
        push((rows ?? []).map((row) => keyCols.map((c) => row[c])));
        break;
      case 'conflict-select':
        result = await this.inTransaction(site, async (trx) => {
          const r = await this.run.call(qb.transacting(trx));
          const cols = strategy.columns;
          const q = trx(tableName(single.table) as string).select([...keyCols]);
          const found = (await whereKeys(
            q,
            cols,
            (rows ?? []).map((row) => cols.map((c) => row[c])),
          )) as Row[];
          push(found.map((f) => keyCols.map((c) => f[c])));
          return r;
        });
        break;
      case 'one-by-one':
        result = await this.inTransaction(site, async (trx) => {
          const ids: unknown[] = [];
          for (const row of rows ?? []) {
            const one = this.clone.call(qb);
            one._single.insert = row;
            ids.push(((await this.run.call(one.transacting(trx))) as unknown[])[0]);
          }
          push(ids.map((id) => [id]));
          return [ids[0]];
        });
        break;
      case 'lock-select':
        result = await this.inTransaction(site, async (trx) => {
          const keys = await this.lockKeys(trx, qb, keyCols);
          if (single.limit !== undefined && keys.length) whereKeys(qb, keyCols, keys);
          const r = await this.run.call(qb.transacting(trx));
          push(keys);
          // Rows whose key column was set to a plain value now live under the new key.
          if (!keyCols.some((c) => c in set)) return r;
          if (keyCols.every((c) => !(c in set) || isPlainValue(set[c]))) {
            for (const k of keys)
              changes.push({ table: site.table, key: keyCols.map((c, i) => (c in set ? set[c] : k[i])), op: 'upsert' });
          } else this.engine.countUncaptured(site.table, 'key_set_to_expression');
          return r;
        });
        break;
      case 'uncaptured':
        this.engine.countUncaptured(site.table, strategy.reason);
        result = await this.run.call(qb);
    }
    await this.emit(site, changes);
    return this.shapeForApp(result, method, user, site, changes);
  }

  /**
   * After the authority flip a write may run on another engine than the app was written for;
   * give the app the result shape of its own engine (MySQL: `[insertId]`; PostgreSQL: the
   * RETURNING rows it asked for).
   */
  private async shapeForApp(
    result: unknown,
    method: string,
    user: unknown,
    site: WriteSite,
    changes: Change[],
  ): Promise<unknown> {
    const app = this.engine.source.dialect.family;
    if (site.dialect.family === app) return result;
    if (app === 'mysql' && method === 'insert') return [changes[0]?.key[0] ?? 0];
    if (app === 'postgres' && user !== undefined) {
      const asRow = (key: Key) => Object.fromEntries(site.keyCols.map((c, i) => [c, key[i]]));
      if (method === 'del' || changes.length === 0) return changes.map((c) => asRow(c.key));
      const cols = ([] as unknown[]).concat(user).filter((c): c is string => typeof c === 'string');
      const db = site.trx ?? site.root;
      const q = db(site.plan.target).select(cols.includes('*') ? '*' : cols);
      return whereKeys(
        q,
        site.keyCols,
        changes.map((c) => c.key),
      );
    }
    return result;
  }

  /** Selects and locks the keys a write's WHERE matches, in the write's transaction. */
  private async lockKeys(trx: Knex.Transaction, qb: Builder, keyCols: readonly string[]): Promise<Key[]> {
    const sel = trx.from(qb._single.table as string).select([...keyCols]) as Builder;
    sel._statements = qb._statements.filter(
      (s) => s.grouping === 'where' || s.grouping === 'join' || s.grouping === 'order' || s.grouping === 'with',
    );
    if (qb._single.limit !== undefined) sel._single.limit = qb._single.limit;
    const rows = (await this.run.call(sel.forUpdate())) as Row[];
    return rows.map((r) => keyCols.map((c) => r[c]));
  }

  private async inTransaction<T>(site: WriteSite, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    if (site.trx) return fn(site.trx);
    return site.root.transaction(async (trx) => {
      this.patchClient(trx.client);
      return fn(trx);
    });
  }

  private async emit(site: WriteSite, changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    if (site.held) site.held.hold(site.from, changes);
    else await this.engine.capture(changes, site.from);
  }

  private transaction(t: Knex, a: unknown, b: unknown): unknown {
    const parent = this.scopes.get(t.client);
    if (typeof a === 'function') {
      let scope: Scope | undefined;
      const run = t.transaction((raw) => {
        scope = this.openScope(raw, parent);
        return (a as (trx: Knex.Transaction) => Promise<unknown>)(this.wrap(raw) as Knex.Transaction);
      }, b as Knex.TransactionConfig);
      return run.then(async (v) => {
        await scope?.released;
        return v;
      });
    }
    return (t.transaction(a as Knex.TransactionConfig) as Promise<Knex.Transaction>).then((raw) => {
      this.openScope(raw, parent);
      return this.wrap(raw);
    });
  }

  /** Holds a transaction's changes until it commits; drops them on rollback. */
  private openScope(raw: Knex.Transaction, parent: Scope | undefined): Scope {
    this.patchClient(raw.client);
    let done: () => void = () => {};
    const scope: Scope = {
      raw,
      parent,
      changes: new ChangeScope(this.engine, parent?.changes),
      target: undefined,
      rolledBack: false,
      released: new Promise<void>((r) => {
        done = r;
      }),
    };
    this.scopes.set(raw.client, scope);
    const { commit, rollback } = raw;
    // Knex resolves (not rejects) a transaction rolled back without an error, so mark it here.
    raw.rollback = ((e?: unknown) => {
      scope.rolledBack = true;
      scope.target?.then((t) => t.rollback()).catch(() => {});
      return rollback.call(raw, e);
    }) as typeof raw.rollback;
    // The authoritative target transaction commits first; if it cannot, the source rolls back.
    raw.commit = (async (v?: unknown) => {
      if (scope.target) {
        try {
          await (await scope.target).commit();
        } catch (e) {
          return raw.rollback(e);
        }
      }
      return commit.call(raw, v);
    }) as typeof raw.commit;
    const dropped = () => {
      scope.changes.rollback();
      done();
    };
    raw.executionPromise.then(() => (scope.rolledBack ? dropped() : scope.changes.commit().then(done, done)), dropped);
    return scope;
  }

  /** Knex's `batchInsert`, through the wrapper: one transaction, chunked inserts, all captured. */
  private batchInsert(k: Knex, table: string, rows: Row[], size: number): Promise<unknown[]> {
    const db = this.wrap(k);
    return db.transaction(async (trx) => {
      const out: unknown[] = [];
      for (let i = 0; i < rows.length; i += size) out.push(await trx(table).insert(rows.slice(i, i + size)));
      return out.flat();
    });
  }

  /** Lets a write see the rows its added RETURNING produced, while the app sees what it asked for. */
  private patchClient(client: Knex.Client): void {
    if (this.patched.has(client)) return;
    this.patched.add(client);
    const c = client as Client;
    const original = c.processResponse;
    c.processResponse = function (this: Client, obj, runner) {
      const mark = runner?.builder?.[RETURNING];
      if (!mark || !obj?.response) return original.call(this, obj, runner);
      mark.rows = obj.response.rows ?? [];
      const out = original.call(this, mark.user === undefined ? { ...obj, returning: undefined } : obj, runner);
      const project = mark.project;
      if (project && Array.isArray(out)) return out.map((r: Row) => Object.fromEntries(project.map((p) => [p, r[p]])));
      return out;
    };
  }
}

function change(site: WriteSite, row: Row, deleted: boolean): Change {
  const key = site.keyCols.map((c) => row[c]);
  return deleted ? { table: site.table, key, op: 'delete' } : { table: site.table, key, op: 'upsert', row };
}

/** `users`, `users as u`, `public.users` → the configured table name; anything else → undefined. */
function tableName(t: unknown): string | undefined {
  if (typeof t !== 'string') return undefined;
  const m = /^\s*([\w$]+(?:\.[\w$]+)?)(?:\s+(?:as\s+)?[\w$]+)?\s*$/i.exec(t);
  return m?.[1];
}

function isPlainReturning(r: unknown): boolean {
  const list = Array.isArray(r) ? r : [r];
  return list.every((x) => typeof x === 'string' && (x === '*' || PLAIN.test(x)));
}
