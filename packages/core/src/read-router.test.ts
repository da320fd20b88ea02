import { describe, expect, it } from 'vitest';
import { bucket, type RouteInput, routeRead } from './read-router.js';

const base: RouteInput = { stage: 'live', rollout: 30, pendingWrite: false, routable: true, sampleRate: 0, salt: 'm' };

describe('read routing', () => {
  it.each([
    ['off', 'source'],
    ['dualwrite', 'source'],
    ['shadow', 'source'],
    ['rampdown', 'target'],
    ['complete', 'target'],
  ] as const)('%s reads from the %s', (stage, side) => {
    expect(routeRead({ ...base, stage, userId: 'u1' }).side).toBe(side);
  });

  it('shadow compares a sample with the target', () => {
    expect(routeRead({ ...base, stage: 'shadow', sampleRate: 1 }).compare).toBe(true);
    expect(routeRead({ ...base, stage: 'shadow', sampleRate: 0 }).compare).toBe(false);
    expect(routeRead({ ...base, stage: 'shadow', sampleRate: 0.5, random: () => 0.7 }).compare).toBe(false);
  });

  it('live sends about the rollout share of users to the target, each user always to the same side', () => {
    const users = Array.from({ length: 4000 }, (_, i) => `user-${i}`);
    const first = users.map((userId) => routeRead({ ...base, userId }).side);
    const again = users.map((userId) => routeRead({ ...base, userId }).side);
    expect(again).toEqual(first);
    const share = first.filter((s) => s === 'target').length / users.length;
    expect(share).toBeGreaterThan(0.27);
    expect(share).toBeLessThan(0.33);
    // Raising the rollout only moves users from source to target, never back.
    const more = users.map((userId) => routeRead({ ...base, rollout: 60, userId }).side);
    for (const [i, s] of first.entries()) if (s === 'target') expect(more[i]).toBe('target');
  });

  it('a user whose write is still being mirrored reads the source', () => {
    const user = Array.from({ length: 100 }, (_, i) => `u${i}`).find((u) => bucket('m', u) < 30) as string;
    expect(routeRead({ ...base, userId: user }).side).toBe('target');
    expect(routeRead({ ...base, userId: user, pendingWrite: true })).toMatchObject({
      side: 'source',
      reason: 'read_your_writes',
    });
  });

  it('anonymous reads go to the target only at 100 %', () => {
    expect(routeRead({ ...base, rollout: 99 }).side).toBe('source');
    expect(routeRead({ ...base, rollout: 100 }).side).toBe('target');
  });

  it('a table the target cannot answer as queried stays on the source', () => {
    expect(routeRead({ ...base, rollout: 100, routable: false })).toMatchObject({
      side: 'source',
      reason: 'unroutable',
    });
  });
});
