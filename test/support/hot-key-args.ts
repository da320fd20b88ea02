// What every hot-key worker process reads from its argv, and its seeded random source
// (deterministic per seed, so a failing run can be replayed).
import type { Engine } from './servers.js';

export function hotKeyArgs(argv: readonly string[] = process.argv.slice(2)) {
  const [from, srcDb, to, tgtDb, seedArg, opsArg, keysArg] = argv as [
    Engine,
    string,
    Engine,
    string,
    string,
    string,
    string,
  ];
  const seed = Number(seedArg);
  let state = seed * 7919 + 1;
  const rand = (n: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  return { from, srcDb, to, tgtDb, seed, ops: Number(opsArg), keys: Number(keysArg), rand };
}
