import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EnvFlags, JsonFileFlags, StaticFlags } from './flags.js';

async function until(check: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function writeAtomic(path: string, body: string): void {
  writeFileSync(`${path}.tmp`, body);
  renameSync(`${path}.tmp`, path);
}

describe('flag providers', () => {
  it('static flags validate stages and rollout', () => {
    const f = new StaticFlags({ m: 'shadow' });
    expect(f.get('m')).toEqual({ stage: 'shadow', rollout: 0 });
    expect(() => f.set('m', { stage: 'live', rollout: 101 })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTION' }),
    );
  });

  it('env flags read MIDFLIGHT_<NAME>_STAGE and _ROLLOUT', () => {
    const f = new EnvFlags({ MIDFLIGHT_USERS_TO_PG_STAGE: 'live', MIDFLIGHT_USERS_TO_PG_ROLLOUT: '25' });
    expect(f.get('users-to-pg')).toEqual({ stage: 'live', rollout: 25 });
    expect(f.get('other')).toBeUndefined();
    expect(() => new EnvFlags({ MIDFLIGHT_X_STAGE: 'nope' }).get('x')).toThrow(
      expect.objectContaining({ code: 'INVALID_STAGE' }),
    );
  });

  it('the JSON file is watched; a broken or missing file keeps the last good state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mf-flags-'));
    const path = join(dir, 'flags.json');
    const f = new JsonFileFlags(path, 20);
    await f.start();
    expect(f.get('m')).toBeUndefined(); // no file yet: no data, the engine uses its safe stage
    writeAtomic(path, JSON.stringify({ migrations: { m: { stage: 'dualwrite', rollout: 0 } } }));
    await until(() => f.get('m')?.stage === 'dualwrite');
    writeAtomic(path, '{ not json');
    await until(() => f.error !== undefined);
    expect(f.get('m')?.stage).toBe('dualwrite');
    writeAtomic(path, JSON.stringify({ migrations: { m: { stage: 'bogus' } } }));
    await until(() => /bogus/.test(f.error ?? ''));
    expect(f.get('m')?.stage).toBe('dualwrite');
    writeAtomic(path, JSON.stringify({ migrations: { m: { stage: 'shadow', rollout: 10 } } }));
    await until(() => f.get('m')?.stage === 'shadow');
    f.close();
  });
});
