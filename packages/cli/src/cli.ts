#!/usr/bin/env node
// Entry point when run from source (`pnpm midflight …` in this repository, or through tsx).
import { main } from './index.js';

process.exitCode = await main(process.argv.slice(2));
