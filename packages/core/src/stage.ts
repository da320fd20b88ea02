import { ConfigError, MidflightError } from './errors.js';

/**
 * The stages of a migration, named after LaunchDarkly's migration flags.
 *
 * | stage | reads | writes (authoritative → mirrored) |
 * |---|---|---|
 * | off | source | source |
 * | dualwrite | source | source → target |
 * | shadow | source, target compared | source → target |
 * | live | target for the rollout %, else source | source → target |
 * | rampdown | target | target → source |
 * | complete | target | target |
 */
export const STAGES = ['off', 'dualwrite', 'shadow', 'live', 'rampdown', 'complete'] as const;
export type Stage = (typeof STAGES)[number];
export type Side = 'source' | 'target';

export function isStage(value: unknown): value is Stage {
  return typeof value === 'string' && (STAGES as readonly string[]).includes(value);
}

export function parseStage(value: unknown, where: string): Stage {
  if (!isStage(value)) {
    throw new ConfigError('INVALID_STAGE', `${where}: "${String(value)}" is not a stage (one of ${STAGES.join(', ')})`);
  }
  return value;
}

/** Which side's write decides the answer. */
export function authority(stage: Stage): Side {
  return stage === 'rampdown' || stage === 'complete' ? 'target' : 'source';
}

/** Whether writes in this stage are mirrored to the other side. */
export function mirrors(stage: Stage): boolean {
  return stage !== 'off' && stage !== 'complete';
}

export function stageIndex(stage: Stage): number {
  return STAGES.indexOf(stage);
}

export function otherSide(side: Side): Side {
  return side === 'source' ? 'target' : 'source';
}

export interface StageMoveContext {
  /** Retry jobs still waiting, and dead letters, for the migration. */
  readonly queued: number;
  readonly deadLetters: number;
  readonly force?: boolean;
}

/**
 * Checks a stage change asked for by an operator: forward one step at a time, back any time;
 * the authority flip (live ↔ rampdown) only through `midflight cutover`; no move past `shadow`
 * or `live` while retries or dead letters are pending, unless forced.
 */
export function checkStageMove(from: Stage, to: Stage, ctx: StageMoveContext): void {
  const a = stageIndex(from);
  const b = stageIndex(to);
  if (authority(from) !== authority(to) && from !== 'off' && to !== 'off') {
    throw new MidflightError(
      'STAGE_NEEDS_CUTOVER',
      `${from} → ${to} flips write authority: run \`midflight cutover${authority(to) === 'source' ? ' --reverse' : ''}\``,
    );
  }
  if (b > a + 1) {
    throw new MidflightError(
      'STAGE_SKIP',
      `${from} → ${to} skips ${STAGES.slice(a + 1, b).join(', ')}: move one stage at a time`,
    );
  }
  if (
    b > a &&
    (from === 'shadow' || from === 'live' || from === 'rampdown') &&
    !ctx.force &&
    (ctx.queued > 0 || ctx.deadLetters > 0)
  ) {
    throw new MidflightError(
      'STAGE_BLOCKED',
      `${from} → ${to} refused: ${ctx.queued} retries queued, ${ctx.deadLetters} dead letters (drain or fix them, or pass --force)`,
    );
  }
}
