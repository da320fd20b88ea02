import type { Change, Engine, Side, TablePlan } from '@midflight/core';
import { authority, ChangeScope, MidflightError, mirrors } from '@midflight/core';
import type {
  AfterQueryEvent,
  BeforeQueryEvent,
  DataSource,
  EntityMetadata,
  EntitySubscriberInterface,
  EntityTarget,
  InsertEvent,
  ObjectLiteral,
  QueryRunner,
  RecoverEvent,
  RemoveEvent,
  Repository,
  SoftRemoveEvent,
  TransactionCommitEvent,
  TransactionRollbackEvent,
  TransactionStartEvent,
  UpdateEvent,
} from 'typeorm';
import { hookNextStatement } from './statement.js';

export interface MidflightSubscriberOptions {
  /**
   * The target database as a TypeORM DataSource, initialised, with the same entities mapped to
   * the target tables. Reads routed to the target and writes from `rampdown` on go through it.
   */
  readonly target: DataSource;
}

/** One migrated table as seen from the DataSource an event came from. */
interface Site {
  readonly plan: TablePlan;
  readonly from: Side;
  readonly keyColumns: readonly string[];
}

interface RunnerState {
  /** The innermost open transaction level (savepoints nest); core holds its changes and gate. */
  scope?: ChangeScope | undefined;
  /** ORM write events under way on this runner: a write statement outside them is raw SQL. */
  ormWrites: number;
  /** The write gate held by a write outside any transaction, left when the write ends. */
  gate?: Promise<() => void> | undefined;
}

type WriteEvent = { dataSource: DataSource; queryRunner: QueryRunner; metadata: EntityMetadata };

