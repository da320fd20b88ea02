/**
 * The HTTP plumbing of the items service, shared by the Prisma and the TypeORM example (their
 * routes are the same; only the data access differs): a `node:http` server on 127.0.0.1 that
 * runs every request inside `withContext({ userId })` from the `x-user-id` header, JSON in and
 * out, and redacted error logging (no row value ever reaches a log).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Engine, safeReason, withContext } from '@midflight/core';

export interface RunningApp {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a route handler gets: the parsed request. */
export interface Request {
  readonly method: string;
  readonly path: string;
  /** The id of `/items/:id`, when the path is one. */
  readonly itemId: number | undefined;
  body(): Promise<Record<string, unknown>>;
}

/** A route's answer: status and JSON body (none for 204). */
export type Reply = readonly [status: number, body?: unknown];

const MAX_BODY = 16 * 1024;

/**
 * Starts the service: `handle` answers the item routes, GET /metrics is served from the
 * engine's registry. 0 (default) picks a free port.
 */
export async function serve(
  handle: (req: Request) => Promise<Reply | undefined>,
  options: { engine?: Engine; port?: number },
): Promise<RunningApp> {
  const { engine } = options;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    if (method === 'GET' && url.pathname === '/metrics' && engine) {
      const body = await engine.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': engine.metrics.registry.contentType });
      res.end(body);
      return;
    }
    const item = /^\/items\/(\d{1,10})$/.exec(url.pathname);
    const itemId = item ? Number(item[1]) : undefined;
    if (itemId !== undefined && itemId > 2 ** 31 - 1) throw new HttpError(404, 'no such item');
    const reply = await handle({ method, path: url.pathname, itemId, body: () => readJson(req) });
    if (!reply) throw new HttpError(404, 'not found');
    send(res, reply[0], reply[1]);
  }

  const server = createServer((req, res) => {
    const header = req.headers['x-user-id'];
    const userId = typeof header === 'string' && /^[\w.@-]{1,64}$/.test(header) ? header : undefined;
    withContext({ userId }, () => route(req, res)).catch((e: unknown) => {
      if (e instanceof HttpError) return send(res, e.status, { error: e.message });
      // Reasons are redacted: database errors quote values, and no row value goes to a log.
      process.stderr.write(
        `${JSON.stringify({ level: 'error', event: 'request_failed', method: req.method, path: req.url, reason: safeReason(e) })}\n`,
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

// Validation of the request fields (the columns of `items` / `item_tags`).

export function text(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw new HttpError(400, `${field} must be a string of 1–${max} characters`);
  }
  return v;
}

export function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new HttpError(400, `${field} must be an integer in ${min}–${max}`);
  }
  return v;
}

/** A price with at most two decimals, as a string (decimal column, no float drift), or null. */
export function price(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const s = typeof v === 'number' ? v.toFixed(2) : v;
  if (typeof s !== 'string' || !/^\d{1,8}(\.\d{1,2})?$/.test(s)) {
    throw new HttpError(400, 'price must be a non-negative amount below 10^8');
  }
  return s;
}

/** The fields of a PATCH /items/:id (at least one). */
export function itemPatch(body: Record<string, unknown>): { name?: string; qty?: number; active?: boolean } {
  const patch: { name?: string; qty?: number; active?: boolean } = {};
  if (body.name !== undefined) patch.name = text(body.name, 'name', 40);
  if (body.qty !== undefined) patch.qty = int(body.qty, 'qty', 0, 1_000_000_000);
  if (body.active !== undefined) {
    if (typeof body.active !== 'boolean') throw new HttpError(400, 'active must be a boolean');
    patch.active = body.active;
  }
  if (Object.keys(patch).length === 0) throw new HttpError(400, 'nothing to change (name, qty, active)');
  return patch;
}
