import { randomUUID } from 'node:crypto';
import type { Engine, Side } from '@midflight/core';
import type { RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';

/** Redis keys and channel of one migration's coordination. */
function keys(prefix: string, migration: string) {
  const base = `${prefix}:cutover:${migration}`;
  return {
    instances: `${base}:instances`,
    freeze: `${base}:freeze`,
    acks: (id: string) => `${base}:acks:${id}`,
    authority: `${base}:authority`,
    channel: `${base}:control`,
  };
}

interface Authority {
  readonly side: Side;
  readonly epoch: number;
}

type Message = { type: 'freeze'; id: string } | { type: 'lift'; id: string };

export interface CoordinationOptions {
  readonly connection: RedisOptions;
  /** Key prefix. Default `midflight`. */
  readonly prefix?: string;
}

/**
 * An app instance's side of a coordinated cutover: it registers and heartbeats in Redis,
 * freezes writes when told (waiting for in-flight ones, then acknowledging), and applies the new
 * write authority before lifting. A freeze whose lease expires (a crashed CLI) lifts by itself.
 *
 * @example
 * const participant = new CutoverParticipant(engine, { connection: { host: '127.0.0.1', port: 6379 } })
 * await participant.start()
 */
export class CutoverParticipant {
  readonly instanceId: string;
  private readonly redis: Redis;
  private readonly sub: Redis;
  private readonly k: ReturnType<typeof keys>;
  private heartbeat: NodeJS.Timeout | undefined;
  private leaseWatch: NodeJS.Timeout | undefined;
  private freezeId: string | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly options: CoordinationOptions & { instanceId?: string; heartbeatMs?: number },
  ) {
    this.instanceId = options.instanceId ?? `${process.pid}-${randomUUID().slice(0, 8)}`;
    this.redis = new Redis({ ...(options.connection as object), maxRetriesPerRequest: 1 });
    this.sub = new Redis({ ...(options.connection as object) });
    for (const r of [this.redis, this.sub]) r.on('error', () => {});
    this.k = keys(options.prefix ?? 'midflight', engine.migration.name);
  }

  async start(): Promise<void> {
    await this.applyAuthority();
    await this.sub.subscribe(this.k.channel);
    this.sub.on('message', (_channel, raw) => void this.onMessage(JSON.parse(raw) as Message));
    const beat = async () => {
      await this.redis.hset(this.k.instances, this.instanceId, String(Date.now())).catch(() => {});
    };
    await beat();
    this.heartbeat = setInterval(() => void beat(), this.options.heartbeatMs ?? 500);
    this.heartbeat.unref();
    // A freeze announced before this instance subscribed still applies.
    const current = await this.redis.get(this.k.freeze);
    if (current) await this.onMessage({ type: 'freeze', id: current });
  }

  private async onMessage(m: Message): Promise<void> {
    if (m.type === 'freeze') {
      if (this.freezeId === m.id) return;
      this.freezeId = m.id;
      this.engine.gate.freeze(m.id);
      this.watchLease(m.id);
      await this.engine.gate.quiesced();
      // Mirrors of the last writes run in this process: they must land before the flip.
      await this.engine.settle();
      if (this.freezeId === m.id) await this.redis.sadd(this.k.acks(m.id), this.instanceId);
    } else if (m.type === 'lift') {
      await this.lift(m.id);
    }
  }

  /** The freeze has a lease: when its key is gone (lifted, or the coordinator died), lift here too. */
  private watchLease(id: string): void {
    clearInterval(this.leaseWatch);
    this.leaseWatch = setInterval(async () => {
      const current = await this.redis.get(this.k.freeze).catch(() => id);
      if (current !== id) await this.lift(id);
    }, 100);
    this.leaseWatch.unref();
  }

  private async lift(id: string): Promise<void> {
    if (this.freezeId !== id) return;
    clearInterval(this.leaseWatch);
    // Always read the decided authority before letting writes through again.
    await this.applyAuthority();
    this.freezeId = undefined;
    this.engine.gate.lift(id);
  }

  private async applyAuthority(): Promise<void> {
    const raw = await this.redis.get(this.k.authority);
    const a = raw ? (JSON.parse(raw) as Authority) : undefined;
    this.engine.setAuthority(a?.side, a?.epoch ?? 0);
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    clearInterval(this.leaseWatch);
    await this.redis.hdel(this.k.instances, this.instanceId).catch(() => {});
    if (this.freezeId) this.engine.gate.lift(this.freezeId);
    this.sub.disconnect();
    this.redis.disconnect();
  }
}

