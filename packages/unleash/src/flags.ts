import type { EventEmitter } from 'node:events';
import { tmpdir } from 'node:os';
import {
  consoleLogger,
  type FlagState,
  type Logger,
  MidflightError,
  safeReason,
  type WritableFlags,
} from '@midflight/core';
import { type ClientFeaturesResponse, Unleash, UnleashEvents } from 'unleash-client';
import { UnleashAdmin, type UnleashAdminOptions } from './admin.js';
import { AtomicFileStorage, type FlagStorage } from './backup.js';
import { DEFAULT_FLAG_PREFIX, flagName, parseToggle, type ToggleDef } from './scheme.js';

export interface UnleashFlagsOptions {
  /** Unleash's API URL (`http://unleash:4242/api`), as for unleash-client. */
  readonly url: string;
  readonly appName: string;
  readonly instanceId?: string;
  /**
   * Headers for every request — the backend (client) API token goes here:
   * `{ Authorization: process.env.UNLEASH_API_TOKEN }`. The token picks the environment. Never logged.
   */
  readonly customHeaders?: Readonly<Record<string, string>>;
  /** How often the flags are fetched, in ms. Default 15 000 (unleash-client's default). */
  readonly refreshInterval?: number;
  /**
   * Directory of the last-known-flags file, read at start when Unleash is unreachable. Put it
   * on a volume that survives a restart. Default: the OS temp directory (as unleash-client).
   */
  readonly backupPath?: string;
  /** Instead of the backup file (e.g. a shared store). */
  readonly storageProvider?: FlagStorage<ClientFeaturesResponse>;
  /** Default `midflight.`; only flags with this prefix are fetched. */
  readonly flagPrefix?: string;
  /** Fetch only this Unleash project's flags. */
  readonly project?: string;
  /** How long `start()` waits for the first fetch before going on (safe stage or backup). Default 5 000 ms. */
  readonly startTimeoutMs?: number;
  /** HTTP timeout per request, ms (unleash-client default 10 000). */
  readonly timeout?: number;
  /** unleash-client's usage metrics (it has none to count here: the flag is read, not evaluated). Default true. */
  readonly disableMetrics?: boolean;
  readonly logger?: Logger;
  /**
   * Admin API access for `write` (what `midflight stage set|rollout` calls): an `UnleashAdmin`,
   * or its options (url, token, project, environment). Only the CLI needs it.
   */
  readonly admin?: UnleashAdmin | UnleashAdminOptions;
}

/** What the provider knows about its connection to Unleash. */
export interface UnleashFlagsStatus {
  /** Flags are known (from Unleash or the backup). */
  readonly ready: boolean;
  /** At least one fetch from Unleash succeeded since start. */
  readonly synchronized: boolean;
  /** The last fetch succeeded. */
  readonly reachable: boolean;
  readonly lastError?: string;
  /** When Unleash last answered (changed or unchanged). */
  readonly lastContactAt?: Date;
}

/** How long `start()` waits for Unleash once the backup has given flags. */
const BACKUP_GRACE_MS = 1_000;

interface Cached {
  readonly def: ToggleDef;
  readonly state: FlagState | undefined;
}

/**
 * Midflight's stages from Unleash: one flag per migration, read with unleash-client. The
 * scheme (variant = stage, JSON payload = per-table overrides, `flexibleRollout` % = read
 * rollout, disabled = kill switch → `off`) is described in `scheme.ts` and the README.
 *
 * - Before any flag data (Unleash unreachable at start and no backup) `get` returns
 *   `undefined`: the engine uses the migration's safe stage.
 * - When Unleash becomes unreachable, the client keeps the flags it has: the last known state.
 * - Every fetched flag set is written to the backup file, so a restart during an outage comes
 *   back with the last stage.
 *
 * @example
 * const flags = new UnleashFlags({
 *   url: 'http://unleash:4242/api',
 *   appName: 'orders-service',
 *   customHeaders: { Authorization: process.env.UNLEASH_API_TOKEN! },
 *   backupPath: '/var/lib/orders-service',
 * })
 * const engine = await startMigration(migration, { source, target, flags })
 */
export class UnleashFlags implements WritableFlags {
  readonly flagPrefix: string;
  readonly client: Unleash;
  private readonly logger: Logger;
  private readonly secrets: string[];
  private readonly startTimeoutMs: number;
  private readonly names = new Map<string, string>();
  private readonly cache = new Map<string, Cached>();
  private readonly lastValid = new Map<string, FlagState>();
  private readonly reported = new Map<string, string>();
  private readonly listeners = new Set<() => void>();
  private readonly adminClient: UnleashAdmin | undefined;
  private started: Promise<void> | undefined;
  private closed = false;
  private synchronized = false;
  private hasData = false;
  private reachable = false;
  private lastError: string | undefined;
  private lastContactAt: Date | undefined;

