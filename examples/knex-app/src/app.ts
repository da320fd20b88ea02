/**
 * A small accounts service on Knex, the way an app looks once Midflight is installed: it talks
 * to `db` — the wrapped Knex — exactly as it talked to plain Knex before. Nothing here knows
 * which stage the migration is in.
 *
 * Routes: POST /accounts, GET/PATCH/DELETE /accounts/:id, POST /transfer, GET /metrics.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defineMigration, type Engine, safeReason, withContext } from '@midflight/core';
import type { Knex } from 'knex';

/** The migration this app runs: both tables, keyed by their primary keys. */
export const migration = defineMigration({
  name: 'accounts-demo',
  tables: {
    accounts: { versionColumn: 'updated_at' },
    transfers: {},
  },
  mirror: { mode: 'await', deadlineMs: 100 },
  retry: { attempts: 10, backoffMs: 50, maxBackoffMs: 2_000 },
});

/** The tables the demo owns. Drops and recreates them: point it at scratch databases only. */
export const TABLES = ['accounts', 'transfers'] as const;

/** Creates the app's schema (the same on both sides: the target is a new database for the same app). */
export async function createSchema(db: Knex): Promise<void> {
  await db.schema.dropTableIfExists('transfers');
  await db.schema.dropTableIfExists('accounts');
  await db.schema.createTable('accounts', (t) => {
    t.increments('id').primary();
    t.string('email', 120).notNullable().unique();
    t.string('name', 80).notNullable();
    t.decimal('balance', 14, 2).notNullable().defaultTo(0);
    t.datetime('updated_at', { precision: 3 }).notNullable();
  });
  await db.schema.createTable('transfers', (t) => {
    t.increments('id').primary();
    // No foreign keys: mirrors of different tables are not ordered against each other.
    t.integer('from_id').notNullable();
    t.integer('to_id').notNullable();
    t.decimal('amount', 14, 2).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable();
  });
}

export interface AppOptions {
  /** The app's Knex with Midflight installed: `midflight(sourceKnex, engine)`. */
  readonly db: Knex;
  /** Serves GET /metrics from the engine's registry when given. */
  readonly engine?: Engine;
  /** 0 (default) picks a free port. The app listens on 127.0.0.1 only. */
  readonly port?: number;
}

export interface RunningApp {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_BODY = 16 * 1024;
const ACCOUNT_COLUMNS = ['id', 'email', 'name', 'balance', 'updated_at'] as const;

/** Starts the HTTP service. */
export async function startApp(options: AppOptions): Promise<RunningApp> {
  const { db, engine } = options;
  const mysql = /mysql/i.test(String(db.client.config.client));

  /** Inserts one row and returns its generated id, on PostgreSQL (RETURNING) and MySQL (insert id) alike. */
  async function insertId(q: Knex.QueryBuilder): Promise<number> {
    const [r] = (await (mysql ? q : q.returning('id'))) as unknown[];
    return Number(typeof r === 'object' && r !== null ? (r as { id: unknown }).id : r);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const accountPath = /^\/accounts\/(\d{1,10})$/.exec(path);

    if (method === 'POST' && path === '/accounts') {
      const body = await readJson(req);
      const email = text(body.email, 'email', 120);
      const name = text(body.name, 'name', 80);
      const balance = body.balance === undefined ? '0.00' : money(body.balance, 'balance', true);
      const id = await insertId(db('accounts').insert({ email, name, balance, updated_at: new Date() }));
      return send(res, 201, { id });
    }
    if (accountPath) {
      const id = Number(accountPath[1]);
      if (method === 'GET') {
        const row = await db('accounts')
          .where({ id })
          .first(...ACCOUNT_COLUMNS);
        if (!row) throw new HttpError(404, 'no such account');
        return send(res, 200, row);
      }
      if (method === 'PATCH') {
        const body = await readJson(req);
        const patch: Record<string, unknown> = {};
        if (body.name !== undefined) patch.name = text(body.name, 'name', 80);
        if (body.email !== undefined) patch.email = text(body.email, 'email', 120);
        if (Object.keys(patch).length === 0) throw new HttpError(400, 'nothing to change (name, email)');
        const n = await db('accounts')
          .where({ id })
          .update({ ...patch, updated_at: new Date() });
        if (Number(n) === 0) throw new HttpError(404, 'no such account');
        return send(res, 200, { id });
      }
      if (method === 'DELETE') {
        const n = await db('accounts').where({ id }).delete();
        if (Number(n) === 0) throw new HttpError(404, 'no such account');
        return send(res, 204);
      }
    }
    if (method === 'POST' && path === '/transfer') {
      const body = await readJson(req);
      const from = id(body.from, 'from');
      const to = id(body.to, 'to');
      const amount = money(body.amount, 'amount', false);
      if (from === to) throw new HttpError(400, 'from and to must differ');
      const transferId = await db.transaction(async (trx) => {
        // Lock both rows in id order, so that two opposite transfers cannot deadlock.
        const rows = (await trx('accounts')
          .whereIn('id', [from, to])
          .orderBy('id')
          .forUpdate()
          .select('id', 'balance')) as Array<{ id: number; balance: string | number }>;
        const source = rows.find((r) => Number(r.id) === from);
        if (!source || rows.length !== 2) throw new HttpError(404, 'no such account');
        if (cents(source.balance) < cents(amount)) throw new HttpError(409, 'insufficient funds');
        const now = new Date();
        await trx('accounts').where({ id: from }).update({ updated_at: now }).decrement('balance', Number(amount));
        await trx('accounts').where({ id: to }).update({ updated_at: now }).increment('balance', Number(amount));
        return insertId(trx('transfers').insert({ from_id: from, to_id: to, amount, created_at: now }));
      });
      return send(res, 200, { id: transferId });
    }
    if (method === 'GET' && path === '/metrics' && engine) {
      const body = await engine.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': engine.metrics.registry.contentType });
      res.end(body);
      return;
    }
    throw new HttpError(404, 'not found');
  }

  const server = createServer((req, res) => {
    const header = req.headers['x-user-id'];
    const userId = typeof header === 'string' && /^[\w.@-]{1,64}$/.test(header) ? header : undefined;
    withContext({ userId }, () => handle(req, res)).catch((e: unknown) => {
      if (e instanceof HttpError) return send(res, e.status, { error: e.message });
      // Reasons are redacted: database errors quote values, and no row value goes to a log.
      process.stderr.write(
        `${JSON.stringify({ level: 'error', event: 'request_failed', method: req.method, reason: safeReason(e) })}\n`,
      );
      send(res, 500, { error: 'internal error' });
    });
  });
  // Clients that keep connections alive must not hold the server open at shutdown.
  server.keepAliveTimeout = 2_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeIdleConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const json = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'body too large');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new HttpError(400, 'body must be an object');
  return parsed as Record<string, unknown>;
}

function text(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw new HttpError(400, `${field} must be a string of 1–${max} characters`);
  }
  return v;
}

function id(v: unknown, field: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 31 - 1) throw new HttpError(400, `${field} must be an account id`);
  return n;
}

/** A non-negative amount with at most two decimals, as a string (decimal columns, no float drift). */
function money(v: unknown, field: string, zeroOk: boolean): string {
  const s = typeof v === 'number' ? v.toFixed(2) : v;
  if (typeof s !== 'string' || !/^\d{1,10}(\.\d{1,2})?$/.test(s) || (!zeroOk && cents(s) === 0)) {
    throw new HttpError(400, `${field} must be a ${zeroOk ? 'non-negative' : 'positive'} amount`);
  }
  return s;
}

function cents(v: string | number): number {
  return Math.round(Number(v) * 100);
}
