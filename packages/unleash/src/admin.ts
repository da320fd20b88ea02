import { type FlagState, MidflightError, type Stage, safeReason } from '@midflight/core';
import {
  checkRollout,
  DEFAULT_FLAG_PREFIX,
  flagName,
  parseToggle,
  ROLLOUT_STRATEGY,
  type StrategyDef,
  stageVariant,
  type VariantDef,
} from './scheme.js';

export interface UnleashAdminOptions {
  /** Unleash's API URL, as given to unleash-client (`http://unleash:4242/api`); `/api` is added when missing. */
  readonly url: string;
  /** An admin API token, or a personal access token. Sent as `Authorization`, never logged. */
  readonly token: string;
  /** Default `default`. */
  readonly project?: string;
  /** The environment the apps' backend token reads. Default `development`. */
  readonly environment?: string;
  /** Default `midflight.` (so migration `users-to-pg` is flag `midflight.users-to-pg`). */
  readonly flagPrefix?: string;
  /** Per request. Default 10 s. */
  readonly timeoutMs?: number;
  /** Default: the global `fetch`. */
  readonly fetch?: typeof fetch;
}

/** A migration's flag as the admin API sees it in the configured environment. */
export interface UnleashFlagStatus {
  readonly flag: string;
  readonly environment: string;
  /** `false`: the kill switch is on. */
  readonly enabled: boolean;
  /** What the apps get: `off` everywhere while disabled; `undefined` when the flag stores no valid stage. */
  readonly state: FlagState | undefined;
  /** The stage and rollout the flag stores (what enabling it returns to). */
  readonly stored: FlagState | undefined;
  /** Why the flag does not hold a valid stage, if it does not. */
  readonly problem?: string;
}

/** An admin API call that failed: `status` is the HTTP status, 0 when Unleash was not reached. */
export class UnleashAdminError extends MidflightError {
  override readonly name = 'UnleashAdminError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super('FLAGS_UNAVAILABLE', message);
  }
}

interface FeatureEnvironment {
  readonly enabled: boolean;
  readonly strategies?: ReadonlyArray<StrategyDef & { title?: string | null; sortOrder?: number }>;
  readonly variants?: readonly VariantDef[];
}

/**
 * The few Unleash admin API calls the CLI needs to move a migration's flag (Unleash 5+ paths,
 * checked against Unleash 8): create it, set its stage (strategy variant), its read rollout
 * (`flexibleRollout` percentage), and turn it on or off (the kill switch).
 *
 * @example
 * const admin = new UnleashAdmin({ url: 'http://unleash:4242/api', token: process.env.UNLEASH_ADMIN_TOKEN!, environment: 'production' })
 * await admin.ensureFlag('users-to-pg')          // off, 0 %, enabled
 * await admin.setStage('users-to-pg', 'dualwrite')
 * await admin.setRollout('users-to-pg', 30)
 * await admin.disable('users-to-pg')             // kill switch: everything back on the source
 */
export class UnleashAdmin {
  readonly api: string;
  readonly project: string;
  readonly environment: string;
  readonly flagPrefix: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(options: UnleashAdminOptions) {
    if (!options.url) throw new MidflightError('INVALID_OPTION', 'UnleashAdmin: `url` is required');
    if (!options.token)
      throw new MidflightError('INVALID_OPTION', 'UnleashAdmin: `token` (an admin API token) is required');
    const base = options.url.replace(/\/+$/, '');
    this.api = base.endsWith('/api') ? base : `${base}/api`;
    this.token = options.token;
    this.project = options.project ?? 'default';
    this.environment = options.environment ?? 'development';
    this.flagPrefix = options.flagPrefix ?? DEFAULT_FLAG_PREFIX;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetchFn = options.fetch ?? fetch;
  }

  flagName(migration: string): string {
    return flagName(this.flagPrefix, migration);
  }