  constructor(options: UnleashFlagsOptions) {
    if (!options.url) throw new MidflightError('INVALID_OPTION', 'UnleashFlags: `url` is required');
    if (!options.appName) throw new MidflightError('INVALID_OPTION', 'UnleashFlags: `appName` is required');
    this.flagPrefix = options.flagPrefix ?? DEFAULT_FLAG_PREFIX;
    this.logger = options.logger ?? consoleLogger();
    this.startTimeoutMs = options.startTimeoutMs ?? 5_000;
    this.secrets = Object.values(options.customHeaders ?? {}).filter((v) => typeof v === 'string' && v.length >= 4);
    this.adminClient =
      options.admin === undefined
        ? undefined
        : options.admin instanceof UnleashAdmin
          ? options.admin
          : new UnleashAdmin({ flagPrefix: this.flagPrefix, ...options.admin });
    if (this.adminClient && this.adminClient.flagPrefix !== this.flagPrefix) {
      throw new MidflightError(
        'INVALID_OPTION',
        `UnleashFlags: the admin client's flag prefix "${this.adminClient.flagPrefix}" differs from "${this.flagPrefix}"`,
      );
    }
    const storage =
      options.storageProvider ??
      new AtomicFileStorage<ClientFeaturesResponse>(options.backupPath ?? tmpdir(), this.flagPrefix);
    this.client = new Unleash({
      url: options.url,
      appName: options.appName,
      ...(options.instanceId !== undefined ? { instanceId: options.instanceId } : {}),
      ...(options.customHeaders ? { customHeaders: { ...options.customHeaders } } : {}),
      ...(options.refreshInterval !== undefined ? { refreshInterval: options.refreshInterval } : {}),
      ...(options.project !== undefined ? { projectName: options.project } : {}),
      ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
      namePrefix: this.flagPrefix,
      storageProvider: storage,
      disableMetrics: options.disableMetrics ?? false,
      disableAutoStart: true,
    });
    this.client.on(UnleashEvents.Error, (e: unknown) => this.onError(e));
    this.client.on(UnleashEvents.Warn, (w: unknown) => this.onWarn(w));
    this.client.on(UnleashEvents.Changed, () => {
      this.onContact();
      for (const fn of this.listeners) {
        try {
          fn();
        } catch (e) {
          this.logger.error('unleash_listener_failed', { reason: safeReason(e) });
        }
      }
    });
    this.client.on(UnleashEvents.Unchanged, () => this.onContact());
    this.client.on(UnleashEvents.Ready, () => {
      this.hasData = true;
    });
  }

  /**
   * Connects and waits for the first fetch (at most `startTimeoutMs`). Never throws for an
   * unreachable Unleash: the backup, or else the safe stage, applies until it answers.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      const timers: NodeJS.Timeout[] = [];
      const after = (ms: number, resolve: () => void) => {
        const t = setTimeout(resolve, ms);
        t.unref();
        timers.push(t);
      };
      // Flags from the backup file: give the first fetch a moment to bring fresher ones, but do
      // not wait out unleash-client's retries (~3 s per fetch when Unleash is down).
      const fromBackup = new Promise<void>((resolve) =>
        this.client.once(UnleashEvents.Ready, () => {
          if (!this.client.isSynchronized()) after(Math.min(BACKUP_GRACE_MS, this.startTimeoutMs), resolve);
        }),
      );
      try {
        await Promise.race([this.client.start(), fromBackup, new Promise<void>((r) => after(this.startTimeoutMs, r))]);
      } catch (e) {
        this.onError(e);
      } finally {
        for (const t of timers) clearTimeout(t);
      }
      if (!this.client.isSynchronized()) {
        this.logger.warn('unleash_not_synchronized_at_start', {
          fromBackup: this.ready,
          reason: this.lastError ?? 'no answer yet',
        });
      }
    })();
    return this.started;
  }

  /** The migration's stage and rollout, or `undefined` when no flag data has been seen. */
  get(migration: string): FlagState | undefined {
    let name = this.names.get(migration);
    if (name === undefined) {
      name = flagName(this.flagPrefix, migration);
      this.names.set(migration, name);
    }
    const def = this.client.getFeatureToggleDefinition(name) as ToggleDef | undefined;
    if (!def) {
      if (this.ready)
        this.reportOnce(migration, 'missing', () => this.logger.warn('unleash_flag_missing', this.fields(migration)));
      return this.lastValid.get(migration);
    }
    const cached = this.cache.get(migration);
    if (cached?.def === def) return cached.state ?? this.lastValid.get(migration);
    const parsed = parseToggle(def);
    if (parsed.problem !== undefined) {
      this.reportOnce(migration, parsed.problem, () =>
        this.logger.error('unleash_flag_invalid', { ...this.fields(migration), problem: parsed.problem }),
      );
      this.cache.set(migration, { def, state: undefined });
      return this.lastValid.get(migration);
    }
    for (const note of parsed.notes) {
      this.reportOnce(`${migration}\0${note}`, note, () =>
        this.logger.warn('unleash_flag_note', { ...this.fields(migration), note }),
      );
    }
    this.reportOnce(migration, 'ok', () => {});
    this.cache.set(migration, { def, state: parsed.state });
    this.lastValid.set(migration, parsed.state);
    return parsed.state;
  }

