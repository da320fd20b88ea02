import { ConfigError, type FlagState, isStage, type Stage } from '@midflight/core';

/**
 * How a migration lives in Unleash — one flag per migration:
 *
 * - **name**: `<prefix><migration>`, prefix `midflight.` by default (`midflight.users-to-pg`).
 * - **stage**: the flag's one *strategy variant* (on its `flexibleRollout` strategy). The
 *   variant's name is the stage: `off`, `dualwrite`, `shadow`, `live`, `rampdown`, `complete`.
 * - **per-table overrides**: the variant's optional JSON payload
 *   `{ "tables": { "orders": "shadow" } }` (a `"stage"` key, if present, must equal the name).
 * - **read rollout** (the share of users reading the target in `live`): the `rollout`
 *   parameter (0–100) of the `flexibleRollout` strategy, stickiness `userId`. A `default`
 *   strategy instead means 100, no strategy 0. Midflight's router does the sticky bucketing
 *   itself (by user id, salted with the migration name); Unleash never evaluates the flag per
 *   user, so strategy constraints and segments are not applied.
 * - **kill switch**: the flag disabled in the environment → `off` for every table (reads and
 *   writes back on the source), whatever the variant says. Enabling it again returns to the
 *   stored variant at once; `midflight stage set` re-enables through the stage checks instead.
 *
 * Anything else (no variant, several weighted variants, an unknown stage, a bad payload or
 * rollout) is a *problem*: the provider keeps the last valid state and reports it.
 */
export const DEFAULT_FLAG_PREFIX = 'midflight.';
export const ROLLOUT_STRATEGY = 'flexibleRollout';

/** The parts of an Unleash variant definition this scheme reads and writes. */
export interface VariantDef {
  readonly name: string;
  readonly weight?: number;
  readonly weightType?: string;
  readonly stickiness?: string;
  readonly payload?: { readonly type: string; readonly value: string } | undefined;
}

/** The parts of a strategy (client API, or admin API feature environment) this scheme reads. */
export interface StrategyDef {
  readonly id?: string;
  readonly name: string;
  readonly parameters?: Readonly<Record<string, unknown>> | undefined;
  readonly variants?: readonly VariantDef[] | undefined;
  readonly constraints?: readonly unknown[] | undefined;
  readonly segments?: readonly unknown[] | undefined;
  readonly disabled?: boolean | null | undefined;
}

/** A flag as unleash-client holds it (`getFeatureToggleDefinition`), or as the admin API returns one environment of it. */
export interface ToggleDef {
  readonly enabled: boolean;
  readonly strategies?: readonly StrategyDef[] | undefined;
  /** Flag-level (legacy, per environment) variants: read when no strategy has variants. */
  readonly variants?: readonly VariantDef[] | undefined;
}

export type Parsed =
  | {
      /** What the app uses: `off` everywhere when the flag is disabled. */
      readonly state: FlagState;
      /** What the flag stores (what enabling it returns to); `undefined` when it stores nothing valid. */
      readonly stored: FlagState | undefined;
      /** Things that are ignored but worth telling (constraints, other stickiness). */
      readonly notes: readonly string[];
      readonly problem?: undefined;
    }
  | { readonly problem: string; readonly state?: undefined; readonly stored?: undefined; readonly notes?: undefined };

const NAME = /^[A-Za-z0-9._~-]+$/;

/** The Unleash flag name of a migration; throws a `ConfigError` when Unleash would refuse it. */
export function flagName(prefix: string, migration: string): string {
  const name = `${prefix}${migration}`;
  if (!NAME.test(name) || name.length > 100) {
    throw new ConfigError(
      'INVALID_OPTION',
      `Unleash flag name "${name}" is not URL-friendly (letters, digits, . _ ~ -; at most 100 characters)`,
    );
  }
  return name;
}

/** Reads a migration's state from a flag definition. Never throws. */
export function parseToggle(def: ToggleDef): Parsed {
  const stored = parseStored(def);
  if (!def.enabled) {
    // The kill switch wins over anything the flag stores, valid or not.
    return { state: { stage: 'off', rollout: 0 }, stored: 'problem' in stored ? undefined : stored.state, notes: [] };
  }
  if ('problem' in stored) return { problem: stored.problem };
  return { state: stored.state, stored: stored.state, notes: stored.notes };
}

