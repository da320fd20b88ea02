import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The storage interface unleash-client keeps its last fetched flags in (`storageProvider`). */
export interface FlagStorage<T> {
  set(key: string, data: T): Promise<void>;
  get(key: string): Promise<T | undefined>;
}

/**
 * unleash-client's backup file, written atomically: the client's own file provider writes in
 * place, so a crash mid-write leaves a torn file and the next start (perhaps during an outage)
 * has nothing. Here a temporary file is written, flushed and renamed over the old one.
 *
 * The file is `<dir>/midflight-unleash-<key>.json`, key = app name and flag prefix: its own
 * name, so that an app that also uses unleash-client for its own flags (same app name, same
 * directory) does not overwrite it with a differently filtered set.
 */
export class AtomicFileStorage<T> implements FlagStorage<T> {
  constructor(
    readonly dir: string,
    private readonly suffix = '',
  ) {}

  path(key: string): string {
    const suffix = safe(this.suffix).replace(/[._-]+$/, '');
    return join(this.dir, `midflight-unleash-${safe(key)}${suffix ? `-${suffix}` : ''}.json`);
  }

  async set(key: string, data: T): Promise<void> {
    const path = this.path(key);
    const tmp = `${path}.${process.pid}.tmp`;
    await mkdir(this.dir, { recursive: true });
    await writeFile(tmp, JSON.stringify(data), { flush: true });
    await rename(tmp, path);
  }

  async get(key: string): Promise<T | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(key), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (text.trim() === '') return undefined;
    return JSON.parse(text) as T;
  }
}

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_');
}