  /** The flag's state in the environment, or `undefined` when the flag does not exist. */
  async status(migration: string): Promise<UnleashFlagStatus | undefined> {
    const env = await this.featureEnvironment(this.flagName(migration));
    return env && this.describe(migration, env);
  }

  /**
   * Creates the flag when missing — an `operational` flag with a `flexibleRollout` strategy
   * (stickiness `userId`) whose one variant is `initial.stage` — and enables it in the
   * environment. An existing flag keeps its state, except that a missing rollout strategy or
   * stage is added from `initial`. Safe to run from several places at once.
   */
  async ensureFlag(migration: string, initial: FlagState = { stage: 'off', rollout: 0 }): Promise<UnleashFlagStatus> {
    const flag = this.flagName(migration);
    const variant = stageVariant(initial.stage, initial.tables);
    const rollout = checkRollout(initial.rollout);
    let env = await this.featureEnvironment(flag);
    let created = false;
    if (!env) {
      const res = await this.call('POST', `/admin/projects/${enc(this.project)}/features`, {
        name: flag,
        type: 'operational',
        description: `Midflight stage and read rollout of migration "${migration}". Variant = stage; gradual rollout % = share of users reading the target in live.`,
        impressionData: false,
      });
      // 409: someone else created it in between — fine.
      if (!res.ok && res.status !== 409) throw await this.failure('create flag', res);
      created = res.ok;
      env = await this.featureEnvironment(flag);
      if (!env)
        throw new UnleashAdminError(`flag ${flag} was created but has no environment "${this.environment}"`, 404);
    }
    const strategy = this.rolloutStrategy(env);
    if (!strategy) {
      await this.expectOk(
        'add rollout strategy',
        await this.call('POST', `${this.envPath(flag)}/strategies`, {
          name: ROLLOUT_STRATEGY,
          constraints: [],
          parameters: { rollout: String(rollout), stickiness: 'userId', groupId: flag },
          variants: [variant],
        }),
      );
    } else if (!(strategy.variants?.length ?? 0) && !(env.variants?.length ?? 0)) {
      await this.putStrategy(flag, strategy, { variants: [variant] });
    }
    // A new flag starts enabled (its stage says what to do); an existing one keeps its switch.
    if (created) await this.enable(migration);
    return (await this.status(migration))!;
  }

  /**
   * Sets the stage (and, when given, replaces the per-table overrides; `{}` clears them).
   * Does not touch the kill switch.
   */
  async setStage(migration: string, stage: Stage, tables?: Readonly<Record<string, Stage>>): Promise<void> {
    const { flag, strategy, stored } = await this.editable(migration);
    const keep = tables ?? stored?.tables;
    await this.putStrategy(flag, strategy, { variants: [stageVariant(stage, keep)] });
  }

  /** Sets the share (0–100) of users whose reads go to the target in `live`. */
  async setRollout(migration: string, percent: number): Promise<void> {
    const { flag, strategy } = await this.editable(migration);
    await this.putStrategy(flag, strategy, {
      parameters: { ...strategy.parameters, rollout: String(checkRollout(percent)) },
    });
  }

  /**
   * Makes the flag say exactly `state`: stage, overrides and rollout in one update, and the
   * flag enabled (this is how the CLI re-enables after a kill switch: through the stage checks).
   */
  async write(migration: string, state: FlagState): Promise<void> {
    const status = await this.ensureFlag(migration, state);
    const { flag, strategy } = await this.editable(migration);
    await this.putStrategy(flag, strategy, {
      variants: [stageVariant(state.stage, state.tables)],
      parameters: { ...strategy.parameters, rollout: String(checkRollout(state.rollout)) },
    });
    if (!status.enabled) await this.enable(migration);
  }

  /** Turns the flag on in the environment: the stored stage is in force again. */
  async enable(migration: string): Promise<void> {
    await this.expectOk('enable', await this.call('POST', `${this.envPath(this.flagName(migration))}/on`));
  }

