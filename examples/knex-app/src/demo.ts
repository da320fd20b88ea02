/**
 * The end-to-end demo: a live app migrated from one database to another under traffic.
 *
 *   1. schema on both sides, history rows in the source;
 *   2. the app (with Midflight installed) and the traffic start in stage `off`;
 *   3. the flags file moves the migration to `dualwrite`; every write is now mirrored;
 *   4. backfill copies the history while traffic keeps going;
 *   5. traffic stops, the mirrors drain, verify compares both sides row by row.
 *
 * Embedded PGlite on both sides by default; `SOURCE_URL` / `TARGET_URL` (postgres:// or
 * mysql://) point it at real servers. Prints counts and table names only — never row values.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  consoleLogger,
  type Engine,
  JsonFileFlags,
  type Key,
  type Logger,
  type Stage,
  safeReason,
  startMigration,
  type VerifyReport,
} from '@midflight/core';
import { midflight } from '@midflight/knex';
import knex, { type Knex } from 'knex';
import ClientPGLite from 'knex-pglite';
import { createSchema, migration, type RunningApp, startApp, TABLES } from './app.js';
import { startTraffic, type Traffic, type TrafficReport } from './traffic.js';

export interface DemoOptions {
  /** postgres://… or mysql://… ; unset: embedded PGlite. */
  readonly sourceUrl?: string | undefined;
  readonly targetUrl?: string | undefined;
  /** History rows seeded in the source before the app starts. Default 5,000. */
  readonly seedRows?: number;
  /** Concurrent virtual users. Default 8. */
  readonly users?: number;
  /**
   * Mean pause of each user between requests. Default 20 ms. Note that `engine.backfill()` ends
   * with `engine.drain()`, which waits for a moment with no mirror in flight: users hammering
   * back to back can hold that off for many seconds.
   */
  readonly thinkMs?: number;
  /** Traffic in stage `off` before the switch to `dualwrite`. Default 2 s. */
  readonly warmupMs?: number;
  /** Traffic after the backfill, before it stops. Default 3 s. */
  readonly afterMs?: number;
  /** Backfill chunk size. Default 250. */
  readonly chunkSize?: number;
  /**
   * Pause between backfill chunks. Default 50 ms: PGlite runs queries on the main thread, and
   * without a pause the backfill would hold the event loop and starve the app's requests.
   */
  readonly pauseMs?: number;
  /** Where the progress bar goes; `null` for none. Default stderr. */
  readonly progress?: NodeJS.WritableStream | null;
  /** Where the narration goes. Default stdout; `null` for none. */
  readonly out?: NodeJS.WritableStream | null;
  /** The engine's logger. Default: JSON lines on stderr at `MIDFLIGHT_LOG_LEVEL` (warn). */
  readonly logger?: Logger;
}

export interface TableReport {
  readonly table: string;
  readonly sourceRows: number;
  readonly targetRows: number;
  readonly missing: number;
  readonly extra: number;
  readonly different: number;
}

export interface DemoReport {
  readonly source: string;
  readonly target: string;
  readonly served: number;
  readonly failed: number;
  /** Failed requests by route and status. */
  readonly failures: Readonly<Record<string, number>>;
  readonly backfilled: number;
  /** Times the backfill stopped on an error and resumed from its checkpoint. */
  readonly backfillResumes: number;
  readonly tables: readonly TableReport[];
  /** missing + extra + different over all tables. */
  readonly differences: number;
  readonly deadLetters: number;
  readonly elapsedMs: number;
  /** No failed request and no difference. */
  readonly ok: boolean;
}

