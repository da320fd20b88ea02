import type { Side, Stage } from './stage.js';

export type ReadReason = 'stage' | 'rollout' | 'read_your_writes' | 'unroutable';

/** Where one read goes, and whether the other side is read too for comparison. */
export interface ReadDecision {
  readonly side: Side;
  readonly compare: boolean;
  readonly reason: ReadReason;
}

export interface RouteInput {
  readonly stage: Stage;
  /** 0–100: share of users reading the target in `live`. */
  readonly rollout: number;
  readonly userId?: string | undefined;
  /** The user has a write on this table whose mirror has not landed yet. */
  readonly pendingWrite: boolean;
  /** The target can answer this table's queries as they are (no column mapping in the way). */
  readonly routable: boolean;
  readonly sampleRate: number;
  readonly salt: string;
  readonly random?: () => number;
}

/**
 * The read routing rule, in one place:
 * `off`/`dualwrite` read the source; `shadow` reads the source and compares a sample with the
 * target; `live` sends the rollout share of users (sticky by user id) to the target and
 * compares a sample with the other side, except that a user whose own write is still being
 * mirrored reads the authoritative source; `rampdown`/`complete` read the target.
 */
export function routeRead(input: RouteInput): ReadDecision {
  const sample = () => input.sampleRate > 0 && (input.random ?? Math.random)() < input.sampleRate;
  switch (input.stage) {
    case 'off':
    case 'dualwrite':
      return { side: 'source', compare: false, reason: 'stage' };
    case 'shadow':
      return { side: 'source', compare: input.routable && sample(), reason: 'stage' };
    case 'live': {
      if (!input.routable) return { side: 'source', compare: false, reason: 'unroutable' };
      if (input.pendingWrite) return { side: 'source', compare: false, reason: 'read_your_writes' };
      const toTarget =
        input.rollout >= 100 ||
        (input.userId !== undefined && input.rollout > 0 && bucket(input.salt, input.userId) < input.rollout);
      return { side: toTarget ? 'target' : 'source', compare: sample(), reason: 'rollout' };
    }
    case 'rampdown':
    case 'complete':
      return input.routable
        ? { side: 'target', compare: false, reason: 'stage' }
        : { side: 'source', compare: false, reason: 'unroutable' };
  }
}

/** A stable bucket in [0, 100) for a user: the same user always lands on the same side. */
export function bucket(salt: string, userId: string): number {
  // FNV-1a, 32 bit: cheap, stable across processes and versions.
  let h = 0x811c9dc5;
  const s = `${salt}:${userId}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h % 10000) / 100;
}