  /** The kill switch: every app instance goes to `off` (reads and writes on the source) at its next refresh. */
  async disable(migration: string): Promise<void> {
    await this.expectOk('disable', await this.call('POST', `${this.envPath(this.flagName(migration))}/off`));
  }

  private describe(migration: string, env: FeatureEnvironment): UnleashFlagStatus {
    const parsed = parseToggle(env);
    return {
      flag: this.flagName(migration),
      environment: this.environment,
      enabled: env.enabled,
      state: parsed.state,
      stored: parsed.stored,
      ...(parsed.problem ? { problem: parsed.problem } : {}),
    };
  }

  private async editable(migration: string) {
    const flag = this.flagName(migration);
    let env = await this.featureEnvironment(flag);
    if (!env || !this.rolloutStrategy(env)) {
      await this.ensureFlag(migration);
      env = await this.featureEnvironment(flag);
    }
    const strategy = env && this.rolloutStrategy(env);
    if (!env || !strategy) throw new UnleashAdminError(`flag ${flag} has no ${ROLLOUT_STRATEGY} strategy`, 404);
    return { flag, strategy, stored: parseToggle({ ...env, enabled: true }).stored };
  }

  private rolloutStrategy(env: FeatureEnvironment) {
    return env.strategies?.find((s) => s.name === ROLLOUT_STRATEGY && s.disabled !== true);
  }

  private async putStrategy(
    flag: string,
    s: StrategyDef & { title?: string | null; sortOrder?: number },
    change: { variants?: readonly VariantDef[]; parameters?: Readonly<Record<string, unknown>> },
  ): Promise<void> {
    if (!s.id) throw new UnleashAdminError(`flag ${flag}: the rollout strategy has no id`, 0);
    const body = {
      name: s.name,
      title: s.title ?? null,
      disabled: false,
      constraints: s.constraints ?? [],
      parameters: change.parameters ?? s.parameters ?? {},
      variants: change.variants ?? s.variants ?? [],
      ...(s.segments ? { segments: s.segments } : {}),
      ...(s.sortOrder !== undefined ? { sortOrder: s.sortOrder } : {}),
    };
    await this.expectOk(
      'update strategy',
      await this.call('PUT', `${this.envPath(flag)}/strategies/${enc(s.id)}`, body),
    );
  }

  private async featureEnvironment(flag: string): Promise<FeatureEnvironment | undefined> {
    const res = await this.call('GET', this.envPath(flag));
    if (res.status === 404) return undefined;
    if (!res.ok) throw await this.failure('read flag', res);
    return (await res.json()) as FeatureEnvironment;
  }

  private envPath(flag: string): string {
    return `/admin/projects/${enc(this.project)}/features/${enc(flag)}/environments/${enc(this.environment)}`;
  }

  private async call(method: string, path: string, body?: unknown): Promise<Response> {
    try {
      return await this.fetchFn(`${this.api}${path}`, {
        method,
        headers: {
          authorization: this.token,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw new UnleashAdminError(
        `Unleash admin API not reached (${method} ${path}): ${this.redact(safeReason(e))}`,
        0,
      );
    }
  }

  private async expectOk(what: string, res: Response): Promise<void> {
    if (!res.ok) throw await this.failure(what, res);
    await res.body?.cancel();
  }

  private async failure(what: string, res: Response): Promise<UnleashAdminError> {
    let detail = '';
    try {
      const doc = (await res.json()) as { message?: unknown };
      if (typeof doc.message === 'string') detail = `: ${doc.message}`;
    } catch {
      // Not JSON: the status says enough.
    }
    const hint =
      res.status === 401 || res.status === 403 ? ' (check the admin token and its permissions on the project)' : '';
    return new UnleashAdminError(
      `Unleash admin API: ${what} → HTTP ${res.status}${this.redact(detail).slice(0, 300)}${hint}`,
      res.status,
    );
  }

  private redact(text: string): string {
    return this.token.length >= 4 ? text.split(this.token).join('<token>') : text;
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}
