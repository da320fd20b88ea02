import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@midflight\/core\/testing\/schema$/, replacement: src('core/src/testing/schema.ts') },
      { find: /^@midflight\/core\/testing$/, replacement: src('core/src/testing/index.ts') },
      { find: /^@midflight\/core$/, replacement: src('core/src/index.ts') },
      { find: /^@midflight\/knex$/, replacement: src('knex/src/index.ts') },
      { find: /^@midflight\/prisma$/, replacement: src('prisma/src/index.ts') },
      { find: /^@midflight\/typeorm$/, replacement: src('typeorm/src/index.ts') },
      { find: /^@midflight\/bullmq$/, replacement: src('bullmq/src/index.ts') },
      { find: /^@midflight\/unleash$/, replacement: src('unleash/src/index.ts') },
      { find: /^@midflight\/cli$/, replacement: src('cli/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
