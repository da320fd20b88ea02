import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BullMqRetryQueue } from '@midflight/bullmq';
import {
  ConfigError,
  type Engine,
  type FlagProvider,
  JsonFileFlags,
  type Migration,
  startMigration,
} from '@midflight/core';
import type { RedisOptions } from 'bullmq';
import knex, { type Knex } from 'knex';

/**
 * The one file the app, the worker and the CLI share.
 *
 * @example
 * // midflight.config.ts
 * export default defineConfig({
 *   migration: defineMigration({ name: 'users-to-pg', tables: { users: {} } }),
 *   source: { client: 'mysql2', connection: process.env.SOURCE_URL },
 *   target: { client: 'pg', connection: process.env.TARGET_URL },
 *   redis: { host: '127.0.0.1', port: 6379 },
 * })
 */
export interface MidflightConfig {
  readonly migration: Migration;
  /** Knex configuration of the source and target databases. */
  readonly source: Knex.Config;
  readonly target: Knex.Config;
  /** Default: the JSON file `.midflight/flags.json`. */
  readonly flags?: FlagProvider;
  /** Redis for the retry queue (BullMQ). Without it the CLI cannot reach the queue. */
  readonly redis?: RedisOptions;
  readonly queuePrefix?: string;
  readonly spool?: { readonly path?: string; readonly maxEntries?: number };
}

export function defineConfig(config: MidflightConfig): MidflightConfig {
  return config;
}

export async function loadConfig(path: string): Promise<MidflightConfig> {
  const file = resolve(path);
  if (!existsSync(file)) {
    throw new ConfigError('INVALID_OPTION', `config file ${file} not found (pass --config <file>)`);
  }
  const mod = (await import(pathToFileURL(file).href)) as { default?: MidflightConfig };
  const config = mod.default;
  if (!config?.migration || !config.source || !config.target) {
    throw new ConfigError('INVALID_OPTION', `${file} must export default { migration, source, target, ... }`);
  }
  return config;
}

export interface Session {
  readonly config: MidflightConfig;
  readonly engine: Engine;
  readonly queue: BullMqRetryQueue | undefined;
  close(): Promise<void>;
}

/** Connects to both databases (and Redis when configured) and starts the engine. */
export async function openSession(config: MidflightConfig): Promise<Session> {
  const source = knex(config.source);
  const target = knex(config.target);
  const queue = config.redis
    ? new BullMqRetryQueue(config.migration, {
        connection: config.redis,
        ...(config.queuePrefix ? { prefix: config.queuePrefix } : {}),
        ...(config.spool ? { spool: config.spool } : {}),
      })
    : undefined;
  try {
    const engine = await startMigration(config.migration, {
      source,
      target,
      flags: config.flags ?? new JsonFileFlags(resolve('.midflight/flags.json')),
      ...(queue ? { retryQueue: queue } : {}),
    });
    return {
      config,
      engine,
      queue,
      async close() {
        await engine.close();
        await source.destroy();
        await target.destroy();
      },
    };
  } catch (e) {
    await queue?.close();
    await source.destroy();
    await target.destroy();
    throw e;
  }
}
