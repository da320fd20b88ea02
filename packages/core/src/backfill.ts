import type { Key } from './change.js';
import type { TablePlan } from './plan.js';
import type { Propagator } from './propagator.js';
import type { KnexStore } from './store.js';

export interface BackfillOptions {
  readonly chunkSize?: number;
  /** Resume after this key (from a checkpoint). */
  readonly after?: Key;
  /** Called after each chunk lands: persist `lastKey` to resume after a crash. */
  readonly onChunk?: (progress: { table: string; rows: number; lastKey: Key }) => void | Promise<void>;
  /** Pause between chunks, to throttle load on the source. */
  readonly pauseMs?: number;
}

/**
 * Copies a table's history in key order, chunk by chunk, through the propagator: each chunk
 * is written to the target and then re-checked against the source like any mirrored write, so
 * a chunk read before a concurrent update or delete cannot leave old data or resurrect a row.
 */
export async function backfillTable(
  plan: TablePlan,
  source: KnexStore,
  propagator: Propagator,
  options: BackfillOptions = {},
): Promise<number> {
  const chunk = options.chunkSize ?? 1000;
  let after = options.after;
  let rows = 0;
  for (;;) {
    const batch = await source.scan(plan.source, plan.sourceKey, after, chunk, plan.sourceColumns);
    if (batch.length === 0) break;
    try {
      await propagator.mirrorRows(plan.source, 'source', batch);
    } catch (e) {
      // One bad row must not stop the copy: the chunk's keys go to the retry queue, key by key.
      await propagator.fail(
        plan.source,
        'source',
        batch.map((r) => plan.sourceKey.map((c) => r[c])),
        e,
      );
    }
    rows += batch.length;
    const last = batch[batch.length - 1] as Record<string, unknown>;
    after = plan.sourceKey.map((c) => last[c]);
    await options.onChunk?.({ table: plan.source, rows, lastKey: after });
    if (batch.length < chunk) break;
    // Yield between chunks even without a pause: on a single-connection database (PGlite) the
    // app's queries would otherwise wait for the whole backfill.
    await new Promise((r) => (options.pauseMs ? setTimeout(r, options.pauseMs) : setImmediate(r)));
  }
  return rows;
}
