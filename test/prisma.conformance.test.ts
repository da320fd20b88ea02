import { conformanceSuite } from '@midflight/core/testing';
import { midflight } from '@midflight/prisma';
import { mariaPrisma, pgPrisma } from '../packages/prisma/fixtures/clients.js';
import { prismaOps } from './support/prisma-ops.js';
import { openFresh } from './support/servers.js';

// The app is on PostgreSQL (one generated client); the target is PostgreSQL or MariaDB (a second
// client generated for the `mysql` provider). Tables come from `createConformanceSchema`.
for (const to of ['pg', 'mariadb'] as const) {
  const src = `mf_prisma_conf_pg_${to}_src`;
  const tgt = `mf_prisma_conf_pg_${to}_tgt`;
  const clients: Array<{ $disconnect(): Promise<void> }> = [];
  conformanceSuite({
    name: `prisma pg→${to}`,
    databases: async () => ({ source: await openFresh('pg', src), target: await openFresh(to, tgt) }),
    bind: (engine) => {
      const base = pgPrisma(src);
      const target = to === 'pg' ? pgPrisma(tgt) : mariaPrisma(tgt);
      clients.push(base, target);
      return prismaOps(base.$extends(midflight(engine, { target })));
    },
    close: async () => {
      for (const c of clients) await c.$disconnect();
    },
  });
}