function parseStored(def: ToggleDef): { state: FlagState; notes: string[] } | { problem: string } {
  const strategies = (def.strategies ?? []).filter((s) => s.disabled !== true);
  const carrier = strategies.find((s) => (s.variants?.length ?? 0) > 0);
  const variants = carrier?.variants ?? def.variants ?? [];
  const weighted = variants.length === 1 ? variants : variants.filter((v) => (v.weight ?? 0) > 0);
  if (weighted.length !== 1) {
    return {
      problem:
        weighted.length === 0
          ? 'no stage: the flag needs one strategy variant named after the stage'
          : `${weighted.length} weighted variants (${weighted.map((v) => v.name).join(', ')}): the flag needs exactly one, named after the stage`,
    };
  }
  const variant = weighted[0]!;
  if (!isStage(variant.name)) return { problem: `variant "${variant.name}" is not a stage` };
  const tables = parsePayload(variant);
  if (typeof tables === 'string') return { problem: tables };

  const notes: string[] = [];
  const rolloutStrategy =
    carrier?.name === ROLLOUT_STRATEGY ? carrier : strategies.find((s) => s.name === ROLLOUT_STRATEGY);
  let rollout = 0;
  if (rolloutStrategy) {
    const raw = rolloutStrategy.parameters?.rollout;
    rollout = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
    if (!(rollout >= 0 && rollout <= 100)) return { problem: `rollout must be 0–100, got "${String(raw)}"` };
    const stickiness = rolloutStrategy.parameters?.stickiness;
    if (stickiness !== undefined && stickiness !== 'userId' && stickiness !== 'default') {
      notes.push(`stickiness "${String(stickiness)}" is ignored: reads are bucketed by user id`);
    }
  } else if (strategies.some((s) => s.name === 'default')) {
    rollout = 100;
  }
  if (strategies.some((s) => (s.constraints?.length ?? 0) > 0 || (s.segments?.length ?? 0) > 0)) {
    notes.push('strategy constraints and segments are not evaluated: the stage applies to every instance and user');
  }
  return { state: { stage: variant.name, rollout, ...(tables ? { tables } : {}) }, notes };
}

function parsePayload(variant: VariantDef): Readonly<Record<string, Stage>> | undefined | string {
  const payload = variant.payload;
  if (!payload || payload.value.trim() === '') return undefined;
  if (payload.type !== 'json')
    return `variant "${variant.name}": payload must be JSON ({ "tables": { … } }), got ${payload.type}`;
  let doc: unknown;
  try {
    doc = JSON.parse(payload.value);
  } catch {
    return `variant "${variant.name}": payload is not valid JSON`;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return `variant "${variant.name}": payload must be a JSON object`;
  }
  const { stage, tables, ...rest } = doc as { stage?: unknown; tables?: unknown };
  const extra = Object.keys(rest);
  if (extra.length) return `variant "${variant.name}": unknown payload keys ${extra.join(', ')}`;
  if (stage !== undefined && stage !== variant.name) {
    return `variant "${variant.name}": payload stage "${String(stage)}" differs from the variant name`;
  }
  if (tables === undefined) return undefined;
  if (typeof tables !== 'object' || tables === null || Array.isArray(tables)) {
    return `variant "${variant.name}": payload "tables" must be an object of table → stage`;
  }
  const out: Record<string, Stage> = {};
  for (const [table, s] of Object.entries(tables)) {
    if (!isStage(s)) return `variant "${variant.name}": table "${table}": "${String(s)}" is not a stage`;
    out[table] = s;
  }
  return Object.keys(out).length ? out : undefined;
}

/** The strategy variant that stores `stage` (and the per-table overrides). */
export function stageVariant(
  stage: Stage,
  tables?: Readonly<Record<string, Stage>>,
): VariantDef & {
  weight: number;
  weightType: string;
  stickiness: string;
} {
  if (!isStage(stage)) throw new ConfigError('INVALID_STAGE', `"${String(stage)}" is not a stage`);
  for (const [t, s] of Object.entries(tables ?? {})) {
    if (!isStage(s)) throw new ConfigError('INVALID_STAGE', `table "${t}": "${String(s)}" is not a stage`);
  }
  const hasTables = tables !== undefined && Object.keys(tables).length > 0;
  return {
    name: stage,
    weight: 1000,
    weightType: 'variable',
    stickiness: 'default',
    ...(hasTables ? { payload: { type: 'json', value: JSON.stringify({ tables }) } } : {}),
  };
}

export function checkRollout(rollout: number): number {
  if (typeof rollout !== 'number' || !(rollout >= 0 && rollout <= 100)) {
    throw new ConfigError('INVALID_OPTION', `rollout must be 0–100, got ${String(rollout)}`);
  }
  return rollout;
}
