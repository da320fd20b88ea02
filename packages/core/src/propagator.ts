import { type Change, type Key, keyId, type Row } from './change.js';
import { safeReason } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { Migration } from './migration.js';
import { normalizeValue } from './normalize.js';
import type { TablePlan } from './plan.js';
import type { RetryQueue } from './retry-queue.js';
import type { Side } from './stage.js';
import type { KnexStore } from './store.js';

interface Item {
  key: Key;
  /** The authoritative row as last seen; `null` = known absent; `undefined` = read it. */
  row?: Row | null | undefined;
}

interface Recheck {
  table: string;
  from: Side;
  key: Key;
  expected: string | null;
  round: number;
}

export interface PropagatorDeps {
  readonly migration: Migration;
  readonly plans: ReadonlyMap<string, TablePlan>;
  readonly source: KnexStore;
  readonly target: KnexStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly queue: RetryQueue;
  readonly epoch: () => number;
  /** Called when a key's mirror has landed (read-your-writes bookkeeping). */
  readonly onSettled?: (table: string, id: string) => void;
}

/**
 * Brings the mirrored side of each changed key to the authoritative side's current state.
 *
 * A mirror is by key, not by statement: read (or take from the write's RETURNING) the
 * authoritative row, upsert or delete it on the other side, then — off the request path —
 * read the authoritative row again; if it changed meanwhile, go again. The last write to a
 * mirrored row is therefore always followed by a check that the authoritative row still
 * equals what was written, which is what makes concurrent writers on hot keys, retries and
 * backfill converge (the invariant in DESIGN.md). Failures go to the retry queue with the key
 * only; nothing here throws to the caller.
 */
export class Propagator {
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly rechecks = new Map<string, Recheck>();
  private recheckScheduled = false;
  private readonly handoff: Array<{ change: Change; from: Side }> = [];
  private handoffScheduled = false;
  private readonly coalescing = new Map<
    string,
    Array<{ key: Key; resolve: () => void; reject: (e: unknown) => void }>
  >();
  private readonly label: string;

  constructor(private readonly deps: PropagatorDeps) {
    this.label = deps.migration.name;
  }

