import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import {
  bucket,
  currentContext,
  type FlagState,
  type Logger,
  routeRead,
  type Side,
  withContext,
} from '@midflight/core';
import { UnleashAdmin, UnleashFlags, type UnleashFlagsOptions } from '@midflight/unleash';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/servers.js';
import { startUnleashServer, type UnleashServer } from './support/unleash-server.js';

// A real Unleash (unleash-server 8, its own PostgreSQL database), flags changed through its
// admin API and read by unleash-client, as in production, with a short refresh interval.
const REFRESH_MS = 200;

let server: UnleashServer;
let admin: UnleashAdmin;
let dir: string;
const providers: UnleashFlags[] = [];
const logged: Array<{ level: string; event: string; fields: Record<string, unknown> | undefined }> = [];

const logger: Logger = {
  debug: (event, fields) => logged.push({ level: 'debug', event, fields }),
  info: (event, fields) => logged.push({ level: 'info', event, fields }),
  warn: (event, fields) => logged.push({ level: 'warn', event, fields }),
  error: (event, fields) => logged.push({ level: 'error', event, fields }),
};

function provider(overrides: Partial<UnleashFlagsOptions> = {}): UnleashFlags {
  const flags = new UnleashFlags({
    url: server.url,
    appName: 'mf-unleash-test',
    customHeaders: { Authorization: server.clientToken },
    refreshInterval: REFRESH_MS,
    backupPath: dir,
    startTimeoutMs: 3_000,
    disableMetrics: true,
    logger,
    ...overrides,
  });
  providers.push(flags);
  return flags;
}

/** Waits until the provider says `expected`, and returns how long that took. */
async function seen(flags: UnleashFlags, migration: string, expected: FlagState, timeoutMs = 5_000): Promise<number> {
  const t0 = Date.now();
  await waitFor(
    () => isDeepStrictEqual(flags.get(migration), expected),
    timeoutMs,
    `${migration} = ${JSON.stringify(expected)} (has ${JSON.stringify(flags.get(migration))})`,
  );
  return Date.now() - t0;
}

/** Which side each user's read goes to, through the core router as the engine calls it. */
function sides(state: FlagState | undefined, migration: string, users: readonly string[]): Side[] {
  return users.map((userId) =>
    withContext(
      { userId },
      () =>
        routeRead({
          stage: state?.stage ?? 'off',
          rollout: state?.rollout ?? 0,
          userId: currentContext().userId,
          pendingWrite: false,
          routable: true,
          sampleRate: 0,
          salt: migration,
        }).side,
    ),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mf-unleash-'));
  const t0 = Date.now();
  server = await startUnleashServer();
  console.log(`unleash-server up (fresh database, migrated) in ${Date.now() - t0} ms`);
  admin = new UnleashAdmin({ url: server.url, token: server.adminToken, environment: 'development' });
});

