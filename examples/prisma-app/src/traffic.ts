/**
 * Traffic for the items service (the Prisma and the TypeORM example serve the same routes):
 * N virtual users, each issuing one request at a time from a random mix of the routes, for a
 * duration. It only talks to 127.0.0.1 and is bounded in users, requests and time. The same
 * shape as examples/knex-app/src/traffic.ts, whose routes (accounts, transfers) differ.
 *
 * Every virtual user owns the items it creates (so its reads never miss and it alone deletes
 * them) and also reads, renames and restocks a small set of shared "history" items — hot keys
 * that several users write at the same time.
 */

export interface TrafficOptions {
  /** The app, e.g. `http://127.0.0.1:3000`. Only 127.0.0.1 is accepted. */
  readonly baseUrl: string;
  /** Concurrent virtual users (1–64). Default 8. */
  readonly users?: number;
  /** Stop after this long (at most 10 minutes). Default 10 s; `stop()` ends it earlier. */
  readonly durationMs?: number;
  /** Ids of existing items nobody deletes (the seeded history); the first few are the hot set. */
  readonly historyIds?: readonly number[];
  /** Per-request timeout. Default 10 s. */
  readonly timeoutMs?: number;
  /** Mean pause of a user between two requests (random, 0 to twice this). Default 0: back to back. */
  readonly thinkMs?: number;
}

export interface TrafficReport {
  /** Requests answered with a 2xx status. */
  readonly served: number;
  /** Requests answered with another status, or that failed on the network. */
  readonly failed: number;
  /** Failures by route and status (`PATCH /items/:id 500`, `POST /restock network`). */
  readonly failures: Readonly<Record<string, number>>;
  /** Requests per route. */
  readonly byRoute: Readonly<Record<string, number>>;
  readonly elapsedMs: number;
}

export interface Traffic {
  readonly done: Promise<TrafficReport>;
  /** Ends the run: each user finishes its request in flight, then the report is returned. */
  stop(): Promise<TrafficReport>;
  progress(): { served: number; failed: number };
}

const MAX_USERS = 64;
const MAX_DURATION_MS = 10 * 60_000;
const HOT_KEYS = 20;
const NAMES = ['anvil', 'bolt', 'crate', 'dowel', 'easel', 'flange', 'gasket', 'hinge', 'joist', 'knob'];
const TAGS = ['new', 'sale', 'bulk', 'fragile', 'gift'];

/** Starts the traffic at once; see `Traffic`. */
export function startTraffic(options: TrafficOptions): Traffic {
  const base = new URL(options.baseUrl);
  if (base.protocol !== 'http:' || base.hostname !== '127.0.0.1') {
    throw new Error('traffic only goes to http://127.0.0.1');
  }
  const users = options.users ?? 8;
  const durationMs = options.durationMs ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const thinkMs = options.thinkMs ?? 0;
  if (!Number.isInteger(users) || users < 1 || users > MAX_USERS) throw new Error(`users must be 1–${MAX_USERS}`);
  if (!(durationMs > 0 && durationMs <= MAX_DURATION_MS)) throw new Error(`durationMs must be 1–${MAX_DURATION_MS}`);
  if (!(thinkMs >= 0 && thinkMs <= 10_000)) throw new Error('thinkMs must be 0–10000');
  const history = [...(options.historyIds ?? [])];
  const hot = history.slice(0, HOT_KEYS);

  const started = Date.now();
  const until = started + durationMs;
  let served = 0;
  let failed = 0;
  let stopped = false;
  const failures: Record<string, number> = {};
  const byRoute: Record<string, number> = {};

  async function request(
    user: string,
    method: string,
    path: string,
    route: string,
    body?: unknown,
  ): Promise<{ ok: boolean; json: unknown }> {
    byRoute[`${method} ${route}`] = (byRoute[`${method} ${route}`] ?? 0) + 1;
    try {
      const res = await fetch(new URL(path, base), {
        method,
        headers: { 'x-user-id': user, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (res.status >= 200 && res.status < 300) {
        served++;
        const json = /json/.test(res.headers.get('content-type') ?? '') && text ? JSON.parse(text) : undefined;
        return { ok: true, json };
      }
      fail(`${method} ${route} ${res.status}`);
    } catch {
      fail(`${method} ${route} network`);
    }
    return { ok: false, json: undefined };
  }

  function fail(what: string): void {
    failed++;
    failures[what] = (failures[what] ?? 0) + 1;
  }

  async function virtualUser(n: number): Promise<void> {
    const user = `vu-${n}`;
    const own: number[] = [];
    const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];
    while (!stopped && Date.now() < until) {
      if (thinkMs > 0) await new Promise((r) => setTimeout(r, Math.random() * 2 * thinkMs));
      if (stopped) break;
      const r = Math.random();
      const mine = pick(own);
      const any = Math.random() < 0.5 && hot.length ? pick(hot) : mine;
      if (own.length < 3 || r < 0.15) {
        const res = await request(user, 'POST', '/items', '/items', {
          name: `${pick(NAMES)}-${user}`,
          qty: Math.floor(Math.random() * 100),
          price: (1 + Math.random() * 500).toFixed(2),
        });
        if (res.ok) own.push(Number((res.json as { id: number }).id));
      } else if (r < 0.35 && mine !== undefined) {
        await request(user, 'GET', `/items/${mine}`, '/items/:id');
      } else if (r < 0.45 && history.length) {
        await request(user, 'GET', `/items/${pick(history)}`, '/items/:id');
      } else if (r < 0.6 && any !== undefined) {
        const patch = Math.random() < 0.5 ? { name: pick(NAMES) } : { qty: Math.floor(Math.random() * 1_000) };
        await request(user, 'PATCH', `/items/${any}`, '/items/:id', patch);
      } else if (r < 0.85 && any !== undefined) {
        // The transaction route: both tables, a composite key, and hot rows shared by every user.
        await request(user, 'POST', '/restock', '/restock', {
          id: any,
          by: 1 + Math.floor(Math.random() * 10),
          tag: pick(TAGS),
        });
      } else if (r < 0.95 && mine !== undefined && own.length > 3) {
        const res = await request(user, 'DELETE', `/items/${mine}`, '/items/:id');
        if (res.ok) own.splice(own.indexOf(mine), 1);
      } else {
        await request(user, 'GET', '/metrics', '/metrics');
      }
    }
  }

  const report = (): TrafficReport => ({
    served,
    failed,
    failures: { ...failures },
    byRoute: { ...byRoute },
    elapsedMs: Date.now() - started,
  });
  const done = Promise.all(Array.from({ length: users }, (_, i) => virtualUser(i + 1))).then(report);
  return {
    done,
    stop() {
      stopped = true;
      return done;
    },
    progress: () => ({ served, failed }),
  };
}
