import type { Key } from './change.js';
import { keyId } from './change.js';
import type { Side } from './stage.js';

/** A key whose mirror failed. Only the key travels — the worker re-reads the row. */
export interface RetryJob {
  readonly migration: string;
  readonly table: string;
  readonly key: Key;
  /** Epoch and authoritative side when the job was made; re-evaluated when it runs. */
  readonly epoch: number;
  readonly from: Side;
}

export interface DeadLetter {
  readonly migration: string;
  readonly table: string;
  readonly key: Key;
  readonly reason: string;
  readonly attempts: number;
  readonly at: Date;
}

/** Runs one job: resolves when the key is mirrored, throws to try again later. */
export type RetryHandler = (job: RetryJob) => Promise<void>;

/**
 * Where failed mirrors wait. One pending job per migration+table+key: a burst of failures on
 * a row is one job. Implementations: `InProcessRetryQueue` here, BullMQ in `@midflight/bullmq`.
 */
export interface RetryQueue {
  enqueue(job: RetryJob, reason: string): Promise<void>;
  /** Starts processing with `handler`. */
  start(handler: RetryHandler): void;
  /** Jobs waiting or running (dead letters excluded). */
  size(): Promise<number>;
  deadLetters(): Promise<DeadLetter[]>;
  /** Moves dead letters back to the queue. */
  retryDeadLetters(): Promise<number>;
  close(): Promise<void>;
}

export interface InProcessRetryOptions {
  readonly attempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  readonly onDeadLetter?: (dl: DeadLetter) => void;
  readonly onAttempt?: (job: RetryJob, outcome: 'ok' | 'failed', reason?: string) => void;
}

interface Pending {
  job: RetryJob;
  attempts: number;
  reason: string;
  timer: NodeJS.Timeout | undefined;
  running: boolean;
  again: boolean;
}

/**
 * The retry queue inside the app process: exponential backoff with full jitter, dead letters
 * after `attempts`. Lost if the process dies — use `@midflight/bullmq` in production.
 */
export class InProcessRetryQueue implements RetryQueue {
  private readonly pending = new Map<string, Pending>();
  private readonly dead = new Map<string, DeadLetter>();
  private handler: RetryHandler | undefined;
  private closed = false;

  constructor(private readonly options: InProcessRetryOptions) {}

  async enqueue(job: RetryJob, reason: string): Promise<void> {
    const id = `${job.migration}\u0000${job.table}\u0000${keyId(job.key)}`;
    const p = this.pending.get(id);
    if (p) {
      // Already waiting: keep one job; if it is running now, run once more after it.
      if (p.running) p.again = true;
      p.job = job;
      return;
    }
    this.dead.delete(id);
    const entry: Pending = { job, attempts: 0, reason, timer: undefined, running: false, again: false };
    this.pending.set(id, entry);
    this.schedule(id, entry);
  }

  start(handler: RetryHandler): void {
    this.handler = handler;
    for (const [id, p] of this.pending) if (!p.timer && !p.running) this.schedule(id, p);
  }

  async size(): Promise<number> {
    return this.pending.size;
  }

  async deadLetters(): Promise<DeadLetter[]> {
    return [...this.dead.values()];
  }

  async retryDeadLetters(): Promise<number> {
    const all = [...this.dead.values()];
    this.dead.clear();
    for (const d of all)
      await this.enqueue(
        { migration: d.migration, table: d.table, key: d.key, epoch: 0, from: 'source' },
        'manual retry',
      );
    return all.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.values()) if (p.timer) clearTimeout(p.timer);
  }

  private schedule(id: string, p: Pending): void {
    if (this.closed || !this.handler) return;
    const { backoffMs, maxBackoffMs } = this.options;
    const cap = Math.min(maxBackoffMs, backoffMs * 2 ** p.attempts);
    const delay = p.attempts === 0 ? backoffMs / 2 : cap / 2 + Math.random() * (cap / 2);
    p.timer = setTimeout(() => void this.run(id, p), delay);
    p.timer.unref?.();
  }

  private async run(id: string, p: Pending): Promise<void> {
    const handler = this.handler;
    if (!handler || this.closed) return;
    p.timer = undefined;
    p.running = true;
    p.again = false;
    p.attempts++;
    try {
      await handler(p.job);
      this.options.onAttempt?.(p.job, 'ok');
      p.running = false;
      if (p.again) {
        p.attempts = 0;
        this.schedule(id, p);
      } else this.pending.delete(id);
    } catch (e) {
      p.running = false;
      p.reason = e instanceof Error ? e.message : String(e);
      this.options.onAttempt?.(p.job, 'failed', p.reason);
      if (p.attempts >= this.options.attempts && !p.again) {
        this.pending.delete(id);
        const dl: DeadLetter = { ...p.job, reason: p.reason, attempts: p.attempts, at: new Date() };
        this.dead.set(id, dl);
        this.options.onDeadLetter?.(dl);
      } else this.schedule(id, p);
    }
  }
}
