import { fileURLToPath } from 'node:url';
import { hotKeySuite } from './support/hot-keys.js';

// PG→MariaDB (the cross-engine pair) by default; MIDFLIGHT_PRISMA_HOT_ALL=1 adds PG→PG.
hotKeySuite({
  name: 'prisma',
  worker: fileURLToPath(new URL('./support/prisma-hot-key-worker.ts', import.meta.url)),
  processes: 3,
  ops: Number(process.env.HOT_KEY_OPS ?? 1000),
  runs: process.env.MIDFLIGHT_PRISMA_HOT_ALL
    ? [
        ['pg', 'mariadb'],
        ['pg', 'pg'],
      ]
    : [['pg', 'mariadb']],
});
