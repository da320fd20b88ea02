/**
 * The Prisma demo: the items service (src/app.ts) migrated from PostgreSQL to MariaDB while it
 * serves traffic — see src/scenario.ts for the steps. Runs on the local servers
 * (127.0.0.1:5432 as postgres, 127.0.0.1:3306 as root; PGHOST/PGPORT/PGUSER, MYSQL_HOST/…
 * override) and drops and recreates `mf_ex_prisma_src` / `mf_ex_prisma_tgt`. Needs the fixture
 * clients: `pnpm generate` at the root. Prints counts and table names only — never row values.
 *
 *   pnpm --filter @midflight/example-prisma-app start
 */
import { pathToFileURL } from 'node:url';
import { safeReason } from '@midflight/core';
import { PrismaPg } from '@prisma/adapter-pg';
import { mariaPrisma } from '../../../packages/prisma/fixtures/clients.js';
import { migration, startApp } from './app.js';
import { type DemoOptions, type DemoReport, formatReport, PG, runScenario } from './scenario.js';

export type { DemoOptions, DemoReport } from './scenario.js';
export { formatReport } from './scenario.js';

/** Runs the whole demo and returns its report (the script prints it and sets the exit code). */
export function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  return runScenario(
    {
      orm: 'Prisma',
      migration,
      async start(engine, databases) {
        const adapter = new PrismaPg({ ...PG, database: databases.source, max: 10 });
        const target = mariaPrisma(databases.target);
        const app = await startApp({ adapter, target, engine });
        return {
          ...app,
          async close() {
            await app.close();
            await target.$disconnect();
          },
        };
      },
    },
    { sourceDatabase: 'mf_ex_prisma_src', targetDatabase: 'mf_ex_prisma_tgt', ...options },
  );
}

async function main(): Promise<void> {
  const report = await runDemo();
  process.stdout.write(`${formatReport(report)}\n`);
  process.exitCode = report.ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    // Redacted: a driver's error message can quote the values it choked on.
    process.stderr.write(`demo failed: ${safeReason(e)}\n`);
    process.exitCode = 1;
  });
}
