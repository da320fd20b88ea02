import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@midflight/core';
import { afterEach, describe, expect, it } from 'vitest';
import { UnleashAdmin } from './admin.js';
import { AtomicFileStorage } from './backup.js';
import { UnleashFlags } from './flags.js';
import { flagName, parseToggle, type StrategyDef, stageVariant, type ToggleDef } from './scheme.js';

const rollout = (pct: string, variants: StrategyDef['variants'], extra: Partial<StrategyDef> = {}): StrategyDef => ({
  name: 'flexibleRollout',
  parameters: { rollout: pct, stickiness: 'userId', groupId: 'midflight.m' },
  constraints: [],
  variants,
  ...extra,
});

const flag = (strategies: StrategyDef[], enabled = true, variants?: ToggleDef['variants']): ToggleDef => ({
  enabled,
  strategies,
  ...(variants ? { variants } : {}),
});

describe('the Unleash flag scheme', () => {
  it('reads the stage from the strategy variant and the rollout from flexibleRollout', () => {
    expect(parseToggle(flag([rollout('30', [stageVariant('live')])]))).toEqual({
      state: { stage: 'live', rollout: 30 },
      stored: { stage: 'live', rollout: 30 },
      notes: [],
    });
  });

  it('reads per-table overrides from the JSON payload', () => {
    const v = stageVariant('live', { orders: 'shadow' });
    expect(v.payload).toEqual({ type: 'json', value: '{"tables":{"orders":"shadow"}}' });
    expect(parseToggle(flag([rollout('5', [v])])).state).toEqual({
      stage: 'live',
      rollout: 5,
      tables: { orders: 'shadow' },
    });
    const withStage = { ...v, payload: { type: 'json', value: '{"stage":"live","tables":{"orders":"dualwrite"}}' } };
    expect(parseToggle(flag([rollout('5', [withStage])])).state?.tables).toEqual({ orders: 'dualwrite' });
  });

  it('disabled is the kill switch: off for every table, whatever is stored', () => {
    const p = parseToggle(flag([rollout('60', [stageVariant('rampdown', { a: 'live' })])], false));
    expect(p.state).toEqual({ stage: 'off', rollout: 0 });
    expect(p.stored).toEqual({ stage: 'rampdown', rollout: 60, tables: { a: 'live' } });
    expect(parseToggle(flag([], false)).state).toEqual({ stage: 'off', rollout: 0 });
  });

  it('a default strategy means 100 %, no rollout strategy 0 %; legacy flag variants are read', () => {
    expect(parseToggle(flag([{ name: 'default', variants: [stageVariant('live')] }])).state?.rollout).toBe(100);
    expect(parseToggle(flag([], true, [stageVariant('dualwrite')])).state).toEqual({ stage: 'dualwrite', rollout: 0 });
  });

  it('only one weighted variant counts; zero-weight ones are ignored', () => {
    const p = parseToggle(
      flag([
        rollout('0', [{ ...stageVariant('off'), weight: 0 }, stageVariant('shadow'), { name: 'live', weight: 0 }]),
      ]),
    );
    expect(p.state?.stage).toBe('shadow');
  });

  it('reports problems instead of guessing', () => {
    const problems = [
      flag([rollout('10', [])]),
      flag([rollout('10', [stageVariant('live'), stageVariant('shadow')])]),
      flag([rollout('10', [{ name: 'turbo', weight: 1000 }])]),
      flag([rollout('abc', [stageVariant('live')])]),
      flag([rollout('101', [stageVariant('live')])]),
      flag([rollout('10', [{ name: 'live', weight: 1000, payload: { type: 'json', value: '{' } }])]),
      flag([rollout('10', [{ name: 'live', weight: 1000, payload: { type: 'string', value: 'shadow' } }])]),
      flag([
        rollout('10', [{ name: 'live', weight: 1000, payload: { type: 'json', value: '{"tables":{"a":"on"}}' } }]),
      ]),
      flag([rollout('10', [{ name: 'live', weight: 1000, payload: { type: 'json', value: '{"stage":"shadow"}' } }])]),
      flag([rollout('10', [{ name: 'live', weight: 1000, payload: { type: 'json', value: '{"rollout":5}' } }])]),
    ];
    for (const p of problems) {
      const parsed = parseToggle(p);
      expect(parsed.problem, JSON.stringify(p)).toEqual(expect.any(String));
      expect(parsed.state).toBeUndefined();
    }
  });

  it('notes what it does not evaluate', () => {
    const p = parseToggle(
      flag([
        rollout('10', [stageVariant('live')], {
          parameters: { rollout: '10', stickiness: 'sessionId' },
          constraints: [{ contextName: 'appName', operator: 'IN', values: ['a'] }],
        }),
      ]),
    );
    expect(p.state).toEqual({ stage: 'live', rollout: 10 });
    expect(p.notes).toHaveLength(2);
  });

  it('checks names and stages', () => {
    expect(flagName('midflight.', 'users-to-pg')).toBe('midflight.users-to-pg');
    expect(() => flagName('midflight.', 'users to pg')).toThrow(/URL-friendly/);
    expect(() => stageVariant('on' as never)).toThrow(/not a stage/);
    expect(() => stageVariant('live', { a: 'on' as never })).toThrow(/not a stage/);
  });
});

