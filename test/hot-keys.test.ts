import { fileURLToPath } from 'node:url';
import { hotKeySuite } from './support/hot-keys.js';

hotKeySuite({
  name: 'knex',
  worker: fileURLToPath(new URL('./support/hot-key-worker.ts', import.meta.url)),
  processes: 4,
  ops: Number(process.env.HOT_KEY_OPS ?? 2000),
  runs: [
    ['pg', 'mariadb'],
    ['pg', 'mariadb'],
    ['mariadb', 'pg'],
    ['pg', 'pg'],
  ],
});