const WRITE_SQL =
  /^\s*(?:INSERT\s+(?:IGNORE\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+(?:[`"]?[\w$]+[`"]?\.)?[`"]?([\w$]+)/i;

/**
 * A TypeORM subscriber that reports every committed write on a migrated table to the engine,
 * which mirrors it by key. It decides nothing itself: it turns TypeORM's events into core
 * `Change`s, holds them per transaction until commit, and resolves the keys of where-based
 * writes whose events carry none (see `hookNextStatement`).
 *
 * Register it on the app's DataSource after `initialize()` (TypeORM's `subscribers` option only
 * takes classes); it registers itself on the target DataSource, whose writes are the
 * authoritative ones from `rampdown` on.
 *
 * @example
 * const engine = await startMigration(migration, { source: knex(pg), target: knex(maria), flags })
 * const mf = new MidflightSubscriber(engine, { target: targetDataSource })
 * appDataSource.subscribers.push(mf)
 * await mf.writeDataSource(appDataSource, User).getRepository(User).update({ plan: 'free' }, { quota: 5 })
 * const user = await mf.read(appDataSource.getRepository(User), (users) => users.findOneBy({ id }))
 */
export class MidflightSubscriber implements EntitySubscriberInterface {
  private readonly runners = new WeakMap<QueryRunner, RunnerState>();
  private readonly target: DataSource;

  constructor(
    private readonly engine: Engine,
    options: MidflightSubscriberOptions,
  ) {
    this.target = options.target;
    if (!this.target.isInitialized) {
      // initialize() rebuilds `subscribers` from the options, which would drop this instance.
      throw new MidflightError('INVALID_OPTION', 'MidflightSubscriber: initialise the target DataSource first');
    }
    if (!this.target.subscribers.includes(this)) this.target.subscribers.push(this);
  }

  /**
   * Runs a read on the side the engine's router picks for this table and request, with
   * fallback to the source and sampled shadow comparison. Pass the app's (source) repository;
   * inside a transaction the read stays on the transaction's connection.
   *
   * @example
   * const item = await mf.read(dataSource.getRepository(Item), (items) => items.findOneBy({ id }))
   */
  read<E extends ObjectLiteral, T>(
    repository: Repository<E>,
    run: (repository: Repository<E>) => Promise<T>,
  ): Promise<T> {
    const table = repository.metadata.tableName;
    if (
      repository.manager.dataSource === this.target ||
      repository.queryRunner?.isTransactionActive ||
      !this.engine.plan(table)
    ) {
      return run(repository);
    }
    const other = this.target.getRepository<E>(repository.target);
    return this.engine.read(table, (side) => run(side === 'source' ? repository : other));
  }

  /**
   * The DataSource that is authoritative for `entity` now: the app's own until `rampdown`, the
   * target after the flip. Writes (and transactions) should go through it.
   *
   * @example
   * await mf.writeDataSource(dataSource, Item).transaction(async (m) => { await m.save(Item, item) })
   */
  writeDataSource(source: DataSource, entity: EntityTarget<ObjectLiteral>): DataSource {
    const table = source.getMetadata(entity).tableName;
    return this.engine.plan(table) && this.engine.writeSide(table) === 'target' ? this.target : source;
  }

  async beforeInsert(e: InsertEvent<ObjectLiteral>): Promise<void> {
    await this.enterGate(e);
    this.state(e.queryRunner).ormWrites++;
  }

  async beforeUpdate(e: UpdateEvent<ObjectLiteral>): Promise<void> {
    await this.enterGate(e);
    this.state(e.queryRunner).ormWrites++;
    // `save` passes the loaded row; `update(criteria)` and QueryBuilder `update()` pass only the SET values.
    if (e.databaseEntity === undefined) this.hookWhere(e);
  }

  async beforeRemove(e: RemoveEvent<ObjectLiteral>): Promise<void> {
    await this.enterGate(e);
    this.state(e.queryRunner).ormWrites++;
    // `remove(entity)` passes the entity; `delete(criteria)` and QueryBuilder `delete()` pass nothing.
    if (!e.entity && !e.databaseEntity) this.hookWhere(e);
  }

  async beforeSoftRemove(e: SoftRemoveEvent<ObjectLiteral>): Promise<void> {
    await this.enterGate(e);
    this.state(e.queryRunner).ormWrites++;
    // `softDelete(criteria)`/`restore(criteria)`: an UPDATE of the deletedAt column, mirrored like any update.
    if (!e.entity && !e.databaseEntity) this.hookWhere(e);
  }

  beforeRecover(e: RecoverEvent<ObjectLiteral>): Promise<void> {
    return this.beforeSoftRemove(e);
  }

  afterInsert(e: InsertEvent<ObjectLiteral>): Promise<void> {
    return this.fromEntity(e, 'upsert', [e.entity, e.entityId]);
  }

  afterUpdate(e: UpdateEvent<ObjectLiteral>): Promise<void> {
    // Without the loaded row it was a where-based update: its statement hook reported the keys.
    return this.fromEntity(e, 'upsert', e.databaseEntity === undefined ? [] : [e.entity, e.databaseEntity]);
  }

  afterRemove(e: RemoveEvent<ObjectLiteral>): Promise<void> {
    // TypeORM clears the primary key of a removed entity; the loaded row still has it.
    return this.fromEntity(e, 'delete', [e.databaseEntity, e.entityId, e.entity]);
  }

  afterSoftRemove(e: SoftRemoveEvent<ObjectLiteral>): Promise<void> {
    return this.fromEntity(e, 'upsert', [e.entity, e.databaseEntity, e.entityId]);
  }

  afterRecover(e: RecoverEvent<ObjectLiteral>): Promise<void> {
    return this.afterSoftRemove(e);
  }

  /**
   * Raw `dataSource.query()`/`manager.query()` fires no entity event, so it cannot be
   * captured. A write statement on a migrated table that runs outside any ORM write event is
   * counted as raw (`midflight_raw_queries_total{adapter="typeorm"}`); reconcile repairs it.
   */
  beforeQuery(e: BeforeQueryEvent): void {
    if (this.state(e.queryRunner).ormWrites > 0) return;
    const table = WRITE_SQL.exec(e.query)?.[1];
    if (table === undefined) return;
    const plan = e.dataSource === this.target ? this.engine.planByTarget(table) : this.engine.plan(table);
    if (plan) this.engine.countRaw('typeorm');
  }

  afterQuery(e: AfterQueryEvent): void {
    // A failed statement never reaches its after-event: stop treating the runner as mid-write.
    if (!e.success) {
      this.state(e.queryRunner).ormWrites = 0;
      if (!e.queryRunner.isTransactionActive) this.leaveGate(e.queryRunner);
    }
  }

  afterTransactionStart(e: TransactionStartEvent): void {
    const state = this.state(e.queryRunner);
    state.scope = new ChangeScope(this.engine, state.scope);
  }

  async afterTransactionCommit(e: TransactionCommitEvent): Promise<void> {
    const state = this.state(e.queryRunner);
    let top = state.scope;
    if (!top) return;
    if (e.queryRunner.isTransactionActive) {
      // A savepoint was released: its changes now belong to the enclosing transaction.
      if (top.parent) {
        state.scope = top.parent;
        await top.commit();
      }
      return;
    }
    state.scope = undefined;
    state.ormWrites = 0;
    for (; top.parent; top = top.parent) await top.commit();
    await top.commit();
  }

  afterTransactionRollback(e: TransactionRollbackEvent): void {
    const state = this.state(e.queryRunner);
    for (let top = state.scope; top; top = top.parent) {
      top.rollback();
      state.scope = top.parent;
      if (e.queryRunner.isTransactionActive) return; // only the savepoint
    }
    state.ormWrites = 0;
  }

  /**
   * Holds a write on a migrated table while a cutover freezes writes (core's gate). Entered once
   * per runner, left when the write (or the transaction around it) ends.
   */
  private async enterGate(e: WriteEvent): Promise<void> {
    const name = e.metadata.tableName;
    if (!(e.dataSource === this.target ? this.engine.planByTarget(name) : this.engine.plan(name))) return;
    const state = this.state(e.queryRunner);
    if (e.queryRunner.isTransactionActive) {
      state.scope ??= new ChangeScope(this.engine);
      return state.scope.enterGate();
    }
    // Before-events of one statement's rows fire together: enter once for all of them.
    state.gate ??= this.engine.beginWrite();
    await state.gate;
  }

  private leaveGate(runner: QueryRunner): void {
    const state = this.state(runner);
    void state.gate?.then((leave) => leave());
    state.gate = undefined;
  }

  private state(runner: QueryRunner): RunnerState {
    let state = this.runners.get(runner);
    if (!state) {
      state = { ormWrites: 0 };
      this.runners.set(runner, state);
    }
    return state;
  }

  /** The table's plan when writes from this DataSource are the ones mirrored now; else nothing to do. */
  private site(dataSource: DataSource, metadata: EntityMetadata): Site | undefined {
    const from: Side = dataSource === this.target ? 'target' : 'source';
    const plan =
      from === 'source' ? this.engine.plan(metadata.tableName) : this.engine.planByTarget(metadata.tableName);
    if (!plan) return undefined;
    // Core filters again at capture; this only saves resolving keys nobody will mirror.
    const stage = this.engine.stage(plan.source);
    if (!mirrors(stage) || authority(stage) !== from) return undefined;
    return { plan, from, keyColumns: from === 'source' ? plan.sourceKey : plan.targetKey };
  }

  private hookWhere(e: WriteEvent): void {
    const site = this.site(e.dataSource, e.metadata);
    if (!site) return;
    const runner = e.queryRunner;
    const table = site.plan.source;
    hookNextStatement(runner, {
      dialect: this.engine[site.from].dialect,
      table: e.metadata.tableName,
      keyColumns: site.keyColumns,
      onKeys: async (keys, op, affected, rows) => {
        if (affected !== undefined && affected > keys.length)
          this.engine.countUncaptured(table, 'where_rows_unresolved');
        await this.record(
          runner,
          site.from,
          keys.map((key, i) => ({ table, key, op, row: rows?.[i] })),
        );
      },
      onUnresolved: (reason) => this.engine.countUncaptured(table, reason),
    });
  }

  /** A change from an event that carries the entity (save, insert, remove, softRemove, recover). */
  private async fromEntity(e: WriteEvent, op: Change['op'], candidates: unknown[]): Promise<void> {
    try {
      await this.capture(e, op, candidates);
    } finally {
      if (!e.queryRunner.isTransactionActive) this.leaveGate(e.queryRunner);
    }
  }

  private async capture(e: WriteEvent, op: Change['op'], candidates: unknown[]): Promise<void> {
    const state = this.state(e.queryRunner);
    state.ormWrites = Math.max(0, state.ormWrites - 1);
    const objects = candidates.filter((c): c is ObjectLiteral => typeof c === 'object' && c !== null);
    if (objects.length === 0) return;
    try {
      const site = this.site(e.dataSource, e.metadata);
      if (!site) return;
      const key = site.keyColumns.map((name) => {
        const column = e.metadata.findColumnWithDatabaseName(name);
        for (const o of objects) {
          const v = column?.getEntityValue(o);
          if (v !== undefined && v !== null) return v;
        }
        return undefined;
      });
      if (key.some((v) => v === undefined)) return this.engine.countUncaptured(site.plan.source, 'key_not_in_event');
      await this.record(e.queryRunner, site.from, [{ table: site.plan.source, key, op }]);
    } catch {
      // Never fail the app's write from a hook: count it, reconcile repairs the row.
      this.engine.countUncaptured(e.metadata.tableName, 'subscriber_error');
    }
  }

  /** Captures now when no transaction is open (the write has committed), else holds until commit. */
  private async record(runner: QueryRunner, from: Side, changes: Change[]): Promise<void> {
    if (changes.length === 0) return;
    if (!runner.isTransactionActive) return this.engine.capture(changes, from);
    const state = this.state(runner);
    state.scope ??= new ChangeScope(this.engine);
    state.scope.hold(from, changes);
  }
}
