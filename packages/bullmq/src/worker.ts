import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine } from '@midflight/core';
import type { Worker } from 'bullmq';
import type { BullMqRetryQueue } from './retry-queue.js';

export interface WorkerOptions {
  readonly engine: Engine;
  readonly queue: BullMqRetryQueue;
  /** Jobs run at once in this process (I/O bound: several keys share one round trip). Default 16. */
  readonly concurrency?: number;
  /** Port for `/healthz` and `/metrics`; 0 picks one; undefined: no server. */
  readonly port?: number;
  /** How long a job's lock lasts without renewal before another worker takes it over (ms). */
  readonly lockDuration?: number;
  readonly stalledInterval?: number;
  /** How often to re-arm dirty keys whose job is gone (ms). Default 2000. */
  readonly sweepMs?: number;
}

export interface RunningWorker {
  readonly worker: Worker;
  readonly port: number | undefined;
  /** Stops taking jobs, lets running ones finish (or hands them back), then closes. */
  close(): Promise<void>;
}

/**
 * Runs the retry worker: each job re-reads its row on the authoritative side and mirrors it
 * through the same core path as the app. Any number of workers may share one Redis; a job is
 * held by one worker at a time, and the jobs of a killed worker are taken over once their lock
 * expires.
 *
 * @example
 * const running = await startWorker({ engine, queue, concurrency: 8, port: 9464 })
 * process.on('SIGTERM', () => running.close())
 */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const { engine, queue } = options;
  const worker = queue.createWorker((job) => engine.processRetry(job), options.concurrency ?? 16, {
    ...(options.lockDuration === undefined ? {} : { lockDuration: options.lockDuration }),
    ...(options.stalledInterval === undefined ? {} : { stalledInterval: options.stalledInterval }),
  });
  const label = { migration: engine.migration.name };
  worker.on('completed', (job) => engine.metrics.retried.inc({ ...label, table: job.name, outcome: 'ok' }));
  worker.on('failed', (job) => {
    if (!job) return;
    engine.metrics.retried.inc({ ...label, table: job.name, outcome: 'failed' });
    if (job.attemptsMade >= (job.opts.attempts ?? 1)) engine.metrics.deadLettered.inc({ ...label, table: job.name });
  });
  const sweep = setInterval(() => void queue.sweep().catch(() => {}), options.sweepMs ?? 2000);
  sweep.unref();
  let server: Server | undefined;
  if (options.port !== undefined) {
    server = createServer(async (req, res) => {
      if (req.url === '/healthz') {
        const ok = worker.isRunning() && queue.redis.status === 'ready';
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok, redis: queue.redis.status, queue: queue.name }));
      } else if (req.url === '/metrics') {
        await engine.queueState().catch(() => undefined);
        res.writeHead(200, { 'content-type': engine.metrics.registry.contentType });
        res.end(await engine.metrics.registry.metrics());
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server?.listen(options.port, '127.0.0.1', () => r()));
  }
  let closing: Promise<void> | undefined;
  return {
    worker,
    port: server ? (server.address() as AddressInfo).port : undefined,
    close() {
      closing ??= (async () => {
        clearInterval(sweep);
        // A connection caught mid-reconnect cannot QUIT: running jobs are then handed back by
        // their lock expiring, as after a crash.
        await worker.close().catch(() => worker.disconnect().catch(() => {}));
        // Re-checks started by finished jobs run in this process: let them land.
        await engine.settle();
        await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      })();
      return closing;
    },
  };
}
