import type { Row } from './change.js';
import { ConfigError } from './errors.js';
import { checkIdentifier } from './identifiers.js';
import { parseStage, type Stage } from './stage.js';

/** How one source table reaches the target. */
export interface TableConfig {
  /** Key columns (composite allowed). Default: the source table's primary key. */
  readonly key?: string | readonly string[];
  /** Target table name. Default: the same name. */
  readonly target?: string;
  /**
   * Source column → target column. `false` leaves a source column out. Columns not listed keep
   * their name.
   */
  readonly columns?: Readonly<Record<string, string | false>>;
  /** Last step of the mapping, on the already renamed row; must keep the key columns. */
  readonly transform?: (row: Row) => Row;
  /** Inverse of `transform`, needed to mirror target → source in `rampdown`. */
  readonly reverseTransform?: (row: Row) => Row;
  /** A column that grows on every write (`updated_at`, `version`); compared first in verify. */
  readonly versionColumn?: string;
  /** Stage for this table, overriding the migration's (flags may override again). */
  readonly stage?: Stage;
}

export interface MirrorOptions {
  /** `await`: the request waits for the mirror up to `deadlineMs`; `handoff`: it never waits. */
  readonly mode?: 'await' | 'handoff';
  /** Longest wait on the request path before the mirror moves to the retry queue. Default 100. */
  readonly deadlineMs?: number;
  /** Re-reads of the source after a mirror before giving the key to the retry queue. Default 5. */
  readonly maxRechecks?: number;
  /** `handoff` mode: changes gathered for this long are mirrored as one batch. Default 5. */
  readonly batchMs?: number;
  /** Re-reads of the authoritative side wait this long so that one query covers many keys. Default 5. */
  readonly recheckDelayMs?: number;
}

export interface RetryOptions {
  /** Attempts before a key goes to the dead letters. Default 10. */
  readonly attempts?: number;
  /** First backoff; doubles each attempt, with jitter. Default 100 ms. */
  readonly backoffMs?: number;
  /** Largest backoff. Default 30 s. */
  readonly maxBackoffMs?: number;
}

export interface ReadOptions {
  /** Share of reads compared against the other side in `shadow` and `live` (0–1). Default 0.1. */
  readonly shadowSampleRate?: number;
  /** Include differing values in mismatch records (off: names only). Default false. */
  readonly recordValues?: boolean;
}

export interface MigrationConfig {
  /** Stable name: flag names, job ids and metrics labels derive from it. */
  readonly name: string;
  readonly tables: Readonly<Record<string, TableConfig>>;
  /** Stage used when no flag state has ever been read. Default `off`. */
  readonly safeStage?: Stage;
  readonly mirror?: MirrorOptions;
  readonly retry?: RetryOptions;
  readonly reads?: ReadOptions;
}

/** A checked migration definition; `startMigration` binds it to real databases. */
export interface Migration {
  readonly name: string;
  readonly safeStage: Stage;
  readonly tables: ReadonlyMap<string, TableConfig>;
  readonly mirror: Required<MirrorOptions>;
  readonly retry: Required<RetryOptions>;
  readonly reads: Required<ReadOptions>;
}

/**
 * Describes a migration once; the app, the worker and the CLI load the same definition.
 * Checks everything that can be checked without a database; `startMigration` checks the rest.
 *
 * @example
 * export default defineMigration({
 *   name: 'users-to-pg',
 *   tables: { users: { key: 'id', columns: { name: 'full_name', legacy_flag: false } } },
 * })
 */
