import { conformanceSuite } from '@midflight/core/testing';
import { MidflightSubscriber } from '@midflight/typeorm';
import type { DataSource } from 'typeorm';
import { openFresh } from './support/servers.js';
import { openDataSource, typeormOps } from './support/typeorm-ops.js';

// PG→PG and PG→MariaDB (TypeORM's `mariadb` driver): the pairs issue 4 asks for.
const pairs = [
  ['pg', 'pg'],
  ['pg', 'mariadb'],
] as const;

for (const [from, to] of pairs) {
  const src = `mf_typeorm_conf_${from}_${to}_src`;
  const tgt = `mf_typeorm_conf_${from}_${to}_tgt`;
  const open: DataSource[] = [];
  conformanceSuite({
    name: `typeorm ${from}→${to}`,
    databases: async () => ({ source: await openFresh(from, src), target: await openFresh(to, tgt) }),
    bind: async (engine) => {
      const source = await openDataSource(from, src);
      const target = await openDataSource(to, tgt);
      open.push(source, target);
      const mf = new MidflightSubscriber(engine, { target });
      source.subscribers.push(mf);
      return typeormOps(mf, source);
    },
    close: async () => {
      for (const ds of open.splice(0)) await ds.destroy();
    },
  });
}
