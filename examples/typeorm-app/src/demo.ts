/**
 * The TypeORM demo: the items service (src/app.ts) migrated from PostgreSQL to MariaDB while
 * it serves traffic — the scenario of the Prisma example (examples/prisma-app/src/scenario.ts).
 * Runs on the local servers (127.0.0.1:5432 as postgres, 127.0.0.1:3306 as root;
 * PGHOST/PGPORT/PGUSER, MYSQL_HOST/… override) and drops and recreates `mf_ex_typeorm_src` /
 * `mf_ex_typeorm_tgt`. Prints counts and table names only — never row values.
 *
 *   pnpm --filter @midflight/example-typeorm-app start
 */
import { pathToFileURL } from 'node:url';
import { safeReason } from '@midflight/core';
import { DataSource } from 'typeorm';
import {
  type DemoOptions,
  type DemoReport,
  formatReport,
  MARIA,
  PG,
  runScenario,
} from '../../prisma-app/src/scenario.js';
import { ENTITIES, migration, startApp } from './app.js';

export type { DemoOptions, DemoReport } from '../../prisma-app/src/scenario.js';
export { formatReport } from '../../prisma-app/src/scenario.js';

/** Runs the whole demo and returns its report (the script prints it and sets the exit code). */
export function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  return runScenario(
    {
      orm: 'TypeORM',
      migration,
      async start(engine, databases) {
        // The tables exist already (made with Knex): no synchronize.
        const common = { entities: ENTITIES, synchronize: false, logging: false, poolSize: 10 } as const;
        const dataSource = await new DataSource({
          type: 'postgres',
          host: PG.host,
          port: PG.port,
          username: PG.user,
          database: databases.source,
          ...common,
        }).initialize();
        const target = await new DataSource({
          type: 'mariadb',
          host: MARIA.host,
          port: MARIA.port,
          username: MARIA.user,
          password: MARIA.password,
          database: databases.target,
          timezone: 'Z',
          ...common,
        }).initialize();
        const app = await startApp({ dataSource, target, engine });
        return {
          ...app,
          async close() {
            await app.close();
            await Promise.allSettled([dataSource.destroy(), target.destroy()]);
          },
        };
      },
    },
    { sourceDatabase: 'mf_ex_typeorm_src', targetDatabase: 'mf_ex_typeorm_tgt', ...options },
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
