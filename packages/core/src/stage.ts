import { ConfigError } from './errors.js';

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
