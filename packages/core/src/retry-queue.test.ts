import { describe, expect, it } from 'vitest';
import { InProcessRetryQueue, type RetryJob } from './retry-queue.js';

const job = (key: number): RetryJob => ({ migration: 'm', table: 't', key: [key], epoch: 0, from: 'source' });

async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('in-process retry queue', () => {
  it('keeps one job per key, retries with backoff and dead-letters after the attempts', async () => {
    const calls: number[] = [];
    const q = new InProcessRetryQueue({ attempts: 3, backoffMs: 2, maxBackoffMs: 10 });
    q.start(async (j) => {
      calls.push(j.key[0] as number);
      if (j.key[0] === 2) throw new Error('target says no');
    });
    for (let i = 0; i < 5; i++) await q.enqueue(job(1), 'first failure');
    await q.enqueue(job(2), 'bad row');
    await until(async () => (await q.size()) === 0);
    expect(calls.filter((k) => k === 1)).toHaveLength(1);
    expect(calls.filter((k) => k === 2)).toHaveLength(3);
    const dead = await q.deadLetters();
    expect(dead).toMatchObject([{ table: 't', key: [2], attempts: 3, reason: 'target says no' }]);
    expect(await q.retryDeadLetters()).toBe(1);
    await until(async () => (await q.deadLetters()).length === 1);
    await q.close();
  });
});
