#!/usr/bin/env node
// Loads TypeScript config files (midflight.config.ts) through tsx, then runs the CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../dist/index.js');
process.exitCode = await main(process.argv.slice(2));
