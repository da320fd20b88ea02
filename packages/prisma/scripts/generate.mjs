// Generates the Prisma clients the tests use, one per provider, from fixtures/*.prisma into
// node_modules/.generated/<name> (out of git and lint; regenerated on every run). Works offline:
// Prisma 7's client needs no engine binary, but `prisma generate` insists that a schema-engine
// path exists, so it is pointed at Node itself (generate never runs it).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = createRequire(join(root, 'package.json')).resolve('prisma/build/index.js');
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
};
const schemas = readdirSync(join(root, 'fixtures')).filter((f) => f.endsWith('.prisma'));
const codes = await Promise.all(
  schemas.map(
    (file) =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [cli, 'generate', '--schema', join('fixtures', file)], {
          cwd: root,
          env,
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        child.on('exit', (code) => resolve(code ?? 1));
      }),
  ),
);
process.exit(codes.every((c) => c === 0) ? 0 : 1);
