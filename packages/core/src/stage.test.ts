import { describe, expect, it } from 'vitest';
import { checkStageMove } from './stage.js';

const clean = { queued: 0, deadLetters: 0 };

describe('stage moves', () => {
  it('go forward one step at a time and back any time', () => {
    expect(() => checkStageMove('off', 'dualwrite', clean)).not.toThrow();
    expect(() => checkStageMove('dualwrite', 'live', clean)).toThrow(expect.objectContaining({ code: 'STAGE_SKIP' }));
    expect(() => checkStageMove('live', 'dualwrite', clean)).not.toThrow();
    expect(() => checkStageMove('rampdown', 'complete', clean)).not.toThrow();
  });

  it('flip write authority only through a cutover', () => {
    expect(() => checkStageMove('live', 'rampdown', clean)).toThrow(
      expect.objectContaining({ code: 'STAGE_NEEDS_CUTOVER' }),
    );
    expect(() => checkStageMove('rampdown', 'live', clean)).toThrow(
      expect.objectContaining({ code: 'STAGE_NEEDS_CUTOVER' }),
    );
  });

  it('do not move past shadow or live with retries or dead letters pending, unless forced', () => {
    expect(() => checkStageMove('shadow', 'live', { queued: 3, deadLetters: 0 })).toThrow(
      expect.objectContaining({ code: 'STAGE_BLOCKED' }),
    );
    expect(() => checkStageMove('shadow', 'live', { queued: 0, deadLetters: 1 })).toThrow(
      expect.objectContaining({ code: 'STAGE_BLOCKED' }),
    );
    expect(() => checkStageMove('shadow', 'live', { queued: 3, deadLetters: 1, force: true })).not.toThrow();
    expect(() => checkStageMove('dualwrite', 'shadow', { queued: 3, deadLetters: 0 })).not.toThrow();
  });
});