  /**
   * Mirrors committed changes. In `await` mode resolves when they landed or after the
   * deadline, whichever is first; in `handoff` mode at once. Never rejects.
   */
  async capture(changes: readonly Change[], from: Side): Promise<void> {
    if (changes.length === 0) return;
    const { mode, deadlineMs } = this.deps.migration.mirror;
    if (mode === 'handoff') {
      for (const change of changes) this.handoff.push({ change, from });
      if (this.handoff.length >= 1000) this.flushHandoff();
      else if (!this.handoffScheduled) {
        this.handoffScheduled = true;
        // Gathered over a short window: one upsert and one re-read for many writes.
        setTimeout(() => this.flushHandoff(), this.deps.migration.mirror.batchMs);
      }
      return;
    }
    const started = performance.now();
    const work = this.track(this.mirrorChanges(changes, from));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      work,
      new Promise<void>((r) => {
        timer = setTimeout(r, deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    this.deps.metrics.mirrorSeconds.observe({ migration: this.label, mode }, (performance.now() - started) / 1000);
  }

  /**
   * Mirrors one key for a retry job. Calls made in the same tick for the same table are mirrored
   * as one batch (a worker runs many jobs at once); if the batch fails, each key is tried alone so
   * that one bad row fails only its own job.
   */
  mirrorKeyCoalesced(table: string, from: Side, key: Key): Promise<void> {
    const id = `${table}\u0000${from}`;
    let batch = this.coalescing.get(id);
    if (!batch) {
      const created: Array<{ key: Key; resolve: () => void; reject: (e: unknown) => void }> = [];
      batch = created;
      this.coalescing.set(id, created);
      setImmediate(() => {
        this.coalescing.delete(id);
        void this.track(this.flushCoalesced(table, from, created));
      });
    }
    const list = batch;
    return new Promise<void>((resolve, reject) => list.push({ key, resolve, reject }));
  }

  private async flushCoalesced(
    table: string,
    from: Side,
    list: Array<{ key: Key; resolve: () => void; reject: (e: unknown) => void }>,
  ): Promise<void> {
    try {
      await this.mirrorBatch(
        table,
        from,
        list.map((i) => ({ key: i.key })),
        0,
      );
      for (const i of list) i.resolve();
    } catch (e) {
      if (list.length === 1) return list[0]?.reject(e);
      for (const i of list) {
        try {
          await this.mirrorBatch(table, from, [{ key: i.key }], 0);
          i.resolve();
        } catch (err) {
          i.reject(err);
        }
      }
    }
  }

  /** Mirrors keys from a fresh read of the authoritative side; throws on failure (retry worker). */
  async mirrorKeys(table: string, from: Side, keys: readonly Key[]): Promise<void> {
    await this.mirrorBatch(
      table,
      from,
      keys.map((key) => ({ key })),
      0,
    );
  }

  /** Mirrors rows already read from the authoritative side (backfill); throws on failure. */
  async mirrorRows(table: string, from: Side, rows: readonly Row[]): Promise<void> {
    const plan = this.plan(table);
    const keyCols = from === 'source' ? plan.sourceKey : plan.targetKey;
    await this.mirrorBatch(
      table,
      from,
      rows.map((row) => ({ key: keyCols.map((c) => row[c]), row })),
      0,
    );
  }

  /** Resolves when nothing is in flight here: mirrors, rechecks and handed-off changes. */
  get busy(): boolean {
    return this.inflight.size > 0 || this.rechecks.size > 0 || this.handoff.length > 0;
  }

  private flushHandoff(): void {
    const batch = this.handoff.splice(0);
    if (batch.length === 0) return;
    this.handoffScheduled = false;
    for (const side of ['source', 'target'] as const) {
      const changes = batch.filter((b) => b.from === side).map((b) => b.change);
      if (changes.length) this.track(this.mirrorChanges(changes, side));
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
    return p;
  }

  private plan(table: string): TablePlan {
    const plan = this.deps.plans.get(table);
    if (!plan) throw new Error(`table "${table}" is not part of migration "${this.label}"`);
    return plan;
  }

  private async mirrorChanges(changes: readonly Change[], from: Side): Promise<void> {
    const byTable = new Map<string, Map<string, Item>>();
    for (const c of changes) {
      const items = byTable.get(c.table) ?? new Map<string, Item>();
      // A later change to the same key wins; a delete is a known-absent row.
      items.set(keyId(c.key), { key: c.key, row: c.op === 'delete' ? null : c.row });
      byTable.set(c.table, items);
    }
    await Promise.all(
      [...byTable].map(async ([table, items]) => {
        try {
          await this.mirrorBatch(table, from, [...items.values()], 0);
        } catch (e) {
          await this.fail(
            table,
            from,
            [...items.values()].map((i) => i.key),
            e,
          );
        }
      }),
    );
  }

  /** Hands keys whose mirror failed to the retry queue (with a reason free of row values). */
  async fail(table: string, from: Side, keys: readonly Key[], error: unknown): Promise<void> {
    const reason = safeReason(error);
    const code = String((error as { code?: unknown })?.code ?? 'error').slice(0, 40);
    this.deps.metrics.mirrorFailed.inc({ migration: this.label, table, reason: code }, keys.length);
    this.deps.logger.warn('mirror_failed', { migration: this.label, table, keys: keys.length, reason });
    for (const key of keys) {
      try {
        await this.deps.queue.enqueue({ migration: this.label, table, key, epoch: this.deps.epoch(), from }, reason);
      } catch (qe) {
        // The queue itself is down: nothing more can be done in-process; make it loud.
        this.deps.metrics.uncaptured.inc({ migration: this.label, table, reason: 'queue_unavailable' });
        this.deps.logger.error('retry_enqueue_failed', { migration: this.label, table, reason: safeReason(qe) });
      }
    }
  }

  private async mirrorBatch(table: string, from: Side, items: readonly Item[], round: number): Promise<void> {
    const plan = this.plan(table);
    const fromSource = from === 'source';
    const fromStore = fromSource ? this.deps.source : this.deps.target;
    const toStore = fromSource ? this.deps.target : this.deps.source;
    const fromTable = fromSource ? plan.source : plan.target;
    const toTable = fromSource ? plan.target : plan.source;
    const fromKey = fromSource ? plan.sourceKey : plan.targetKey;
    const toKey = fromSource ? plan.targetKey : plan.sourceKey;
    const fromCols = fromSource ? plan.sourceColumns : plan.targetColumns;

    const usable = (r: Row | null | undefined) => r === null || (r !== undefined && fromCols.every((c) => c in r));
    const toRead = items.filter((i) => !usable(i.row)).map((i) => i.key);
    const read = new Map<string, Row>();
    if (toRead.length) {
      for (const row of await fromStore.readByKeys(fromTable, fromKey, toRead, fromCols)) {
        read.set(keyId(fromKey.map((c) => row[c])), row);
      }
    }
    const upserts: Row[] = [];
    const deletes: Key[] = [];
    const seen: Array<{ key: Key; row: Row | null }> = [];
    for (const i of items) {
      const row = usable(i.row) ? (i.row as Row | null) : (read.get(keyId(i.key)) ?? null);
      seen.push({ key: i.key, row });
      if (row === null) deletes.push(i.key);
      else upserts.push(fromSource ? plan.toTarget(row) : plan.toSource(row));
    }
    await toStore.upsert(toTable, toKey, upserts, fromSource ? plan.targetOtherUniques : plan.sourceOtherUniques);
    await toStore.deleteByKeys(toTable, toKey, deletes);
    this.deps.metrics.mirrored.inc(
      { migration: this.label, table, direction: `${from}_to_${fromSource ? 'target' : 'source'}` },
      items.length,
    );
    for (const s of seen) {
      const expected = s.row === null ? null : fingerprint(s.row, fromCols);
      this.rechecks.set(`${table}\u0000${from}\u0000${keyId(s.key)}\u0000${expected}`, {
        table,
        from,
        key: s.key,
        expected,
        round,
      });
    }
    if (!this.recheckScheduled) {
      this.recheckScheduled = true;
      // Later than the app's next write, and one query for every key mirrored meanwhile.
      setTimeout(() => this.track(this.runRechecks()), this.deps.migration.mirror.recheckDelayMs);
    }
  }

  /** Re-reads the authoritative rows just mirrored; mirrors again those that moved on. */
  private async runRechecks(): Promise<void> {
    this.recheckScheduled = false;
    const batch = [...this.rechecks.values()];
    this.rechecks.clear();
    const groups = new Map<string, Recheck[]>();
    for (const r of batch) {
      const g = groups.get(`${r.table}\u0000${r.from}`) ?? [];
      g.push(r);
      groups.set(`${r.table}\u0000${r.from}`, g);
    }
    for (const group of groups.values()) {
      const { table, from } = group[0] as Recheck;
      const plan = this.plan(table);
      const fromSource = from === 'source';
      const fromKey = fromSource ? plan.sourceKey : plan.targetKey;
      const fromCols = fromSource ? plan.sourceColumns : plan.targetColumns;
      let rows: Row[];
      try {
        rows = await (fromSource ? this.deps.source : this.deps.target).readByKeys(
          fromSource ? plan.source : plan.target,
          fromKey,
          group.map((r) => r.key),
          fromCols,
        );
      } catch (e) {
        await this.fail(
          table,
          from,
          group.map((r) => r.key),
          e,
        );
        continue;
      }
      const now = new Map(rows.map((row) => [keyId(fromKey.map((c) => row[c])), row]));
      const again: Item[] = [];
      let round = 0;
      for (const r of group) {
        const id = keyId(r.key);
        const row = now.get(id) ?? null;
        const current = row === null ? null : fingerprint(row, fromCols);
        if (current === r.expected) {
          this.deps.metrics.rechecks.inc({ migration: this.label, table, outcome: 'same' });
          this.deps.onSettled?.(table, id);
        } else if (r.round + 1 >= this.deps.migration.mirror.maxRechecks) {
          this.deps.metrics.rechecks.inc({ migration: this.label, table, outcome: 'gave_up' });
          await this.fail(
            table,
            from,
            [r.key],
            new Error('row kept changing during mirror; handed to the retry queue'),
          );
        } else {
          this.deps.metrics.rechecks.inc({ migration: this.label, table, outcome: 'changed' });
          again.push({ key: r.key, row });
          round = Math.max(round, r.round + 1);
        }
      }
      if (again.length) {
        try {
          await this.mirrorBatch(table, from, again, round);
        } catch (e) {
          await this.fail(
            table,
            from,
            again.map((i) => i.key),
            e,
          );
        }
      }
    }
  }
}

function fingerprint(row: Row, columns: readonly string[]): string {
  return JSON.stringify(columns.map((c) => normalizeValue(row[c])));
}
