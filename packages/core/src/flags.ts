import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { ConfigError } from './errors.js';
import { isStage, type Stage } from './stage.js';

/** What the flags say about one migration. */
export interface FlagState {
  readonly stage: Stage;
  /** Share of users (0–100) whose reads go to the target in `live`. */
  readonly rollout: number;
  /** Per-table stage overrides. */
  readonly tables?: Readonly<Record<string, Stage>>;
}

/**
 * Source of a migration's stage and read rollout. `get` returns `undefined` when it has no
 * data; the engine then keeps the last state it saw, or the migration's safe stage.
 */
export interface FlagProvider {
  start?(): Promise<void>;
  get(migration: string): FlagState | undefined;
  close?(): Promise<void> | void;
}

/** A provider the CLI can change stages through (JSON file, Unleash admin API). */
export interface WritableFlags extends FlagProvider {
  write(migration: string, state: FlagState): Promise<void>;
}

export function isWritableFlags(p: FlagProvider | undefined): p is WritableFlags {
  return typeof (p as Partial<WritableFlags> | undefined)?.write === 'function';
}

/**
 * Fixed flags, from code — tests and simple deployments.
 *
 * @example
 * new StaticFlags({ 'users-to-pg': { stage: 'dualwrite', rollout: 0 } })
 */
export class StaticFlags implements FlagProvider {
  private readonly states = new Map<string, FlagState>();
  constructor(states: Readonly<Record<string, FlagState | Stage>> = {}) {
    for (const [name, s] of Object.entries(states)) this.set(name, s);
  }
  get(migration: string): FlagState | undefined {
    return this.states.get(migration);
  }
  /** Changes the state at run time (tests, admin endpoints). */
  set(migration: string, state: FlagState | Stage): void {
    this.states.set(migration, checkState(typeof state === 'string' ? { stage: state, rollout: 0 } : state, migration));
  }
}

/**
 * Flags from environment variables: `MIDFLIGHT_<NAME>_STAGE` and `MIDFLIGHT_<NAME>_ROLLOUT`,
 * NAME being the migration name upper-cased with non-alphanumerics as `_`.
 *
 * @example
 * // MIDFLIGHT_USERS_TO_PG_STAGE=dualwrite
 * new EnvFlags()
 */
export class EnvFlags implements FlagProvider {
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}
  get(migration: string): FlagState | undefined {
    const prefix = `MIDFLIGHT_${migration.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
    const stage = this.env[`${prefix}_STAGE`];
    if (stage === undefined || stage === '') return undefined;
    const rollout = Number(this.env[`${prefix}_ROLLOUT`] ?? 0);
    return checkState({ stage: stage as Stage, rollout }, `${prefix}_STAGE`);
  }
}

/**
 * Flags in a JSON file, re-read when it changes — the embedded default.
 * `{ "migrations": { "users-to-pg": { "stage": "dualwrite", "rollout": 0 } } }`.
 * A file that is missing or does not parse leaves the last good state in force.
 */
export class JsonFileFlags implements WritableFlags {
  private states = new Map<string, FlagState>();
  private readonly listeners = new Set<() => void>();
  private lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private seen = '';

  constructor(
    readonly path: string,
    private readonly intervalMs = 250,
  ) {}

  async start(): Promise<void> {
    this.poll();
    // Polling a stat is cheap and, unlike fs.watch/watchFile, behaves the same when the file is
    // missing, replaced by rename (how editors and deploy tools write) or on a network mount.
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref();
  }

  private poll(): void {
    let stamp: string;
    try {
      const st = statSync(this.path);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      stamp = 'missing';
    }
    if (stamp === this.seen) return;
    this.seen = stamp;
    this.reload();
  }

  get(migration: string): FlagState | undefined {
    return this.states.get(migration);
  }

  /** Why the last read failed, if it did. */
  get error(): string | undefined {
    return this.lastError;
  }

  /** Called after each successful reload. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  reload(): void {
    try {
      const doc = JSON.parse(readFileSync(this.path, 'utf8')) as { migrations?: Record<string, FlagState> };
      const next = new Map<string, FlagState>();
      for (const [name, s] of Object.entries(doc.migrations ?? {}))
        next.set(name, checkState(s, `${this.path}: ${name}`));
      this.states = next;
      this.lastError = undefined;
      for (const fn of this.listeners) fn();
    } catch (e) {
      this.lastError = e instanceof Error ? e.message : String(e);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Sets one migration's state in the file (atomically: write a temporary file, then rename). */
  async write(migration: string, state: FlagState): Promise<void> {
    let doc: { migrations?: Record<string, FlagState> } = {};
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch {
      // A missing or broken file is replaced.
    }
    doc.migrations = { ...doc.migrations, [migration]: checkState(state, migration) };
    writeFileSync(`${this.path}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
    renameSync(`${this.path}.tmp`, this.path);
    this.reload();
  }
}

function checkState(s: FlagState, where: string): FlagState {
  if (!isStage(s?.stage)) {
    throw new ConfigError('INVALID_STAGE', `${where}: "${String(s?.stage)}" is not a stage`);
  }
  const rollout = s.rollout ?? 0;
  if (typeof rollout !== 'number' || !(rollout >= 0 && rollout <= 100)) {
    throw new ConfigError('INVALID_OPTION', `${where}: rollout must be 0–100, got ${String(rollout)}`);
  }
  for (const [t, st] of Object.entries(s.tables ?? {})) {
    if (!isStage(st)) throw new ConfigError('INVALID_STAGE', `${where}: table "${t}": "${String(st)}" is not a stage`);
  }
  return { stage: s.stage, rollout, ...(s.tables ? { tables: s.tables } : {}) };
}