export function defineMigration(config: MigrationConfig): Migration {
  if (typeof config?.name !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,62}$/i.test(config.name)) {
    throw new ConfigError(
      'MIGRATION_NAME_INVALID',
      `migration name "${String(config?.name)}" must be 1–63 letters, digits, "-" or "_"`,
    );
  }
  const entries = Object.entries(config.tables ?? {});
  if (entries.length === 0) {
    throw new ConfigError('NO_TABLES', `migration "${config.name}" lists no tables`);
  }
  const targets = new Map<string, string>();
  for (const [table, t] of entries) {
    checkIdentifier(table, 'table name', table);
    const target = checkIdentifier(t.target ?? table, `target table of "${table}"`, table);
    const other = targets.get(target);
    if (other !== undefined) {
      throw new ConfigError(
        'DUPLICATE_TARGET_TABLE',
        `tables "${other}" and "${table}" both map to target table "${target}"`,
        { table },
      );
    }
    targets.set(target, table);
    const keys = t.key === undefined ? [] : typeof t.key === 'string' ? [t.key] : [...t.key];
    if (t.key !== undefined && keys.length === 0) {
      throw new ConfigError('INVALID_OPTION', `table "${table}": key must name at least one column`, { table });
    }
    for (const k of keys) checkIdentifier(k, `key column of "${table}"`, table);
    const seen = new Map<string, string>();
    for (const [from, to] of Object.entries(t.columns ?? {})) {
      checkIdentifier(from, `column of "${table}"`, table);
      if (to === false) {
        if (keys.includes(from)) {
          throw new ConfigError('INVALID_OPTION', `table "${table}": key column "${from}" cannot be left out`, {
            table,
            column: from,
          });
        }
        continue;
      }
      checkIdentifier(to, `target column for "${table}.${from}"`, table);
      const prev = seen.get(to);
      if (prev !== undefined) {
        throw new ConfigError(
          'DUPLICATE_MAPPING',
          `table "${table}": columns "${prev}" and "${from}" both map to target column "${to}"`,
          { table, column: to },
        );
      }
      seen.set(to, from);
    }
    if (t.transform !== undefined && typeof t.transform !== 'function') {
      throw new ConfigError('TRANSFORM_INVALID', `table "${table}": transform must be a function`, { table });
    }
    if (t.reverseTransform !== undefined && typeof t.reverseTransform !== 'function') {
      throw new ConfigError('TRANSFORM_INVALID', `table "${table}": reverseTransform must be a function`, { table });
    }
    if (t.versionColumn !== undefined) checkIdentifier(t.versionColumn, `version column of "${table}"`, table);
    if (t.stage !== undefined) parseStage(t.stage, `stage of table "${table}"`);
  }
  const mirror = {
    mode: config.mirror?.mode ?? 'await',
    deadlineMs: config.mirror?.deadlineMs ?? 100,
    maxRechecks: config.mirror?.maxRechecks ?? 5,
    batchMs: config.mirror?.batchMs ?? 5,
    recheckDelayMs: config.mirror?.recheckDelayMs ?? 5,
  } as const;
  if (mirror.mode !== 'await' && mirror.mode !== 'handoff') {
    throw new ConfigError('INVALID_OPTION', `mirror.mode must be "await" or "handoff", got "${String(mirror.mode)}"`);
  }
  positive('mirror.deadlineMs', mirror.deadlineMs, true);
  positive('mirror.maxRechecks', mirror.maxRechecks, false);
  positive('mirror.batchMs', mirror.batchMs, true);
  positive('mirror.recheckDelayMs', mirror.recheckDelayMs, true);
  const retry = {
    attempts: config.retry?.attempts ?? 10,
    backoffMs: config.retry?.backoffMs ?? 100,
    maxBackoffMs: config.retry?.maxBackoffMs ?? 30_000,
  };
  positive('retry.attempts', retry.attempts, false);
  positive('retry.backoffMs', retry.backoffMs, true);
  positive('retry.maxBackoffMs', retry.maxBackoffMs, true);
  const reads = {
    shadowSampleRate: config.reads?.shadowSampleRate ?? 0.1,
    recordValues: config.reads?.recordValues ?? false,
  };
  if (!(reads.shadowSampleRate >= 0 && reads.shadowSampleRate <= 1)) {
    throw new ConfigError(
      'INVALID_OPTION',
      `reads.shadowSampleRate must be between 0 and 1, got ${reads.shadowSampleRate}`,
    );
  }
  return {
    name: config.name,
    safeStage: parseStage(config.safeStage ?? 'off', 'safeStage'),
    tables: new Map(entries),
    mirror,
    retry,
    reads,
  };
}

function positive(name: string, value: number, zeroOk: boolean): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!zeroOk && value === 0)) {
    throw new ConfigError(
      'INVALID_OPTION',
      `${name} must be a ${zeroOk ? 'non-negative' : 'positive'} number, got ${String(value)}`,
    );
  }
}