afterAll(async () => {
  for (const p of providers) p.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('UnleashFlags on a real Unleash', () => {
  it('sees stage changes made through the admin API within the refresh interval', async () => {
    const m = 'orders-to-pg';
    const created = await admin.ensureFlag(m);
    expect(created).toMatchObject({
      flag: 'midflight.orders-to-pg',
      enabled: true,
      state: { stage: 'off', rollout: 0 },
    });
    // ensureFlag again changes nothing.
    await admin.setStage(m, 'dualwrite');
    expect((await admin.ensureFlag(m)).state).toEqual({ stage: 'dualwrite', rollout: 0 });

    const flags = provider();
    await flags.start();
    expect(flags.status()).toMatchObject({ ready: true, synchronized: true, reachable: true });
    expect(flags.get(m)).toEqual({ stage: 'dualwrite', rollout: 0 });

    const waits: number[] = [];
    await admin.setStage(m, 'shadow');
    waits.push(await seen(flags, m, { stage: 'shadow', rollout: 0 }));
    await admin.setStage(m, 'live', { orders: 'shadow' });
    waits.push(await seen(flags, m, { stage: 'live', rollout: 0, tables: { orders: 'shadow' } }));
    await admin.setStage(m, 'dualwrite', {});
    waits.push(await seen(flags, m, { stage: 'dualwrite', rollout: 0 }));
    await admin.write(m, { stage: 'shadow', rollout: 10, tables: { lines: 'dualwrite' } });
    waits.push(await seen(flags, m, { stage: 'shadow', rollout: 10, tables: { lines: 'dualwrite' } }));
    console.log(`stage changes seen after ${waits.join(', ')} ms (refresh interval ${REFRESH_MS} ms)`);
    // Unleash publishes a change to its client API within about a second; then one refresh.
    for (const w of waits) expect(w).toBeLessThan(2_500);
    expect(await admin.status(m)).toMatchObject({
      enabled: true,
      state: { stage: 'shadow', rollout: 10, tables: { lines: 'dualwrite' } },
    });
    // A flag that does not exist gives no state (the engine then uses the safe stage).
    expect(flags.get('no-such-migration')).toBeUndefined();
    expect(await admin.status('no-such-migration')).toBeUndefined();
  });

  it('a token Unleash refuses is logged as an error (never the token) and gives no state', async () => {
    const wrong = 'default:development.not-a-valid-secret-0042';
    const flags = provider({ customHeaders: { Authorization: wrong }, backupPath: mkdtempSync(join(dir, 'wrong-')) });
    await flags.start();
    await waitFor(() => logged.some((l) => l.event === 'unleash_unauthorized'), 5_000, 'unleash_unauthorized');
    expect(flags.get('orders-to-pg')).toBeUndefined();
    expect(JSON.stringify(logged)).not.toContain('not-a-valid-secret-0042');
  });

  it('a 30 % read rollout keeps the same users on the same side, and about 30 % on the target', async () => {
    const m = 'users-to-pg';
    await admin.ensureFlag(m, { stage: 'live', rollout: 0 });
    const a = provider({ instanceId: 'app-1' });
    const b = provider({ instanceId: 'app-2' }); // a second app instance
    await Promise.all([a.start(), b.start()]);
    await admin.setRollout(m, 30);
    await seen(a, m, { stage: 'live', rollout: 30 });
    await seen(b, m, { stage: 'live', rollout: 30 });

    const users = Array.from({ length: 2_000 }, (_, i) => `user-${i}`);
    const first = sides(a.get(m), m, users);
    const share = first.filter((s) => s === 'target').length / users.length;
    expect(share).toBeGreaterThan(0.26);
    expect(share).toBeLessThan(0.34);
    // Same users, same side: in the other instance, and again after later refreshes.
    expect(sides(b.get(m), m, users)).toEqual(first);
    await admin.setStage(m, 'live', { audit: 'shadow' }); // an unrelated change: a new fetch
    await seen(a, m, { stage: 'live', rollout: 30, tables: { audit: 'shadow' } });
    expect(sides(a.get(m), m, users)).toEqual(first);
    for (const [i, u] of users.entries()) expect(first[i] === 'target').toBe(bucket(m, u) < 30);

    // Raising the rollout only adds users to the target: nobody moves back.
    await admin.setRollout(m, 50);
    await seen(a, m, { stage: 'live', rollout: 50, tables: { audit: 'shadow' } });
    const wider = sides(a.get(m), m, users);
    for (const [i, side] of first.entries()) if (side === 'target') expect(wider[i]).toBe('target');
    expect(wider.filter((s) => s === 'target').length / users.length).toBeGreaterThan(0.45);
  });

  it('the kill switch takes every process and every table to off, and back', async () => {
    const m = 'invoices-to-pg';
    await admin.ensureFlag(m, { stage: 'live', rollout: 40, tables: { invoices: 'shadow' } });
    const apps = [provider({ instanceId: 'app-1' }), provider({ instanceId: 'app-2' })];
    await Promise.all(apps.map((p) => p.start()));
    // A new flag reaches Unleash's client API within about a second.
    for (const p of apps) await seen(p, m, { stage: 'live', rollout: 40, tables: { invoices: 'shadow' } });

    await admin.disable(m);
    const waits = await Promise.all(apps.map((p) => seen(p, m, { stage: 'off', rollout: 0 })));
    console.log(`kill switch seen after ${waits.join(', ')} ms`);
    expect(await admin.status(m)).toMatchObject({
      enabled: false,
      state: { stage: 'off', rollout: 0 },
      stored: { stage: 'live', rollout: 40, tables: { invoices: 'shadow' } },
    });
    // Everybody reads the source again.
    expect(new Set(sides(apps[0]!.get(m), m, ['u1', 'u2', 'u3', 'u4']))).toEqual(new Set(['source']));

    // The CLI re-enables through a stage write (one safe step from off), not straight back to
    // live: `midflight stage set` calls the provider's write, which goes through the admin API.
    const cli = provider({ admin: { url: server.url, token: server.adminToken, environment: 'development' } });
    await cli.write(m, { stage: 'dualwrite', rollout: 0 });
    for (const p of apps) await seen(p, m, { stage: 'dualwrite', rollout: 0 });
    expect((await admin.status(m))?.enabled).toBe(true);
  });

  it('keeps the last known state through an Unleash outage, and a restart during it comes up from the backup', async () => {
    const m = 'payments-to-pg';
    const expected: FlagState = { stage: 'shadow', rollout: 20, tables: { refunds: 'dualwrite' } };
    await admin.ensureFlag(m, expected);
    const app = provider();
    await app.start();
    await seen(app, m, expected);
    expect(readdirSync(dir).some((f) => f.startsWith('midflight-unleash-mf-unleash-test'))).toBe(true);

    await server.stop();
    await waitFor(() => app.status().reachable === false, 10_000, 'the provider to notice the outage');
    // Several refreshes fail; the state stays.
    await waitFor(() => Date.now() - (app.status().lastContactAt?.getTime() ?? 0) > 5 * REFRESH_MS, 5_000, 'refreshes');
    expect(app.get(m)).toEqual(expected);
    expect(logged.some((l) => l.event === 'unleash_unreachable')).toBe(true);

    // A restart while Unleash is still down: the backup file gives the last stage.
    app.close();
    const restarted = provider();
    const t0 = Date.now();
    await restarted.start();
    expect(Date.now() - t0).toBeLessThan(2_500); // the backup, without waiting for the fetch's retries
    expect(restarted.status()).toMatchObject({ ready: true, synchronized: false, reachable: false });
    expect(restarted.get(m)).toEqual(expected);
    // Without a backup: no state, so the engine uses the migration's safe stage.
    const fresh = provider({ backupPath: mkdtempSync(join(dir, 'empty-')), startTimeoutMs: 1_000 });
    await fresh.start();
    expect(fresh.get(m)).toBeUndefined();

    // Unleash back: the providers follow it again.
    await server.start();
    await admin.setStage(m, 'live');
    await seen(restarted, m, { ...expected, stage: 'live' }, 10_000);
    await seen(fresh, m, { ...expected, stage: 'live' }, 10_000);
    // The state and the status flags are updated by separate client events: wait for both.
    await waitFor(
      () => restarted.status().synchronized === true && restarted.status().reachable === true,
      10_000,
      'the restarted provider to be synchronised again',
    );

    // No token in anything logged.
    const text = JSON.stringify(logged);
    expect(text).not.toContain(server.clientToken);
    expect(text).not.toContain(server.adminToken);
  });
});
