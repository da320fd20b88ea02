import type { Knex } from 'knex';
import type { Registry } from 'prom-client';
import { type BackfillOptions, backfillTable } from './backfill.js';
import { type Change, keyId } from './change.js';
import { currentContext } from './context.js';
import { detectDialect } from './dialect.js';
import { ConfigError, MidflightError, safeReason } from './errors.js';
import type { FlagProvider, FlagState } from './flags.js';
import { introspectTable } from './introspect.js';
import { consoleLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import type { Migration } from './migration.js';
import { planTable, type TablePlan } from './plan.js';
import { Propagator } from './propagator.js';
import { type ReadDecision, routeRead } from './read-router.js';
import { InProcessRetryQueue, type RetryJob, type RetryQueue } from './retry-queue.js';
import { compareResults, type Mismatch } from './shadow-compare.js';
import { authority, mirrors, otherSide, type Side, type Stage } from './stage.js';
import { KnexStore } from './store.js';
import { type VerifyOptions, type VerifyReport, verifyTable } from './verify.js';
import { WriteGate } from './write-gate.js';

export interface StartOptions {
  /** The source database (the app's current one). Pass the plain Knex, not a wrapped one. */
  readonly source: Knex;
  readonly target: Knex;
  /** Stage and rollout. Default: the migration's table stages, else its safe stage. */
  readonly flags?: FlagProvider;
  /** Default: an in-process queue (lost with the process — use @midflight/bullmq in production). */
  readonly retryQueue?: RetryQueue;
  /** Register metrics here instead of a fresh registry. */
  readonly registry?: Registry;
  readonly logger?: Logger;
  /** Receives each shadow-read mismatch (names only unless `reads.recordValues`). */
  readonly onMismatch?: (m: Mismatch) => void;
}

/**
 * A migration bound to its two databases: the one object adapters talk to. Everything that
 * decides — stage, routing, mirroring, retries — happens here.
 */
export class Engine {
  readonly metrics: Metrics;
  readonly plans: ReadonlyMap<string, TablePlan>;
  readonly source: KnexStore;
  readonly target: KnexStore;
  private readonly propagator: Propagator;
  private readonly queue: RetryQueue;
  private readonly logger: Logger;
  private lastFlags: FlagState | undefined;
  private epochValue = 0;
  private lastAuthority = new Map<string, Side>();
  private readonly pendingByUser = new Map<string, Map<string, number>>();
  private readonly pendingByKey = new Map<string, Set<string>>();
  private closed = false;
  /** Write authority set by a coordinated cutover; `undefined` = follow the flags. */
  private coordinated: Side | undefined;
  /** Holds new writes during a coordinated cutover. */
  readonly gate = new WriteGate();

  /** @internal use `startMigration`. */
  constructor(
    readonly migration: Migration,
    private readonly options: StartOptions,
    plans: Map<string, TablePlan>,
    source: KnexStore,
    target: KnexStore,
  ) {
    this.plans = plans;
    this.source = source;
    this.target = target;
    this.metrics = new Metrics(options.registry);
    this.logger = options.logger ?? consoleLogger();
    const label = migration.name;
    this.queue =
      options.retryQueue ??
      new InProcessRetryQueue({
        ...migration.retry,
        onDeadLetter: (dl) => {
          this.metrics.deadLettered.inc({ migration: label, table: dl.table });
          this.logger.error('dead_letter', {
            migration: label,
            table: dl.table,
            attempts: dl.attempts,
            reason: dl.reason,
          });
        },
        onAttempt: (job, outcome) => this.metrics.retried.inc({ migration: label, table: job.table, outcome }),
      });
    this.propagator = new Propagator({
      migration,
      plans,
      source,
      target,
      metrics: this.metrics,
      logger: this.logger,
      queue: this.queue,
      epoch: () => this.epochValue,
      onSettled: (table, id) => this.settleKey(table, id),
    });
    this.queue.start((job) => this.processRetry(job));
  }

  /** The plan of a source table, or `undefined` when the table is not migrated. */
  plan(table: string): TablePlan | undefined {
    return this.plans.get(table);
  }

  /** The plan whose target table is `table`. */
  planByTarget(table: string): TablePlan | undefined {
    for (const p of this.plans.values()) if (p.target === table) return p;
    return undefined;
  }

  /** The stage in force for a table: flags, else the table's configured stage, else the safe stage. */
  stage(table: string): Stage {
    const fresh = this.readFlags();
    const stage = this.pinAuthority(
      fresh?.tables?.[table] ?? fresh?.stage ?? this.migration.tables.get(table)?.stage ?? this.migration.safeStage,
    );
    // An authority flip starts a new epoch, so queued jobs know they were made under another one.
    const auth = authority(stage);
    const prev = this.lastAuthority.get(table);
    if (prev !== undefined && prev !== auth) this.epochValue++;
    this.lastAuthority.set(table, auth);
    return stage;
  }

  get epoch(): number {
    return this.epochValue;
  }

  /**
   * Once a coordinated cutover has set the write authority, flags move reads and stages but
   * cannot flip authority on their own: a `live` flag under target authority means `rampdown`,
   * a `rampdown` flag under source authority means `live`. `off` (the kill switch) stays `off`.
   */
  private pinAuthority(stage: Stage): Stage {
    if (this.coordinated === 'target' && (stage === 'dualwrite' || stage === 'shadow' || stage === 'live'))
      return 'rampdown';
    if (this.coordinated === 'source' && (stage === 'rampdown' || stage === 'complete')) return 'live';
    return stage;
  }

  /** Applies the write authority a coordinated cutover decided (called by the cutover participant). */
  setAuthority(side: Side | undefined, epoch: number): void {
    this.coordinated = side;
    if (epoch > this.epochValue) this.epochValue = epoch;
    this.lastAuthority.clear();
  }

  get authority(): Side | undefined {
    return this.coordinated;
  }

  /**
   * Adapters call this before a write on a migrated table and the returned function after the
   * write and its mirror are done: during a cutover's freeze the write waits here.
   */
  beginWrite(): Promise<() => void> {
    return this.gate.enter();
  }

  /** Where writes to this table go first (their answer is the caller's answer). */
  writeSide(table: string): Side {
    return authority(this.stage(table));
  }

  /**
   * Reports committed writes. Resolves when mirrored, after the deadline, or at once in
   * handoff mode; never rejects — failures go to the retry queue.
   *
   * @example
   * await engine.capture([{ table: 'users', key: [id], op: 'upsert', row }], 'source')
   */
  async capture(changes: readonly Change[], from: Side = 'source'): Promise<void> {
    if (this.closed || changes.length === 0) return;
    const relevant = changes.filter((c) => {
      const plan = this.plans.get(c.table);
      if (!plan) return false;
      const stage = this.stage(c.table);
      return mirrors(stage) && authority(stage) === from;
    });
    if (relevant.length === 0) return;
    const userId = currentContext().userId;
    if (userId !== undefined) for (const c of relevant) this.markPending(userId, c.table, keyId(c.key));
    try {
      await this.propagator.capture(relevant, from);
    } catch (e) {
      // The propagator does not throw; this is a last guard so that a bug never fails a request.
      this.logger.error('capture_failed', { migration: this.migration.name, reason: safeReason(e) });
    }
  }

  /** Decides where a read of `table` goes for the current request. */
  route(table: string): ReadDecision {
    const plan = this.plans.get(table);
    const stage = this.stage(table);
    const userId = currentContext().userId;
    return routeRead({
      stage,
      rollout: this.readFlags()?.rollout ?? 0,
      userId,
      pendingWrite: userId !== undefined && (this.pendingByUser.get(userId)?.get(table) ?? 0) > 0,
      routable: plan?.queryCompatible ?? false,
      sampleRate: this.migration.reads.shadowSampleRate,
      salt: this.migration.name,
    });
  }

  /**
   * Runs a read on the side the router picks, falls back to the source when the target fails
   * (while the source is still kept current), and compares a sample with the other side off the
   * request path.
   *
   * @example
   * const rows = await engine.read('users', (side) => (side === 'source' ? src : tgt)('users').where(...))
   */
  async read<T>(
    table: string,
    run: (side: Side) => Promise<T>,
    decision: ReadDecision = this.route(table),
  ): Promise<T> {
    const label = { migration: this.migration.name, table };
    let side = decision.side;
    let result: T;
    try {
      result = await run(side);
    } catch (e) {
      const stage = this.stage(table);
      if (side !== 'target' || stage === 'complete') throw e;
      this.metrics.readFallbacks.inc(label);
      this.logger.warn('read_fallback', { ...label, reason: safeReason(e) });
      side = 'source';
      result = await run(side);
    }
    this.metrics.reads.inc({ ...label, side, reason: decision.reason });
    if (decision.compare) {
      const other = otherSide(side);
      setImmediate(() => {
        run(other).then(
          (secondary) => this.recordComparison(table, result, secondary),
          (e) => this.logger.warn('shadow_read_failed', { ...label, side: other, reason: safeReason(e) }),
        );
      });
    }
    return result;
  }

  /** Compares two answers to the same read (used by `read`, and by adapters that compare themselves). */
  recordComparison(table: string, primary: unknown, secondary: unknown): Mismatch[] {
    const plan = this.plans.get(table);
    if (!plan) return [];
    const label = { migration: this.migration.name, table };
    const found = compareResults(plan, primary, secondary, this.migration.reads.recordValues);
    this.metrics.shadowCompared.inc(label);
    if (found.length) {
      this.metrics.shadowMismatches.inc(label);
      for (const m of found) {
        this.logger.warn('shadow_mismatch', { ...label, kind: m.kind, columns: m.columns });
        this.options.onMismatch?.(m);
      }
    }
    return found;
  }

  /** Counts raw SQL that bypassed capture (adapters call this). */
  countRaw(adapter: string): void {
    this.metrics.rawQueries.inc({ migration: this.migration.name, adapter });
  }

  /** Counts a write on a mapped table that could not be captured with its keys. */
  countUncaptured(table: string, reason: string): void {
    this.metrics.uncaptured.inc({ migration: this.migration.name, table, reason });
    this.logger.error('write_not_captured', { migration: this.migration.name, table, reason });
  }

  /** Waits until every mirror, recheck and retry has finished (dead letters excluded). */
  async drain(timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    let quiet = 0;
    while (Date.now() < until) {
      const size = await this.queue.size();
      this.metrics.queueDepth.set({ migration: this.migration.name }, size);
      // Two quiet looks in a row: a recheck may be scheduled between a mirror's end and the next tick.
      if (!this.propagator.busy && size === 0) {
        if (++quiet >= 2) return;
      } else quiet = 0;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new MidflightError(
      'MIRROR_FAILED',
      `drain did not finish within ${timeoutMs} ms (${await this.queue.size()} keys still queued)`,
    );
  }

  /** Waits until this process has no mirror or re-check in flight (the queue may still hold jobs). */
  async settle(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    let quiet = 0;
    while (Date.now() < until) {
      if (!this.propagator.busy) {
        if (++quiet >= 2) return;
      } else quiet = 0;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Keys waiting for a retry, and keys given up on. */
  async queueState(): Promise<{ queued: number; deadLetters: Awaited<ReturnType<RetryQueue['deadLetters']>> }> {
    const [queued, deadLetters] = await Promise.all([this.queue.size(), this.queue.deadLetters()]);
    this.metrics.queueDepth.set({ migration: this.migration.name }, queued);
    this.metrics.deadLetterDepth.set({ migration: this.migration.name }, deadLetters.length);
    return { queued, deadLetters };
  }

  /** Moves dead letters back into the retry queue (after the cause was fixed). */
  retryDeadLetters(): Promise<number> {
    return this.queue.retryDeadLetters();
  }

  /** Full comparison of every table (or the named ones). */
  async verify(options: VerifyOptions & { tables?: readonly string[] } = {}): Promise<VerifyReport> {
    const tables = [];
    for (const plan of this.selected(options.tables)) {
      const diff = await verifyTable(plan, this.source, this.target, options);
      for (const kind of ['missing', 'extra', 'different'] as const) {
        this.metrics.verifyDifferences.set(
          { migration: this.migration.name, table: plan.source, kind },
          diff[kind].length,
        );
      }
      tables.push(diff);
    }
    return {
      tables,
      differences: tables.reduce((n, t) => n + t.missing.length + t.extra.length + t.different.length, 0),
    };
  }

  /** Verify, then mirror every differing key through the normal path. Returns the keys repaired. */
  async reconcile(options: VerifyOptions & { tables?: readonly string[] } = {}): Promise<number> {
    const report = await this.verify(options);
    let n = 0;
    for (const t of report.tables) {
      const keys = [...t.missing, ...t.extra, ...t.different.map((d) => d.key)];
      const from = this.writeSide(t.table);
      for (let i = 0; i < keys.length; i += 500)
        await this.propagator.mirrorKeys(t.table, from, keys.slice(i, i + 500));
      n += keys.length;
    }
    await this.drain();
    return n;
  }

  /** Copies history of every table (or the named ones) to the target. Run it in `dualwrite` or later. */
  async backfill(options: BackfillOptions & { tables?: readonly string[] } = {}): Promise<number> {
    let rows = 0;
    for (const plan of this.selected(options.tables)) {
      let done = 0;
      rows += await backfillTable(plan, this.source, this.propagator, {
        ...options,
        onChunk: async (p) => {
          this.metrics.backfillRows.inc({ migration: this.migration.name, table: p.table }, p.rows - done);
          done = p.rows;
          await options.onChunk?.(p);
        },
      });
    }
    // Wait for this process's mirrors and re-checks only: keys that failed are the retry
    // queue's now, and waiting for the whole queue would also wait for the app's live traffic.
    await this.settle();
    return rows;
  }

  /** Stops taking changes, lets this process's mirrors and re-checks land, then closes the queue and flags. */
  async close(): Promise<void> {
    this.closed = true;
    await this.settle();
    await this.queue.close();
    await this.options.flags?.close?.();
  }

  private selected(names: readonly string[] | undefined): TablePlan[] {
    if (!names) return [...this.plans.values()];
    return names.map((n) => {
      const p = this.plans.get(n);
      if (!p)
        throw new ConfigError(
          'SOURCE_TABLE_MISSING',
          `table "${n}" is not part of migration "${this.migration.name}"`,
          { table: n },
        );
      return p;
    });
  }

  private readFlags(): FlagState | undefined {
    try {
      const s = this.options.flags?.get(this.migration.name);
      if (s) this.lastFlags = s;
    } catch (e) {
      this.logger.warn('flags_unavailable', { migration: this.migration.name, reason: safeReason(e) });
    }
    return this.lastFlags;
  }

  /**
   * Runs one retry job: re-reads the row on the side that is authoritative now and mirrors it.
   * A job made under an older epoch (before an authority flip) is re-evaluated, never replayed.
   * Throws a reason without row values when the mirror fails (the queue retries it).
   */
  async processRetry(job: RetryJob): Promise<void> {
    const { table, key } = job;
    if (!this.plans.has(table)) throw new Error(`table "${table}" is not part of migration "${this.migration.name}"`);
    const stage = this.stage(table);
    if (!mirrors(stage)) return;
    try {
      await this.propagator.mirrorKeyCoalesced(table, authority(stage), key);
    } catch (e) {
      throw new Error(safeReason(e));
    }
  }

  private markPending(userId: string, table: string, id: string): void {
    const k = `${table}\u0000${id}`;
    const users = this.pendingByKey.get(k) ?? new Set<string>();
    if (users.has(userId)) return;
    users.add(userId);
    this.pendingByKey.set(k, users);
    const perTable = this.pendingByUser.get(userId) ?? new Map<string, number>();
    perTable.set(table, (perTable.get(table) ?? 0) + 1);
    this.pendingByUser.set(userId, perTable);
  }

  private settleKey(table: string, id: string): void {
    const k = `${table}\u0000${id}`;
    const users = this.pendingByKey.get(k);
    if (!users) return;
    this.pendingByKey.delete(k);
    for (const u of users) {
      const perTable = this.pendingByUser.get(u);
      const n = (perTable?.get(table) ?? 1) - 1;
      if (n <= 0) perTable?.delete(table);
      else perTable?.set(table, n);
      if (perTable?.size === 0) this.pendingByUser.delete(u);
    }
  }
}

/**
 * Binds a migration to its databases: introspects both, checks every table (throwing a
 * `ConfigError` that names the table and column), starts flags and the retry queue.
 *
 * @example
 * const engine = await startMigration(migration, { source: knex(pgConfig), target: knex(mariaConfig), flags })
 */
export async function startMigration(migration: Migration, options: StartOptions): Promise<Engine> {
  const [sd, td] = await Promise.all([detectDialect(options.source), detectDialect(options.target)]);
  const source = new KnexStore(options.source, sd);
  const target = new KnexStore(options.target, td);
  const plans = new Map<string, TablePlan>();
  for (const [table, config] of migration.tables) {
    const targetName = config.target ?? table;
    const [s, t] = await Promise.all([
      introspectTable(options.source, sd, table),
      introspectTable(options.target, td, targetName),
    ]);
    plans.set(table, planTable(table, config, s, t, targetName));
  }
  if (options.flags?.start) {
    try {
      await options.flags.start();
    } catch (e) {
      // Unreachable flags at start: the safe stage, never a guess.
      (options.logger ?? consoleLogger()).warn('flags_unavailable_at_start', {
        migration: migration.name,
        safeStage: migration.safeStage,
        reason: safeReason(e),
      });
    }
  }
  return new Engine(migration, options, plans, source, target);
}