/** Runs the whole demo and returns its report (the script prints it and sets the exit code). */
export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const started = Date.now();
  const out = options.out === undefined ? process.stdout : options.out;
  const say = (line: string) => out?.write(`${line}\n`);
  const seedRows = options.seedRows ?? 5_000;
  const sourceSide = database(options.sourceUrl, 'source');
  const targetSide = database(options.targetUrl, 'target');
  const dir = await mkdtemp(join(tmpdir(), 'midflight-demo-'));
  const flagsPath = join(dir, 'flags.json');

  let engine: Engine | undefined;
  let app: RunningApp | undefined;
  let traffic: Traffic | undefined;
  const source = knex(sourceSide.config);
  const target = knex(targetSide.config);
  try {
    say(`source: ${sourceSide.label}`);
    say(`target: ${targetSide.label}`);

    await createSchema(source);
    await createSchema(target);
    const historyIds = await seed(source, seedRows);
    say(`seeded ${historyIds.length} accounts of history in the source`);

    await writeFlags(flagsPath, 'off');
    const flags = new JsonFileFlags(flagsPath, 100);
    engine = await startMigration(migration, { source, target, flags, logger: options.logger ?? consoleLogger() });
    const db = midflight(source, engine);
    app = await startApp({ db, engine });
    traffic = startTraffic({
      baseUrl: `http://127.0.0.1:${app.port}`,
      users: options.users ?? 8,
      durationMs: 5 * 60_000,
      thinkMs: options.thinkMs ?? 20,
      historyIds,
    });
    say(`app on 127.0.0.1:${app.port}, ${options.users ?? 8} virtual users, stage off`);
    await sleep(options.warmupMs ?? 2_000);

    await writeFlags(flagsPath, 'dualwrite');
    const live = engine;
    await waitFor(() => TABLES.every((t) => live.stage(t) === 'dualwrite'), 10_000, 'the flags file to take effect');
    say(`stage dualwrite (flags file) after ${seconds(Date.now() - started)}; ${progressText(traffic)}`);

    const totals = new Map<string, number>();
    for (const t of TABLES) totals.set(t, await engine.source.count(t));
    const bar = progressBar(options.progress === undefined ? process.stderr : options.progress);
    const backfillStart = Date.now();
    let backfilled = 0;
    let resumes = 0;
    for (const table of TABLES) {
      const r = await backfillTable(engine, table, {
        chunkSize: options.chunkSize ?? 250,
        pauseMs: options.pauseMs ?? 50,
        progress: (rows) => bar.update(table, rows, totals.get(table) ?? rows),
        resumed: (reason) => bar.note(`backfill of ${table} stopped (${reason}); resuming after the last chunk copied`),
      });
      backfilled += r.rows;
      resumes += r.resumes;
    }
    bar.end();
    say(`backfill copied ${backfilled} rows in ${seconds(Date.now() - backfillStart)}; ${progressText(traffic)}`);

    await sleep(options.afterMs ?? 3_000);
    const load: TrafficReport = await traffic.stop();
    traffic = undefined;
    await engine.drain();
    const verify: VerifyReport = await engine.verify();
    const { deadLetters } = await engine.queueState();
    const tables = verify.tables.map((t) => ({
      table: t.table,
      sourceRows: t.sourceRows,
      targetRows: t.targetRows,
      missing: t.missing.length,
      extra: t.extra.length,
      different: t.different.length,
    }));
    return {
      source: sourceSide.label,
      target: targetSide.label,
      served: load.served,
      failed: load.failed,
      failures: load.failures,
      backfilled,
      backfillResumes: resumes,
      tables,
      differences: verify.differences,
      deadLetters: deadLetters.length,
      elapsedMs: Date.now() - started,
      ok: load.failed === 0 && verify.differences === 0,
    };
  } finally {
    await traffic?.stop().catch(() => undefined);
    await app?.close().catch(() => undefined);
    await engine?.close().catch(() => undefined);
    await source.destroy().catch(() => undefined);
    await target.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

/** The report as text: counts and table names only. */
export function formatReport(r: DemoReport): string {
  const width = Math.max(...r.tables.map((t) => t.table.length), 5);
  const sum = (k: 'missing' | 'extra' | 'different') => r.tables.reduce((n, t) => n + t[k], 0);
  const lines = [
    '',
    'Midflight demo report',
    `  requests served     ${r.served}`,
    `  failed requests     ${r.failed}`,
    ...Object.entries(r.failures).map(([what, n]) => `    ${what}: ${n}`),
    `  rows backfilled     ${r.backfilled}${r.backfillResumes ? ` (resumed ${r.backfillResumes}× from its checkpoint)` : ''}`,
    '  rows per table      source / target',
    ...r.tables.map((t) => `    ${t.table.padEnd(width)}  ${t.sourceRows} / ${t.targetRows}`),
    `  differences         ${r.differences} (missing ${sum('missing')}, extra ${sum('extra')}, different ${sum('different')})`,
    `  dead letters        ${r.deadLetters}`,
    `  took                ${seconds(r.elapsedMs)}`,
    `  result              ${r.ok ? 'OK: no failed request, no difference' : 'FAILED'}`,
  ];
  return lines.join('\n');
}

interface Side {
  readonly config: Knex.Config;
  /** What is printed: the engine and where, never credentials. */
  readonly label: string;
}

/** A Knex config from a URL (postgres://, postgresql://, mysql://, mariadb://), or embedded PGlite. */
export function database(url: string | undefined, name: string): Side {
  if (url === undefined || url === '') {
    return { config: { client: ClientPGLite, dialect: 'postgres', connection: {} }, label: 'PGlite (embedded)' };
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${name} URL does not parse (expected postgres://… or mysql://…)`);
  }
  const where = `${u.hostname}:${u.port || '(default port)'}${u.pathname}`;
  if (u.protocol === 'postgres:' || u.protocol === 'postgresql:') {
    return {
      config: { client: 'pg', connection: { connectionString: url }, pool: { min: 0, max: 10 } },
      label: `PostgreSQL ${where}`,
    };
  }
  if (u.protocol === 'mysql:' || u.protocol === 'mariadb:') {
    const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
    if (!database) throw new Error(`${name} URL must name a database`);
    return {
      config: {
        client: 'mysql2',
        connection: {
          host: u.hostname,
          port: Number(u.port || 3306),
          user: decodeURIComponent(u.username),
          password: decodeURIComponent(u.password),
          database,
          timezone: 'Z',
          supportBigNumbers: true,
        },
        pool: { min: 0, max: 10 },
      },
      label: `MySQL/MariaDB ${where}`,
    };
  }
  throw new Error(`${name} URL: unsupported scheme "${u.protocol}" (postgres:// or mysql://)`);
}

/** History: accounts that existed before the migration, written with plain Knex. Returns their ids. */
async function seed(db: Knex, n: number): Promise<number[]> {
  const rows = Array.from({ length: n }, (_, i) => ({
    email: `history-${i + 1}@example.test`,
    name: `Customer ${i + 1}`,
    balance: (1_000 + (i % 97) * 13.37).toFixed(2),
    updated_at: new Date(Date.now() - (n - i) * 60_000),
  }));
  await db.batchInsert('accounts', rows, 500);
  const transfers = Array.from({ length: Math.floor(n / 10) }, (_, i) => ({
    from_id: 1 + (i % n),
    to_id: 1 + ((i * 7 + 3) % n),
    amount: '1.00',
    created_at: new Date(Date.now() - (n - i) * 60_000),
  }));
  if (transfers.length) await db.batchInsert('transfers', transfers, 500);
  return (await db('accounts').orderBy('id').pluck('id')).map(Number);
}

/**
 * Backfills one table, keeping its checkpoint (`lastKey`) in memory: when the backfill stops on
 * an error — the source read failing, a connection dropped — it resumes after the last chunk
 * that landed instead of starting over. A real deployment stores the checkpoint somewhere.
 */
async function backfillTable(
  engine: Engine,
  table: string,
  options: {
    chunkSize: number;
    pauseMs: number;
    progress: (rows: number) => void;
    resumed: (reason: string) => void;
  },
): Promise<{ rows: number; resumes: number }> {
  const maxResumes = 10;
  let after: Key | undefined;
  let copied = 0;
  for (let resumes = 0; ; resumes++) {
    let run = 0;
    try {
      await engine.backfill({
        tables: [table],
        chunkSize: options.chunkSize,
        pauseMs: options.pauseMs,
        ...(after === undefined ? {} : { after }),
        onChunk: (p) => {
          run = p.rows;
          after = p.lastKey;
          options.progress(copied + run);
        },
      });
      return { rows: copied + run, resumes };
    } catch (e) {
      copied += run;
      if (resumes >= maxResumes) throw e;
      options.resumed(safeReason(e));
      await sleep(50 * (resumes + 1));
    }
  }
}

/** The flags file the engine watches; replaced atomically so a reader never sees half of it. */
async function writeFlags(path: string, stage: Stage): Promise<void> {
  const doc = { migrations: { [migration.name]: { stage, rollout: 0 } } };
  await writeFile(`${path}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  await rename(`${path}.tmp`, path);
}

/** A text progress bar: redrawn in place on a terminal, one line per tenth otherwise. */
function progressBar(stream: NodeJS.WritableStream | null) {
  const tty = (stream as { isTTY?: boolean } | null)?.isTTY === true;
  let table = '';
  let step = -1;
  return {
    update(t: string, done: number, total: number) {
      if (!stream) return;
      // Rows written during the backfill can make it copy more than were counted at its start.
      total = Math.max(total, done);
      const share = total > 0 ? done / total : 1;
      const width = 30;
      const filled = Math.round(share * width);
      const pct = String(Math.floor(share * 100)).padStart(3);
      const line = `backfill ${t.padEnd(10)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% ${done}/${total} rows`;
      if (t !== table) {
        if (tty && table) stream.write('\n');
        table = t;
        step = -1;
      }
      if (tty) stream.write(`\r${line}`);
      else if (Math.floor(share * 10) > step) {
        step = Math.floor(share * 10);
        stream.write(`${line}\n`);
      }
    },
    /** A line of its own, between bar updates. */
    note(line: string) {
      if (!stream) return;
      stream.write(tty ? `\n${line}\n` : `${line}\n`);
    },
    end() {
      if (stream && tty && table) stream.write('\n');
    },
  };
}

function progressText(traffic: Traffic): string {
  const p = traffic.progress();
  return `${p.served} requests served, ${p.failed} failed so far`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function main(): Promise<void> {
  const report = await runDemo({
    sourceUrl: process.env.SOURCE_URL,
    targetUrl: process.env.TARGET_URL,
  });
  process.stdout.write(`${formatReport(report)}\n`);
  process.exitCode = report.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    // Redacted: a driver's error message can quote the values it choked on.
    process.stderr.write(`demo failed: ${safeReason(e)}\n`);
    process.exitCode = 1;
  });
}
