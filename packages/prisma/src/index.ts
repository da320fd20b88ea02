import { AsyncLocalStorage } from 'node:async_hooks';
import { ChangeScope, type Engine, type TablePlan } from '@midflight/core';
import { Prisma } from '@prisma/client/extension';
import { datamodelOf, delegateName, type ModelInfo, readModels } from './models.js';
import { type Args, type Db, runWrite, type Site } from './write.js';

export interface MidflightPrismaOptions {
  /**
   * A Prisma client on the target database (generated for the target's provider, same models).
   * Reads routed to the target, and writes once the target is authoritative, run on it.
   */
  readonly target: object;
}

interface TxOptions {
  readonly isolationLevel?: unknown;
  readonly maxWait?: number;
  readonly timeout?: number;
}
/** A transaction client with the internal entry points `$transaction` itself uses. */
interface TxClient {
  $transaction(fn: (tx: Db) => Promise<unknown>, options?: TxOptions): Promise<unknown>;
  _transactionWithCallback(a: { callback: (tx: Db) => Promise<unknown>; options?: TxOptions }): Promise<unknown>;
}
/** One open `$transaction` of the app: its changes wait here until it commits. */
interface Scope {
  readonly parent: Scope | undefined;
  readonly options: TxOptions | undefined;
  tx: Db | undefined;
  /** A batch `$transaction([...])` runs its statements inside this interactive one. */
  adopt: boolean;
  /** Its changes and write-gate hold; core decides what happens when it ends. */
  readonly changes: ChangeScope;
  /** The target transaction beside this one, opened on the first write there (`rampdown`). */
  target: Promise<Held> | undefined;
  targetCommitted: boolean;
}
interface Held {
  readonly db: Db;
  finish(commit: boolean): Promise<void>;
}
interface Operation {
  model?: string;
  operation: string;
  args: Args;
  query: (args: Args) => Promise<unknown>;
  __internalParams?: { transaction?: { kind?: string } };
}

const READS = new Set(
  ['findUnique', 'findFirst', 'findMany', 'count', 'aggregate', 'groupBy'].flatMap((r) => [r, `${r}OrThrow`]),
);
const ROLLBACK = Symbol('midflight.rollback');
let rawWarned = false;

/**
 * The Midflight extension for Prisma 7: every write on a migrated model is reported to the
 * engine with its keys after the source commits; reads are routed by stage to this client or to
 * `target`. Install it last, so that it sees the statements other extensions produce.
 *
 * @example
 * const engine = await startMigration(migration, { source: knex(pg), target: knex(maria), flags })
 * const target = new TargetPrismaClient({ adapter: new PrismaMariaDb(mariaUrl) })
 * const db = new PrismaClient({ adapter }).$extends(midflight(engine, { target }))
 */
export function midflight(engine: Engine, options: MidflightPrismaOptions) {
  return Prisma.defineExtension((client) => {
    const binding = new PrismaBinding(engine, client as unknown as Db, options.target as Db);
    const extended = client.$extends({
      name: 'midflight',
      query: {
        $allModels: { $allOperations: (op) => binding.operation(op as Operation) },
        $executeRaw: (op) => binding.raw(op as Operation),
        $executeRawUnsafe: (op) => binding.raw(op as Operation),
        $queryRaw: (op) => binding.raw(op as Operation),
        $queryRawUnsafe: (op) => binding.raw(op as Operation),
      },
      client: {
        /** Holds the transaction's changes until commit (dropped on rollback); see `PrismaBinding.transaction`. */
        $transaction(arg: unknown, options?: TxOptions): Promise<unknown> {
          return binding.transaction(Prisma.getExtensionContext(this) as unknown as TxClient, arg, options);
        },
      },
    });
    // The app's client keeps its own typing: Midflight adds no API, and `$transaction` keeps its overloads.
    return extended as unknown as typeof client;
  });
}

class PrismaBinding {
  private readonly models: ReadonlyMap<string, ModelInfo>;
  private readonly scopes = new AsyncLocalStorage<Scope>();
  /** Statements Midflight issues itself run through the chain untouched. */
  private readonly bypass = new AsyncLocalStorage<boolean>();

  constructor(
    private readonly engine: Engine,
    private readonly base: Db,
    private readonly target: Db,
  ) {
    this.models = readModels(engine, datamodelOf(base, 'the source client'), datamodelOf(target, 'options.target'));
    if (typeof (base as Partial<TxClient>)._transactionWithCallback !== 'function') {
      throw new Error('@midflight/prisma needs Prisma 7 (interactive transactions not found)');
    }
  }

  async operation(p: Operation): Promise<unknown> {
    if (this.bypass.getStore()) return p.query(p.args);
    const { model = '', operation, args } = p;
    const store = this.scopes.getStore();
    const inTx = p.__internalParams?.transaction !== undefined;
    // Statements on the outer client inside a transaction's callback are outside it, as in Prisma.
    const scope = store && (inTx || store.adopt) ? store : undefined;
    const adopted = scope?.adopt === true && !inTx;
    const exec = adopted
      ? (a: Args) => this.bypass.run(true, () => call(scope.tx as Db, model, operation, a))
      : (a: Args) => p.query(a);
    const info = this.models.get(model);
    if (!info?.plan) return exec(args);
    const table = info.table;
    const targetFirst = this.engine.writeSide(table) === 'target' && info.plan.queryCompatible;
    if (READS.has(operation)) {
      if (scope) return targetFirst ? call((await this.targetOf(scope)).db, model, operation, args) : exec(args);
      return this.engine.read(table, (side) =>
        side === 'source' ? exec(args) : call(this.target, model, operation, args),
      );
    }
    // A write passes the engine's gate (held during a cutover), then decides its side again.
    let done: (() => void) | undefined;
    if (scope) await scope.changes.enterGate();
    else done = await this.engine.beginWrite();
    try {
      return await this.write(p, info, info.plan, scope, exec);
    } finally {
      done?.();
    }
  }

