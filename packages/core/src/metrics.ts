import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics for every decision the engine makes. One registry per engine unless the
 * app passes its own (then metrics are shared and labelled by migration).
 *
 * @example
 * app.get('/metrics', async (_, res) => res.type('text/plain').send(await engine.metrics.registry.metrics()))
 */
export class Metrics {
  readonly registry: Registry;
  readonly mirrored: Counter<'migration' | 'table' | 'direction'>;
  readonly mirrorFailed: Counter<'migration' | 'table' | 'reason'>;
  readonly retried: Counter<'migration' | 'table' | 'outcome'>;
  readonly deadLettered: Counter<'migration' | 'table'>;
  readonly rechecks: Counter<'migration' | 'table' | 'outcome'>;
  readonly queueDepth: Gauge<'migration'>;
  readonly deadLetterDepth: Gauge<'migration'>;
  readonly mirrorSeconds: Histogram<'migration' | 'mode'>;
  readonly reads: Counter<'migration' | 'table' | 'side' | 'reason'>;
  readonly readFallbacks: Counter<'migration' | 'table'>;
  readonly shadowCompared: Counter<'migration' | 'table'>;
  readonly shadowMismatches: Counter<'migration' | 'table'>;
  readonly rawQueries: Counter<'migration' | 'adapter'>;
  readonly uncaptured: Counter<'migration' | 'table' | 'reason'>;
  readonly backfillRows: Counter<'migration' | 'table'>;
  readonly verifyDifferences: Gauge<'migration' | 'table' | 'kind'>;

  constructor(registry?: Registry) {
    this.registry = registry ?? new Registry();
    const r = this.registry;
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      (r.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [r] });
    const gauge = <L extends string>(name: string, help: string, labelNames: L[]) =>
      (r.getSingleMetric(name) as Gauge<L> | undefined) ?? new Gauge({ name, help, labelNames, registers: [r] });
    this.mirrored = counter('midflight_writes_mirrored_total', 'Rows brought to the mirrored side', [
      'migration',
      'table',
      'direction',
    ]);
    this.mirrorFailed = counter(
      'midflight_writes_mirror_failed_total',
      'Mirror attempts that failed (moved to the retry queue)',
      ['migration', 'table', 'reason'],
    );
    this.retried = counter('midflight_writes_retried_total', 'Retry-queue attempts by outcome', [
      'migration',
      'table',
      'outcome',
    ]);
    this.deadLettered = counter('midflight_dead_letters_total', 'Keys moved to the dead letters', [
      'migration',
      'table',
    ]);
    this.rechecks = counter(
      'midflight_mirror_rechecks_total',
      'Source re-reads after a mirror, by outcome (same, changed)',
      ['migration', 'table', 'outcome'],
    );
    this.queueDepth = gauge('midflight_retry_queue_depth', 'Keys waiting in the retry queue', ['migration']);
    this.deadLetterDepth = gauge('midflight_dead_letter_depth', 'Keys in the dead letters', ['migration']);
    this.mirrorSeconds =
      (r.getSingleMetric('midflight_mirror_seconds') as Histogram<'migration' | 'mode'> | undefined) ??
      new Histogram({
        name: 'midflight_mirror_seconds',
        help: 'Time the request path spent on the mirror',
        labelNames: ['migration', 'mode'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        registers: [r],
      });
    this.reads = counter('midflight_reads_total', 'Reads by the side that served them and why', [
      'migration',
      'table',
      'side',
      'reason',
    ]);
    this.readFallbacks = counter(
      'midflight_read_fallbacks_total',
      'Target reads that failed and were served by the source',
      ['migration', 'table'],
    );
    this.shadowCompared = counter('midflight_shadow_compared_total', 'Reads compared against the other side', [
      'migration',
      'table',
    ]);
    this.shadowMismatches = counter('midflight_shadow_mismatches_total', 'Compared reads whose results differed', [
      'migration',
      'table',
    ]);
    this.rawQueries = counter(
      'midflight_raw_queries_total',
      'Raw SQL run through an adapter: not captured, not mirrored',
      ['migration', 'adapter'],
    );
    this.uncaptured = counter(
      'midflight_uncaptured_writes_total',
      'Writes on mapped tables whose keys could not be resolved (reconcile needed)',
      ['migration', 'table', 'reason'],
    );
    this.backfillRows = counter('midflight_backfill_rows_total', 'Rows copied by backfill', ['migration', 'table']);
    this.verifyDifferences = gauge('midflight_verify_differences', 'Differences found by the last verify', [
      'migration',
      'table',
      'kind',
    ]);
  }
}
