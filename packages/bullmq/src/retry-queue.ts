import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  type DeadLetter,
  keyId,
  type Migration,
  type RetryHandler,
  type RetryJob,
  type RetryQueue,
} from '@midflight/core';
import { Job, Queue, type RedisOptions, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import { Spool } from './spool.js';

export interface BullMqRetryQueueOptions {
  /** Redis connection (ioredis options). */
  readonly connection: RedisOptions;
  /** BullMQ key prefix. Default `midflight`. */
  readonly prefix?: string;
  /** Local spool for jobs made while Redis is unreachable. Default `.midflight/spool-<name>.jsonl`, 100 000 entries. */
  readonly spool?: { readonly path?: string; readonly maxEntries?: number };
  /** Also process jobs inside this process (default false: run `midflight worker` beside the app). */
  readonly processInApp?: boolean;
  /** Where to register the queue's own metrics (spool size, reconcile flag). */
  readonly registry?: Registry;
}

interface JobData {
  readonly table: string;
  readonly key: readonly unknown[];
  readonly epoch: number;
  readonly from: RetryJob['from'];
}

/**
 * The retry queue on BullMQ: one job per migration+table+key (the job id), carrying the key
 * and epoch only — the worker re-reads the row. Failed jobs past their attempts stay in
 * BullMQ's failed set: those are the dead letters. While Redis is unreachable, jobs go to a
 * local fsync'd spool and are replayed when it returns.
 *
 * @example
 * const retryQueue = new BullMqRetryQueue(migration, { connection: { host: '127.0.0.1', port: 6379 } })
 * const engine = await startMigration(migration, { source, target, retryQueue })
 */
export class BullMqRetryQueue implements RetryQueue {
  readonly queue: Queue;
  readonly name: string;
  readonly spool: Spool;
  private readonly dirtyKey: string;
  /** Our own connection for the dirty-key hash; fails fast when Redis is down. */
  readonly redis: Redis;
  private worker: Worker | undefined;
  private replaying: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly spoolGauge: Gauge | undefined;

  constructor(
    readonly migration: Migration,
    readonly options: BullMqRetryQueueOptions,
  ) {
    this.name = `mf-${migration.name}`;
    const prefix = options.prefix ?? 'midflight';
    // A producer must fail fast when Redis is down, so that the job lands in the spool at once.
    this.queue = new Queue(this.name, {
      prefix,
      connection: { ...options.connection, enableOfflineQueue: false, maxRetriesPerRequest: 1 },
    });
    this.queue.on('error', () => {});
    this.redis = new Redis({ ...(options.connection as object), enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.redis.on('error', () => {});
    this.dirtyKey = `${prefix}:${this.name}:dirty`;
    this.spool = new Spool(
      options.spool?.path ?? join(process.cwd(), '.midflight', `spool-${migration.name}.jsonl`),
      options.spool?.maxEntries ?? 100_000,
    );
    if (options.registry) {
      const r = options.registry;
      this.spoolGauge =
        (r.getSingleMetric('midflight_spool_entries') as Gauge | undefined) ??
        new Gauge({
          name: 'midflight_spool_entries',
          help: 'Retry jobs spooled locally while Redis is unreachable',
          registers: [r],
        });
      if (!r.getSingleMetric('midflight_needs_reconcile')) {
        const spool = this.spool;
        new Gauge({
          name: 'midflight_needs_reconcile',
          help: '1 when changes may have been lost (spool overflow): run `midflight reconcile`',
          registers: [r],
          collect() {
            this.set(spool.needsReconcile ? 1 : 0);
          },
        });
      }
      if (!r.getSingleMetric('midflight_spool_overflow_total')) {
        new Counter({
          name: 'midflight_spool_overflow_total',
          help: 'Jobs not spooled because the spool was full',
          registers: [r],
        });
      }
    }
    this.timer = setInterval(() => void this.replay(), 500);
    this.timer.unref();
  }

  /** The BullMQ job id of a key: a hash, since ids may not contain ':' and keys may. */
  jobId(table: string, key: readonly unknown[]): string {
    return createHash('sha1')
      .update(`${this.migration.name}\u0000${table}\u0000${keyId(key)}`)
      .digest('hex');
  }

  async enqueue(job: RetryJob, _reason: string): Promise<void> {
    try {
      await this.add(job);
    } catch {
      if (!this.spool.append(job)) {
        (this.options.registry?.getSingleMetric('midflight_spool_overflow_total') as Counter | undefined)?.inc();
      }
      this.spoolGauge?.set(this.spool.size());
    }
  }

  /** Adds (or re-arms) the job of a key, and marks the key dirty so a running job runs again. */
  async add(job: RetryJob): Promise<void> {
    await this.ready();
    const id = this.jobId(job.table, job.key);
    const data: JobData = { table: job.table, key: job.key, epoch: job.epoch, from: job.from };
    const client = this.redis;
    await client.hset(this.dirtyKey, id, JSON.stringify({ at: Date.now(), ...data }));
    const existing = await Job.fromId(this.queue, id);
    if (existing && (await existing.getState()) === 'failed') {
      await existing.retry('failed');
      return;
    }
    const { attempts } = this.migration.retry;
    await this.queue.add(job.table, data, {
      jobId: id,
      attempts,
      backoff: { type: 'midflight' },
      removeOnComplete: true,
      removeOnFail: false,
    });
  }

  /** Waits (briefly) for a connection that is still being made; throws at once when Redis is down. */
  private async ready(timeoutMs = 1000): Promise<void> {
    const r = this.redis;
    if (r.status === 'ready') return;
    if (r.status !== 'connecting' && r.status !== 'connect' && r.status !== 'wait')
      throw new Error(`redis is ${r.status}`);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('redis not ready')), timeoutMs);
      r.once('ready', () => {
        clearTimeout(t);
        resolve();
      });
    });
    await Promise.race([
      this.queue.waitUntilReady(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('queue not ready')), timeoutMs)),
    ]);
  }

  start(handler: RetryHandler): void {
    if (this.options.processInApp && !this.worker) this.worker = this.createWorker(handler, 1);
  }

  /** A BullMQ worker that runs `handler` for each job (used by `startWorker` and `processInApp`). */
  createWorker(
    handler: RetryHandler,
    concurrency: number,
    extra: { lockDuration?: number; stalledInterval?: number } = {},
  ): Worker {
    const { backoffMs, maxBackoffMs } = this.migration.retry;
    const worker = new Worker<JobData>(
      this.name,
      async (job) => {
        const client = this.redis;
        await client.hdel(this.dirtyKey, job.id as string);
        await handler({ migration: this.migration.name, ...job.data });
        // A change reported while this job ran could not add a job (this one was active): go again.
        if (await client.hexists(this.dirtyKey, job.id as string)) {
          throw new Error('the row changed while it was being mirrored; mirroring again');
        }
      },
      {
        prefix: this.options.prefix ?? 'midflight',
        connection: { ...this.options.connection, maxRetriesPerRequest: null },
        concurrency,
        lockDuration: extra.lockDuration ?? 30_000,
        stalledInterval: extra.stalledInterval ?? 15_000,
        maxStalledCount: 10,
        settings: {
          backoffStrategy: (attemptsMade: number) => {
            const cap = Math.min(maxBackoffMs, backoffMs * 2 ** Math.max(0, attemptsMade - 1));
            return Math.round(cap / 2 + Math.random() * (cap / 2));
          },
        },
      },
    );
    worker.on('error', () => {});
    return worker;
  }

  /**
   * Re-adds jobs for keys still marked dirty whose job is gone — closes the window where a
   * change arrived just as the key's job was completing. Run by workers every few seconds.
   */
  async sweep(olderThanMs = 2_000): Promise<number> {
    const client = this.redis;
    const all = await client.hgetall(this.dirtyKey);
    let n = 0;
    for (const [id, raw] of Object.entries(all)) {
      const d = JSON.parse(raw) as JobData & { at: number };
      if (Date.now() - d.at < olderThanMs) continue;
      const state = await this.queue.getJobState(id);
      if (state === 'unknown' || state === 'completed') {
        await this.add({ migration: this.migration.name, table: d.table, key: d.key, epoch: d.epoch, from: d.from });
        n++;
      }
    }
    return n;
  }

  /** Moves spooled jobs to Redis once it answers again. */
  replay(): Promise<void> {
    if (this.replaying) return this.replaying;
    this.replaying = (async () => {
      try {
        const jobs = this.spool.read();
        if (jobs.length === 0) return;
        for (const j of jobs) await this.add(j);
        this.spool.clear();
        this.spoolGauge?.set(0);
      } catch {
        // Redis still down: keep the spool, try again on the next tick.
      } finally {
        this.replaying = undefined;
      }
    })();
    return this.replaying;
  }

  async size(): Promise<number> {
    let queued = 0;
    try {
      const c = await this.queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
      queued = Object.values(c).reduce((a, b) => a + b, 0);
      // Dirty keys whose job is between runs still count as not done.
      const client = this.redis;
      if (queued === 0) queued = await client.hlen(this.dirtyKey);
    } catch {
      queued = 1; // Redis unreachable: not drained as far as anyone can tell
    }
    return queued + this.spool.size();
  }

  async deadLetters(): Promise<DeadLetter[]> {
    const failed = await this.queue.getFailed();
    return failed.map((j) => {
      const d = j.data as JobData;
      return {
        migration: this.migration.name,
        table: d.table,
        key: d.key,
        reason: j.failedReason,
        attempts: j.attemptsMade,
        at: new Date(j.finishedOn ?? j.timestamp),
        id: j.id,
      } as DeadLetter;
    });
  }

  async retryDeadLetters(ids?: readonly string[]): Promise<number> {
    const failed = await this.queue.getFailed();
    let n = 0;
    for (const j of failed) {
      if (ids && !ids.includes(j.id as string)) continue;
      await (j as Job).retry('failed');
      n++;
    }
    return n;
  }

  /** Deletes dead letters (all, or the given job ids). */
  async purgeDeadLetters(ids?: readonly string[]): Promise<number> {
    const failed = await this.queue.getFailed();
    let n = 0;
    for (const j of failed) {
      if (ids && !ids.includes(j.id as string)) continue;
      await (j as Job).remove();
      n++;
    }
    return n;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    // With Redis gone, BullMQ's close waits for a reconnection that may never come: bound it.
    const bounded = (p: Promise<unknown>) =>
      Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, 2000).unref())]);
    if (this.worker) await bounded(this.worker.close());
    await bounded(this.redis.status === 'ready' ? this.queue.close() : this.queue.disconnect());
    this.redis.disconnect();
  }
}
