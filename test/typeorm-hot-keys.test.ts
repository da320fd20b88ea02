import { fileURLToPath } from 'node:url';
import { hotKeySuite } from './support/hot-keys.js';

// A PostgreSQL source resolves where-based keys with RETURNING, a MariaDB one with a locking pre-select.
hotKeySuite({
  name: 'typeorm',
  worker: fileURLToPath(new URL('./support/typeorm-hot-key-worker.ts', import.meta.url)),
  processes: 3,
  ops: Number(process.env.HOT_KEY_OPS ?? 600),
  runs: [
    ['pg', 'mariadb'],
    ['mariadb', 'pg'],
  ],
});
