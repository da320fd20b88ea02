/**
 * A traffic generator for the demo app: N virtual users, each issuing one request at a time
 * from a random mix of the app's routes, for a duration or a number of requests. It only talks
 * to 127.0.0.1 and is bounded in users, requests and time.
 *
 * Every virtual user owns the accounts it creates (it knows their balances, so its transfers
 * never overdraw and its reads never miss) and also reads, renames and pays into a small set
 * of shared "history" accounts — hot keys that several users write at the same time.
 */

export interface TrafficOptions {
  /** The app, e.g. `http://127.0.0.1:3000`. Only 127.0.0.1 is accepted. */
  readonly baseUrl: string;
  /** Concurrent virtual users (1–64). Default 8. */
  readonly users?: number;
  /** Stop after this long (at most 10 minutes). Default 10 s; `stop()` ends it earlier. */
  readonly durationMs?: number;
  /** Stop after this many requests in all (at most 1,000,000). */
  readonly maxRequests?: number;
  /** Ids of existing accounts nobody deletes (the seeded history); the first few are the hot set. */
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
  /** Failures by route and status (`PATCH /accounts/:id 500`, `POST /transfer network`). */
  readonly failures: Readonly<Record<string, number>>;
  /** Requests per route. */
  readonly byRoute: Readonly<Record<string, number>>;
  readonly elapsedMs: number;
}

export interface Traffic {
  /** Resolves when the duration or request budget is used up (or after `stop()`). */
  readonly done: Promise<TrafficReport>;
  /** Ends the run: each user finishes its request in flight, then the report is returned. */
  stop(): Promise<TrafficReport>;
  /** Counts so far. */
  progress(): { served: number; failed: number };
}

const MAX_USERS = 64;
const MAX_DURATION_MS = 10 * 60_000;
const MAX_REQUESTS = 1_000_000;
const HOT_KEYS = 20;
const NAMES = ['Ada', 'Grace', 'Linus', 'Barbara', 'Edsger', 'Margaret', 'Ken', 'Frances', 'Donald', 'Radia'];

/** Starts the traffic at once; see `Traffic`. */
export function startTraffic(options: TrafficOptions): Traffic {
  const base = new URL(options.baseUrl);
  if (base.protocol !== 'http:' || base.hostname !== '127.0.0.1') {
    throw new Error('traffic only goes to http://127.0.0.1');
  }
  const users = options.users ?? 8;
  const durationMs = options.durationMs ?? 10_000;
  const maxRequests = options.maxRequests ?? MAX_REQUESTS;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const thinkMs = options.thinkMs ?? 0;
  if (!Number.isInteger(users) || users < 1 || users > MAX_USERS) throw new Error(`users must be 1–${MAX_USERS}`);
  if (!(durationMs > 0 && durationMs <= MAX_DURATION_MS)) throw new Error(`durationMs must be 1–${MAX_DURATION_MS}`);
  if (!(thinkMs >= 0 && thinkMs <= 10_000)) throw new Error('thinkMs must be 0–10000');
  if (!Number.isInteger(maxRequests) || maxRequests < 1 || maxRequests > MAX_REQUESTS) {
    throw new Error(`maxRequests must be 1–${MAX_REQUESTS}`);
  }
  const history = [...(options.historyIds ?? [])];
  const hot = history.slice(0, HOT_KEYS);

  const started = Date.now();
  const until = started + durationMs;
  let issued = 0;
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

  function more(): boolean {
    if (stopped || Date.now() >= until || issued >= maxRequests) return false;
    issued++;
    return true;
  }

  async function virtualUser(n: number): Promise<void> {
    const user = `vu-${n}`;
    /** This user's accounts and their balances in cents (only this user takes money out of them). */
    const own = new Map<number, number>();
    let created = 0;
    const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];
    const ownIds = () => [...own.keys()];
    while (more()) {
      if (thinkMs > 0) await new Promise((r) => setTimeout(r, Math.random() * 2 * thinkMs));
      if (stopped) break;
      const r = Math.random();
      const mine = pick(ownIds());
      if (own.size < 3 || r < 0.15) {
        const balance = 50 + Math.floor(Math.random() * 500);
        const email = `${user}.${++created}.${started.toString(36)}@example.test`;
        const res = await request(user, 'POST', '/accounts', '/accounts', {
          email,
          name: pick(NAMES),
          balance: balance.toFixed(2),
        });
        if (res.ok) own.set(Number((res.json as { id: number }).id), balance * 100);
      } else if (r < 0.35 && mine !== undefined) {
        await request(user, 'GET', `/accounts/${mine}`, '/accounts/:id');
      } else if (r < 0.45 && history.length) {
        await request(user, 'GET', `/accounts/${pick(history)}`, '/accounts/:id');
      } else if (r < 0.55 && mine !== undefined) {
        await request(user, 'PATCH', `/accounts/${mine}`, '/accounts/:id', { name: pick(NAMES) });
      } else if (r < 0.65 && hot.length) {
        await request(user, 'PATCH', `/accounts/${pick(hot)}`, '/accounts/:id', { name: pick(NAMES) });
      } else if (r < 0.88 && mine !== undefined) {
        const balance = own.get(mine) ?? 0;
        const amount = Math.min(balance, 100 + Math.floor(Math.random() * 2_000));
        const to = Math.random() < 0.5 && hot.length ? pick(hot) : pick(ownIds().filter((x) => x !== mine));
        if (amount <= 0 || to === undefined) {
          await request(user, 'GET', `/accounts/${mine}`, '/accounts/:id');
          continue;
        }
        const res = await request(user, 'POST', '/transfer', '/transfer', {
          from: mine,
          to,
          amount: (amount / 100).toFixed(2),
        });
        if (res.ok) {
          own.set(mine, balance - amount);
          if (own.has(to)) own.set(to, (own.get(to) ?? 0) + amount);
        }
      } else if (r < 0.95 && mine !== undefined && own.size > 3) {
        const res = await request(user, 'DELETE', `/accounts/${mine}`, '/accounts/:id');
        if (res.ok) own.delete(mine);
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