  /** Sets a migration's state through the admin API (needs the `admin` option). */
  async write(migration: string, state: FlagState): Promise<void> {
    await this.admin.write(migration, state);
  }

  /** The admin API client (needs the `admin` option). */
  get admin(): UnleashAdmin {
    if (!this.adminClient) {
      throw new MidflightError(
        'INVALID_OPTION',
        'UnleashFlags: changing stages needs `admin` (Unleash admin API url and token) in the options',
      );
    }
    return this.adminClient;
  }

  /** Flags are known (from Unleash or the backup). */
  get ready(): boolean {
    return this.hasData || this.synchronized;
  }

  status(): UnleashFlagsStatus {
    return {
      ready: this.ready,
      synchronized: this.synchronized,
      reachable: this.reachable,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.lastContactAt ? { lastContactAt: this.lastContactAt } : {}),
    };
  }

  /** Called after each fetch that changed the flags. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    // unleash-client 6 removes the repository's listeners on destroy, but a fetch still in
    // flight (e.g. retrying during an outage) then emits 'error' on it, and an 'error' event
    // nobody listens to crashes the process. Keep a listener there.
    const repository = (this.client as unknown as { repository?: { on?: unknown } }).repository;
    if (repository && typeof repository.on === 'function') (repository as EventEmitter).on('error', () => {});
  }

  private onContact(): void {
    this.synchronized = true;
    this.lastContactAt = new Date();
    if (!this.reachable && this.lastError !== undefined) this.logger.info('unleash_reachable', {});
    this.reachable = true;
    this.lastError = undefined;
  }

  private onError(e: unknown): void {
    if (this.closed) return;
    const reason = this.reasonOf(e);
    if (/Metrics error/.test(reason)) {
      this.logger.debug('unleash_metrics_failed', { reason });
      return;
    }
    if (/not allowed to connect/.test(reason)) {
      // unleash-client stops refreshing for good after a 401/403: say so loudly.
      this.logger.error('unleash_unauthorized', { reason: `${reason} (last known flags stay in force)` });
      this.reachable = false;
      this.lastError = reason;
    } else if (/Repository error|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|timeout/i.test(reason)) {
      this.unreachable(reason);
    } else {
      this.logger.error('unleash_error', { reason });
    }
  }

  private onWarn(w: unknown): void {
    if (this.closed) return;
    const reason = this.reasonOf(w);
    // 404/429/5xx: unreachable in effect; the client backs off and keeps its flags.
    if (/Backing off|responded/.test(reason)) this.unreachable(reason);
    else this.logger.warn('unleash_warning', { reason });
  }

  private unreachable(reason: string): void {
    if (this.reachable || this.lastError === undefined) {
      this.logger.warn('unleash_unreachable', { reason, lastKnown: this.ready });
    }
    this.reachable = false;
    this.lastError = reason;
  }

  /** A loggable reason: tokens removed before anything is cut short. */
  private reasonOf(e: unknown): string {
    const err = e instanceof Error ? e : new Error(String(e));
    const copy = Object.assign(new Error(this.redact(err.message)), { code: (err as { code?: unknown }).code });
    return this.redact(safeReason(copy));
  }

  private reportOnce(key: string, what: string, log: () => void): void {
    if (this.reported.get(key) === what) return;
    this.reported.set(key, what);
    log();
  }

  private fields(migration: string) {
    return { migration, flag: `${this.flagPrefix}${migration}` };
  }

  private redact(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join('<redacted>');
    return out;
  }
}