export interface CutoverOptions extends CoordinationOptions {
  readonly migration: string;
  /** The side that becomes authoritative: `target` (live → rampdown) or `source` (reverse). */
  readonly to: Side;
  /** Instances whose heartbeat is older than this are not waited for. Default 3000 ms. */
  readonly staleAfterMs?: number;
  /** How long every live instance has to acknowledge the freeze. Default 2000 ms. */
  readonly ackTimeoutMs?: number;
  /** How long the retry queue has to drain for the flip. Default 5000 ms. */
  readonly drainTimeoutMs?: number;
  /** Resolves to the number of retry jobs still pending (e.g. `() => queue.size()`). */
  readonly pending: () => Promise<number>;
  /** The freeze lifts by itself after this, even if this process dies. Default 15 000 ms. */
  readonly leaseMs?: number;
}

export type CutoverResult =
  | {
      readonly ok: true;
      readonly epoch: number;
      readonly side: Side;
      readonly instances: number;
      readonly frozenMs: number;
    }
  | { readonly ok: false; readonly reason: string; readonly missing?: readonly string[]; readonly frozenMs: number };

/**
 * Flips write authority for every app instance at once: freeze writes, wait for every live
 * instance's acknowledgement and an empty retry queue, start a new epoch with the new
 * authority, lift. If any step times out, the freeze lifts and nothing flips.
 *
 * @example
 * const r = await cutover({ connection, migration: 'users-to-pg', to: 'target', pending: () => queue.size() })
 */
export async function cutover(options: CutoverOptions): Promise<CutoverResult> {
  const k = keys(options.prefix ?? 'midflight', options.migration);
  const redis = new Redis({ ...(options.connection as object), maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  const id = randomUUID();
  const started = performance.now();
  const frozenMs = () => Math.round(performance.now() - started);
  const publish = (m: Message) => redis.publish(k.channel, JSON.stringify(m));
  const abort = async (reason: string, missing?: string[]): Promise<CutoverResult> => {
    await redis.del(k.freeze);
    await publish({ type: 'lift', id });
    await redis.del(k.acks(id));
    return { ok: false, reason, ...(missing ? { missing } : {}), frozenMs: frozenMs() };
  };
  try {
    const now = Date.now();
    const beats = await redis.hgetall(k.instances);
    const live = Object.entries(beats)
      .filter(([, at]) => now - Number(at) < (options.staleAfterMs ?? 3000))
      .map(([instance]) => instance);
    const taken = await redis.set(k.freeze, id, 'PX', options.leaseMs ?? 15_000, 'NX');
    if (taken !== 'OK') return { ok: false, reason: 'another cutover is in progress', frozenMs: 0 };
    await publish({ type: 'freeze', id });
    const ackBy = Date.now() + (options.ackTimeoutMs ?? 2000);
    for (;;) {
      const acked = new Set(await redis.smembers(k.acks(id)));
      const missing = live.filter((i) => !acked.has(i));
      if (missing.length === 0) break;
      if (Date.now() > ackBy) return await abort('not every instance acknowledged the freeze', missing);
      await new Promise((r) => setTimeout(r, 10));
    }
    const drainBy = Date.now() + (options.drainTimeoutMs ?? 5000);
    while ((await options.pending()) > 0) {
      if (Date.now() > drainBy) return await abort('the retry queue did not drain in time');
      await new Promise((r) => setTimeout(r, 10));
    }
    const prev = await redis.get(k.authority);
    const epoch = (prev ? (JSON.parse(prev) as Authority).epoch : 0) + 1;
    await redis.set(k.authority, JSON.stringify({ side: options.to, epoch } satisfies Authority));
    await redis.del(k.freeze);
    await publish({ type: 'lift', id });
    await redis.del(k.acks(id));
    return { ok: true, epoch, side: options.to, instances: live.length, frozenMs: frozenMs() };
  } finally {
    redis.disconnect();
  }
}

/** The authority a cutover decided, if any. */
export async function currentAuthority(
  options: CoordinationOptions & { migration: string },
): Promise<Authority | undefined> {
  const redis = new Redis({ ...(options.connection as object), maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    const raw = await redis.get(keys(options.prefix ?? 'midflight', options.migration).authority);
    return raw ? (JSON.parse(raw) as Authority) : undefined;
  } finally {
    redis.disconnect();
  }
}