describe('UnleashFlags without a reachable Unleash', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'mf-unleash-unit-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const options = (backupPath: string) => ({
    url: 'http://127.0.0.1:1/api',
    appName: 'unit',
    refreshInterval: 60_000,
    backupPath,
    startTimeoutMs: 300,
    disableMetrics: true,
    logger: silentLogger,
  });

  it('gives no state (→ the safe stage) when there is neither Unleash nor a backup', async () => {
    const flags = new UnleashFlags(options(tmp()));
    expect(flags.get('m')).toBeUndefined();
    await flags.start();
    expect(flags.get('m')).toBeUndefined();
    expect(flags.status()).toMatchObject({ ready: false, synchronized: false, reachable: false });
    flags.close();
  });

  it('starts from the backup file, atomically written', async () => {
    const dir = tmp();
    const storage = new AtomicFileStorage(dir, 'midflight.');
    await storage.set('unit', {
      version: 2,
      features: [
        {
          name: 'midflight.m',
          enabled: true,
          strategies: [rollout('25', [stageVariant('live', { t: 'shadow' })]) as never],
        },
        { name: 'midflight.killed', enabled: false, strategies: [rollout('25', [stageVariant('live')]) as never] },
        { name: 'midflight.broken', enabled: true, strategies: [rollout('25', []) as never] },
      ],
    });
    expect(readdirSync(dir)).toEqual(['midflight-unleash-unit-midflight.json']);
    const flags = new UnleashFlags(options(dir));
    await flags.start();
    expect(flags.get('m')).toEqual({ stage: 'live', rollout: 25, tables: { t: 'shadow' } });
    expect(flags.get('m')).toBe(flags.get('m')); // parsed once per definition
    expect(flags.get('killed')).toEqual({ stage: 'off', rollout: 0 });
    expect(flags.get('broken')).toBeUndefined();
    expect(flags.status()).toMatchObject({ ready: true, synchronized: false });
    flags.close();
  });

  it('write needs admin access; the admin client checks its options', async () => {
    const flags = new UnleashFlags(options(tmp()));
    await expect(flags.write('m', { stage: 'dualwrite', rollout: 0 })).rejects.toThrow(/needs `admin`/);
    flags.close();
    expect(() => new UnleashAdmin({ url: 'http://x/api', token: '' })).toThrow(/token/);
    expect(new UnleashAdmin({ url: 'http://x:4242/', token: 't' }).api).toBe('http://x:4242/api');
    const secret = 'admin-secret-value';
    const down = new UnleashAdmin({ url: 'http://127.0.0.1:1/api', token: secret, timeoutMs: 2_000 });
    const err = await down.status('m').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FLAGS_UNAVAILABLE', status: 0 });
    expect(String((err as Error).message)).not.toContain(secret);
  });
});