  private async write(
    p: Operation,
    info: ModelInfo,
    plan: TablePlan,
    scope: Scope | undefined,
    exec: (a: Args) => Promise<unknown>,
  ): Promise<unknown> {
    const { model = '', operation, args } = p;
    const targetFirst = this.engine.writeSide(info.table) === 'target' && plan.queryCompatible;
    const held = targetFirst && scope ? await this.targetOf(scope) : undefined;
    const site: Site = {
      from: targetFirst ? 'target' : 'source',
      models: this.models,
      returning: (targetFirst ? this.engine.target : this.engine.source).dialect.family === 'postgres',
      exec: targetFirst ? (a) => call(held?.db ?? this.target, model, operation, a) : exec,
      tx: targetFirst ? held?.db : scope?.tx,
      root: targetFirst ? this.target : this.base,
      open: (fn) => ((targetFirst ? this.target : this.base) as unknown as TxClient).$transaction(fn as never) as never,
    };
    const { result, changes } = await this.bypass.run(true, () => runWrite(this.engine, info, operation, args, site));
    if (scope) scope.changes.hold(site.from, changes);
    else await this.engine.capture(changes, site.from);
    return result;
  }

  raw(p: Operation): Promise<unknown> {
    this.engine.countRaw('prisma');
    if (!rawWarned) {
      rawWarned = true;
      process.emitWarning('raw SQL through Prisma is not mirrored by Midflight (counted in midflight_raw_queries)', {
        code: 'MIDFLIGHT_RAW_SQL',
      });
    }
    return p.query(p.args);
  }

  /**
   * Runs the app's transaction (either form) as an interactive one on the extended client, so
   * that the extension stays on inside it; a batch runs its statements in order inside it.
   * Captured changes are released after the commit, merged into the parent on a nested commit,
   * dropped on rollback. The target transaction, when writes went there, commits first.
   */
  async transaction(ctx: TxClient, arg: unknown, options: TxOptions | undefined): Promise<unknown> {
    const current = this.scopes.getStore();
    const parent = current && current.tx === (ctx as unknown) ? current : undefined;
    const scope: Scope = {
      parent,
      options,
      tx: undefined,
      adopt: false,
      changes: new ChangeScope(this.engine, parent?.changes),
      target: undefined,
      targetCommitted: false,
    };
    const callback = async (tx: Db) => {
      scope.tx = tx;
      let result: unknown;
      try {
        result = await this.scopes.run(scope, () =>
          typeof arg === 'function' ? (arg as (tx: Db) => Promise<unknown>)(tx) : this.adopt(scope, arg as unknown[]),
        );
      } catch (e) {
        await (await scope.target?.catch(() => undefined))?.finish(false).catch(() => {});
        throw e;
      }
      if (scope.target) {
        await (await scope.target).finish(true);
        scope.targetCommitted = true;
      }
      return result;
    };
    let result: unknown;
    try {
      result = await ctx._transactionWithCallback({ callback, options });
    } catch (e) {
      // The authoritative target committed and the source did not: the target's writes stand.
      if (scope.targetCommitted) await scope.changes.commit('target');
      else scope.changes.rollback();
      throw e;
    }
    await scope.changes.commit();
    return result;
  }

  private async adopt(scope: Scope, promises: unknown[]): Promise<unknown[]> {
    scope.adopt = true;
    try {
      const out: unknown[] = [];
      for (const p of promises) out.push(await p);
      return out;
    } finally {
      scope.adopt = false;
    }
  }

  /** The target transaction beside `scope` (nested as a savepoint under the parent's). */
  private targetOf(scope: Scope): Promise<Held> {
    scope.target ??= (async () => {
      const outer = scope.parent ? (await this.targetOf(scope.parent)).db : this.target;
      return hold(outer as unknown as TxClient, scope.options);
    })();
    return scope.target;
  }
}

/** Opens an interactive transaction and keeps it open until `finish` decides commit or rollback. */
function hold(client: TxClient, options: TxOptions | undefined): Promise<Held> {
  return new Promise<Held>((resolve, reject) => {
    let decide: (commit: boolean) => void = () => {};
    const decided = new Promise<boolean>((r) => {
      decide = r;
    });
    const done = client
      .$transaction(async (db) => {
        resolve({
          db,
          finish: async (commit) => {
            decide(commit);
            await done;
          },
        });
        if (!(await decided)) throw ROLLBACK;
      }, options)
      .then(
        () => undefined,
        (e) => {
          reject(e);
          if (e !== ROLLBACK) throw e;
        },
      );
    done.catch(() => {});
  });
}

function call(db: Db, model: string, operation: string, args: Args): Promise<unknown> {
  const delegate = db[delegateName(model)] as Record<string, (a: Args) => Promise<unknown>>;
  return (delegate[operation] as (a: Args) => Promise<unknown>)(args);
}
