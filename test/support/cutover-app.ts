// One app instance of the cutover test: writes continuously on overlapping keys through the
// Knex wrapper, takes part in cutovers, and on SIGTERM prints a JSON summary.
import { BullMqRetryQueue, CutoverParticipant } from '@midflight/bullmq';
import { defineMigration, StaticFlags, silentLogger, startMigration } from '@midflight/core';
import { midflight } from '@midflight/knex';
import knex from 'knex';
import { config } from './servers.js';

const [prefix, srcDb, tgtDb, seedArg] = process.argv.slice(2) as [string, string, string, string];
const seed = Number(seedArg);
const connection = { host: '127.0.0.1', port: 6379 };
const migration = defineMigration({
  name: 'cut',
  tables: { acct: {} },
  mirror: { deadlineMs: 100 },
  retry: { attempts: 100, backoffMs: 20, maxBackoffMs: 200 },
});
const source = knex(config('pg', srcDb));
const target = knex(config('mariadb', tgtDb));
const queue = new BullMqRetryQueue(migration, {
  connection,
  prefix,
  spool: { path: `/tmp/mf-cut-${prefix}-${seed}/spool.jsonl` },
});
const engine = await startMigration(migration, {
  source,
  target,
  flags: new StaticFlags({ cut: { stage: 'live', rollout: 50 } }),
  retryQueue: queue,
  logger: silentLogger,
});
const participant = new CutoverParticipant(engine, { connection, prefix, heartbeatMs: 200 });
await participant.start();
const db = midflight(source, engine);

let state = seed * 7919 + 11;
const rand = (n: number) => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return state % n;
};
const latencies: number[] = [];
let failed = 0;
const errors: string[] = [];
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});
process.stdout.write(`ready ${participant.instanceId}\n`);
for (let i = 0; !stopping; i++) {
  const id = rand(20) + 1;
  const started = performance.now();
  try {
    const r = rand(10);
    if (r < 5)
      await db('acct')
        .insert({ id, v: i, note: `p${seed}` })
        .onConflict('id')
        .merge();
    else if (r < 8)
      await db('acct')
        .where({ id })
        .update({ v: i, note: `u${seed}` });
    else await db('acct').where({ id }).del();
  } catch (e) {
    failed++;
    if (errors.length < 5) errors.push(String((e as Error).message).slice(0, 200));
  }
  latencies.push(performance.now() - started);
  await new Promise((r) => setTimeout(r, 2));
}
await engine.settle();
await participant.stop();
latencies.sort((a, b) => a - b);
const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0;
process.stdout.write(
  `${JSON.stringify({ writes: latencies.length, failed, errors, maxMs: latencies[latencies.length - 1] ?? 0, p99Ms: p99, maxGateWaitMs: engine.gate.maxWaitMs, authority: engine.authority, stage: engine.stage('acct') })}\n`,
);
await queue.close();
await engine.close();
await source.destroy();
await target.destroy();
process.exit(0);
