// A retry worker in its own OS process, for the kill and scale-out tests.
// Args: queue-prefix source-db target-db redis-port log-file
import { appendFileSync } from 'node:fs';
import { BullMqRetryQueue, startWorker } from '@midflight/bullmq';
import { defineMigration, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import knex from 'knex';
import { config } from './servers.js';

const [prefix, srcDb, tgtDb, redisPort, logFile] = process.argv.slice(2) as [string, string, string, string, string];
const migration = defineMigration({
  name: 'bq',
  tables: { items: {} },
  retry: { attempts: 20, backoffMs: 50, maxBackoffMs: 500 },
});
const source = knex(config('pg', srcDb));
const target = knex(config('mariadb', tgtDb));
const queue = new BullMqRetryQueue(migration, { connection: { host: '127.0.0.1', port: Number(redisPort) }, prefix });
const engine = await startMigration(migration, {
  source,
  target,
  flags: new StaticFlags({ bq: 'dualwrite' }),
  retryQueue: queue,
  logger: silentLogger,
});
const original = engine.processRetry.bind(engine);
engine.processRetry = async (job) => {
  const start = performance.timeOrigin + performance.now();
  await original(job);
  appendFileSync(
    logFile,
    `${process.pid} ${queue.jobId(job.table, job.key)} ${start} ${performance.timeOrigin + performance.now()}\n`,
  );
};
const running = await startWorker({
  engine,
  queue,
  concurrency: 8,
  port: 0,
  lockDuration: 2000,
  stalledInterval: 1000,
});
process.stdout.write(`ready ${running.port}\n`);
const stop = async () => {
  await running.close();
  await queue.close();
  await engine.close();
  await source.destroy();
  await target.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
