import { conformanceSuite } from '@midflight/core/testing';
import { midflight } from '@midflight/knex';
import { knexOps } from './support/knex-ops.js';
import { openFresh, PAIRS } from './support/servers.js';

for (const [from, to] of PAIRS) {
  conformanceSuite({
    name: `knex ${from}→${to}`,
    databases: async () => ({
      source: await openFresh(from, `mf_conf_knex_${from}_${to}_src`),
      target: await openFresh(to, `mf_conf_knex_${from}_${to}_tgt`),
    }),
    bind: (engine, source) => knexOps(midflight(source, engine)),
  });
}

// The handed-off mirror (batched off the request path) must converge the same way.
conformanceSuite({
  name: 'knex pg→mariadb, mirror handed off',
  mode: 'handoff',
  databases: async () => ({
    source: await openFresh('pg', 'mf_conf_knex_handoff_src'),
    target: await openFresh('mariadb', 'mf_conf_knex_handoff_tgt'),
  }),
  bind: (engine, source) => knexOps(midflight(source, engine)),
});
