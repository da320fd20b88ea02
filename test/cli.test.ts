import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFresh, waitFor } from './support/servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'packages/cli/src/cli.ts');
const CONFIG = join(ROOT, 'test/fixtures/midflight.config.ts');
const PREFIX = `mfcli${Date.now().toString(36)}`;
const env = {
  ...process.env,
  MF_SRC: 'mf_cli_src',
  MF_TGT: 'mf_cli_tgt',
  MF_PREFIX: PREFIX,
  MF_SPOOL: mkdtempSync(join(tmpdir(), 'mf-cli-')),
};

function run(
  args: string[],
  opts: { until?: RegExp; env?: Record<string, string> } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; kill?: () => void }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: ROOT,
      env: { ...env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      if (opts.until?.test(stderr)) resolve({ code: null, stdout, stderr, kill: () => child.kill('SIGTERM') });
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

let source: Knex;
let target: Knex;

beforeAll(async () => {
  source = await openFresh('pg', 'mf_cli_src');
  target = await openFresh('mariadb', 'mf_cli_tgt');
  for (const db of [source, target]) {
    await db.schema.createTable('items', (t) => {
      t.increments('id').primary();
      t.string('name', db === target ? 8 : 100).notNullable();
    });
  }
});

afterAll(async () => {
  await run(['dlq', 'purge', '--config', CONFIG]);
  await source?.destroy();
  await target?.destroy();
});

describe('midflight CLI', () => {
  it('--help lists the commands; an unknown command exits 2', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const c of ['status', 'worker', 'dlq list', 'verify', 'backfill', 'reconcile'])
      expect(help.stdout).toContain(c);
    const bad = await run(['fly', '--config', CONFIG]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command');
  });

  it('a missing config file is a clear error', async () => {
    const r = await run(['status', '--config', 'nowhere.config.ts']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nowhere\.config\.ts not found/);
  });

  it(
    'backfill, verify, a rejected row in the dead letters, retry after the fix, the worker and its endpoints',
    { timeout: 120_000 },
    async () => {
      await source('items').insert([
        { name: 'short' },
        { name: 'a name far too long for the target' },
        { name: 'fine' },
      ]);
      expect((await run(['verify', '--config', CONFIG])).code).toBe(1);

      const worker = await run(['worker', '--config', CONFIG, '--port', '0', '--concurrency', '2'], {
        until: /port (\d+)/,
      });
      expect(worker.kill).toBeDefined();
      const port = Number(/port (\d+)/.exec(worker.stderr)?.[1]);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);

      // Backfill from the CLI: the long row fails on the target and goes to the retry queue.
      const backfill = await run(['backfill', '--config', CONFIG, '--json']);
      expect(backfill.code).toBe(0);
      expect(JSON.parse(backfill.stdout)).toEqual({ rows: 3 });
      await waitFor(
        async () => JSON.parse((await run(['dlq', 'list', '--config', CONFIG, '--json'])).stdout).length === 1,
        30_000,
        'dead letter',
      );
      const list = JSON.parse((await run(['dlq', 'list', '--config', CONFIG, '--json'])).stdout);
      expect(list[0]).toMatchObject({ table: 'items', key: [2], attempts: 2 });
      expect(list[0].reason).toMatch(/too long/i);
      expect(JSON.stringify(list)).not.toContain('far too long');
      const show = await run(['dlq', 'show', list[0].id, '--config', CONFIG]);
      expect(show.stdout).toContain('reason');

      const status = JSON.parse((await run(['status', '--config', CONFIG, '--json'])).stdout);
      expect(status).toMatchObject({ migration: 'cli', stages: { items: 'dualwrite' }, deadLetters: 1 });

      await target.schema.alterTable('items', (t) => t.string('name', 100).alter());
      expect(JSON.parse((await run(['dlq', 'retry', '--config', CONFIG, '--json'])).stdout)).toEqual({ retried: 1 });
      await waitFor(async () => (await run(['verify', '--config', CONFIG])).code === 0, 30_000, 'verify clean');

      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toContain('midflight_writes_retried_total');
      worker.kill?.();
    },
  );
});

describe('midflight stage and cutover', () => {
  it(
    'moves one stage at a time, refuses the authority flip without cutover, and cuts over both ways',
    { timeout: 120_000 },
    async () => {
      const flagsFile = join(mkdtempSync(join(tmpdir(), 'mf-cli-flags-')), 'flags.json');
      writeFileSync(flagsFile, JSON.stringify({ migrations: { cli: { stage: 'dualwrite', rollout: 0 } } }));
      const opts = { env: { MF_FLAGS: flagsFile, MF_PREFIX: `${PREFIX}s` } };
      const cli = (...args: string[]) => run([...args, '--config', CONFIG], opts);
      const stageInFile = () => JSON.parse(readFileSync(flagsFile, 'utf8')).migrations.cli;

      expect(JSON.parse((await cli('stage', 'show', '--json')).stdout)).toMatchObject({ stage: 'dualwrite' });
      const skip = await cli('stage', 'set', 'live');
      expect(skip.code).toBe(1);
      expect(skip.stderr).toMatch(/STAGE_SKIP/);
      expect((await cli('stage', 'set', 'shadow')).code).toBe(0);
      expect((await cli('stage', 'set', 'live')).code).toBe(0);
      expect((await cli('stage', 'rollout', '30')).code).toBe(0);
      expect(stageInFile()).toEqual({ stage: 'live', rollout: 30 });
      const flip = await cli('stage', 'set', 'rampdown');
      expect(flip.code).toBe(1);
      expect(flip.stderr).toMatch(/STAGE_NEEDS_CUTOVER.*|midflight cutover/);

      const cut = await cli('cutover', '--json');
      expect(cut.code).toBe(0);
      expect(JSON.parse(cut.stdout)).toMatchObject({ ok: true, side: 'target' });
      expect(stageInFile()).toMatchObject({ stage: 'rampdown', rollout: 30 });
      const back = await cli('cutover', '--reverse', '--json');
      expect(JSON.parse(back.stdout)).toMatchObject({ ok: true, side: 'source' });
      expect(stageInFile()).toMatchObject({ stage: 'live' });
      expect((await cli('stage', 'set', 'dualwrite')).code).toBe(0); // back is always allowed
    },
  );
});
