import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freshDatabase, PG } from './servers.js';

/**
 * A real Unleash (the `unleash-server` npm package, a dev dependency of @midflight/unleash)
 * in a child process on 127.0.0.1, on its own fresh PostgreSQL database. It migrates that
 * database itself at first start (~10 s); a restart on the same database takes well under 1 s.
 *
 * Tokens come from Unleash's documented start-up options `INIT_ADMIN_API_TOKENS` and
 * `INIT_BACKEND_API_TOKENS` (`<project>:<environment>.<secret>`), so no login is needed.
 * The child exits with the test process (it watches its stdin), so no server is left behind.
 */
export interface UnleashServer {
  /** The API URL for unleash-client and the admin client: `http://127.0.0.1:<port>/api`. */
  readonly url: string;
  readonly port: number;
  /** Admin API token (all projects, all environments). */
  readonly adminToken: string;
  /** Backend (client) API token for project `default`, environment `development`. */
  readonly clientToken: string;
  /** Starts the server again (same port and database) after `stop`. */
  start(): Promise<void>;
  /** Stops the process (an outage); the database stays. */
  stop(): Promise<void>;
  readonly running: boolean;
  /** The server's last output lines (for failures). */
  output(): string;
}

const serverImpl = createRequire(new URL('../../packages/unleash/package.json', import.meta.url)).resolve(
  'unleash-server',
);

/** The script the child runs: start Unleash from its environment; exit when the parent goes away. */
const BOOT = `
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
const { start } = await import(${JSON.stringify(pathToFileURL(serverImpl).href)});
await start();
`;

export async function startUnleashServer(
  options: { database?: string; startTimeoutMs?: number } = {},
): Promise<UnleashServer> {
  const database = options.database ?? 'mf_unleash';
  const startTimeoutMs = options.startTimeoutMs ?? 90_000;
  await freshDatabase('pg', database);
  const port = await freePort();
  const secret = randomBytes(12).toString('hex');
  const adminToken = `*:*.mf-admin-${secret}`;
  const clientToken = `default:development.mf-client-${secret}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TZ: 'UTC',
    NODE_ENV: 'production',
    DATABASE_HOST: PG.host,
    DATABASE_PORT: String(PG.port),
    DATABASE_USERNAME: PG.user,
    DATABASE_PASSWORD: process.env.PGPASSWORD ?? '',
    DATABASE_NAME: database,
    DATABASE_SSL: 'false',
    HTTP_HOST: '127.0.0.1',
    HTTP_PORT: String(port),
    UNLEASH_URL: `http://127.0.0.1:${port}`,
    INIT_ADMIN_API_TOKENS: adminToken,
    INIT_BACKEND_API_TOKENS: clientToken,
    CHECK_VERSION: 'false',
    SEND_TELEMETRY: 'false',
    LOG_LEVEL: 'warn',
  };

  let child: ChildProcess | undefined;
  let lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > 200) lines = lines.slice(-100);
  };

  let migrated = false;
  const start = async () => {
    if (child) return;
    const proc = spawn(process.execPath, ['--no-deprecation', '--input-type=module', '-e', BOOT], {
      cwd: dirname(serverImpl),
      // Once the database is migrated, a restart skips the migration check (~5 s).
      env: migrated ? { ...env, DATABASE_DISABLE_MIGRATION: 'true' } : env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    let exited: string | undefined;
    proc.once('exit', (code, signal) => {
      exited = `exited (${signal ?? code})`;
      if (child === proc) child = undefined;
    });
    const until = Date.now() + startTimeoutMs;
    while (Date.now() < until) {
      if (exited) throw new Error(`Unleash ${exited} before it was healthy:\n${lines.slice(-30).join('\n')}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1_000) });
        if (res.ok) {
          migrated = true;
          return;
        }
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await stop();
    throw new Error(`Unleash did not answer /health within ${startTimeoutMs} ms:\n${lines.slice(-30).join('\n')}`);
  };

  const stop = async () => {
    const proc = child;
    if (!proc) return;
    child = undefined;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  };

  await start();
  return {
    url: `http://127.0.0.1:${port}/api`,
    port,
    adminToken,
    clientToken,
    start,
    stop,
    get running() {
      return child !== undefined;
    },
    output: () => lines.join('\n'),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
