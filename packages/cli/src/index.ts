import { parseArgs } from 'node:util';
import { CutoverParticipant, currentAuthority, cutover, startWorker } from '@midflight/bullmq';
import { checkStageMove, isWritableFlags, MidflightError, parseStage, STAGES } from '@midflight/core';
import { loadConfig, openSession, type Session } from './config.js';
import { progress } from './progress.js';

export { defineConfig, loadConfig, type MidflightConfig, openSession, type Session } from './config.js';

const HELP = `midflight — migrate a database while the app keeps running

Usage: midflight <command> [options]

Commands:
  status                     stage per table, retry queue depth, dead letters, spool
  worker                     run the retry worker (BullMQ) beside the app
      --concurrency <n>      jobs at once (default 16)
      --port <port>          serve /healthz and /metrics (default 9464; 0 = any)
  dlq list                   dead letters: table, key, reason, attempts (never row values)
  dlq show <id>              one dead letter
  dlq retry [id...]          move dead letters (all, or these) back to the queue
  dlq purge [id...]          delete dead letters (all, or these)
  verify [--table <t>]       compare source and target; exit 1 when they differ
  backfill [--table <t>]     copy history to the target (run in dualwrite or later)
      --chunk <n>            rows per chunk (default 1000)
  reconcile [--table <t>]    verify, then mirror every differing key
  stage show                 the stage and read rollout the flags give
  stage set <stage>          move one stage forward, or back (--force past pending retries)
  stage rollout <percent>    share of users reading the target in live
  cutover [--reverse]        flip write authority for every app instance at once
                             (live → rampdown; --reverse: rampdown → live)

Options:
  --config <file>            configuration (default midflight.config.ts)
  --json                     machine-readable output
  --force                    stage set: move on despite queued retries or dead letters
  -h, --help                 this help

Stages: ${STAGES.join(' → ')}`;

/** Runs the CLI; returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, sub, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${HELP}\n`);
    return command || values.help ? 0 : 2;
  }
  const json = values.json ?? false;
  const out = (human: string, data: unknown) =>
    process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${human}\n`);
  let session: Session | undefined;
  try {
    session = await openSession(await loadConfig(values.config ?? 'midflight.config.ts'));
    const { engine, queue } = session;
    const tables = values.table ? [values.table] : undefined;
    switch (command) {
      case 'status': {
        const { queued, deadLetters } = await engine.queueState();
        const stages = Object.fromEntries([...engine.plans.keys()].map((t) => [t, engine.stage(t)]));
        const spool = queue ? { entries: queue.spool.size(), needsReconcile: queue.spool.needsReconcile } : undefined;
        out(
          [
            `migration ${engine.migration.name}`,
            ...Object.entries(stages).map(([t, s]) => `  ${t}: ${s}`),
            `retry queue: ${queued} queued, ${deadLetters.length} dead letters`,
            ...(spool
              ? [
                  `spool: ${spool.entries} entries${spool.needsReconcile ? ' — NEEDS RECONCILE: changes may be lost, run `midflight reconcile`' : ''}`,
                ]
              : []),
          ].join('\n'),
          { migration: engine.migration.name, stages, queued, deadLetters: deadLetters.length, spool },
        );
        return spool?.needsReconcile ? 3 : 0;
      }
      case 'worker': {
        if (!queue) throw new MidflightError('INVALID_OPTION', 'the worker needs `redis` in the configuration');
        const participant = session.config.redis
          ? new CutoverParticipant(engine, {
              connection: session.config.redis,
              prefix: session.config.queuePrefix ?? 'midflight',
            })
          : undefined;
        await participant?.start();
        const running = await startWorker({
          engine,
          queue,
          concurrency: Number(values.concurrency ?? 16),
          port: Number(values.port ?? 9464),
        });
        process.stderr.write(
          `midflight worker: queue ${queue.name}, concurrency ${values.concurrency ?? 16}, port ${running.port}\n`,
        );
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.stderr.write('midflight worker: stopping (finishing running jobs)\n');
            running.close().then(resolve, resolve);
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
        await participant?.stop();
        await queue.close();
        return 0;
      }
      case 'dlq': {
        if (!queue)
          throw new MidflightError('INVALID_OPTION', 'dead letters live in the BullMQ queue: configure `redis`');
        const ids = rest.length ? rest : undefined;
        const list = (await queue.deadLetters()) as Array<{
          id?: string;
          table: string;
          key: readonly unknown[];
          reason: string;
          attempts: number;
          at: Date;
        }>;
        if (sub === 'list') {
          out(
            list.length
              ? list
                  .map((d) => `${d.id}  ${d.table} ${JSON.stringify(d.key)}  attempts=${d.attempts}  ${d.reason}`)
                  .join('\n')
              : 'no dead letters',
            list,
          );
          return 0;
        }
        if (sub === 'show') {
          const d = list.find((x) => x.id === rest[0]);
          if (!d) {
            process.stderr.write(`no dead letter with id ${rest[0] ?? '(none given)'}\n`);
            return 1;
          }
          out(
            Object.entries(d)
              .map(([k, v]) => `${k}: ${v instanceof Date ? v.toISOString() : JSON.stringify(v)}`)
              .join('\n'),
            d,
          );
          return 0;
        }
        if (sub === 'retry') {
          const n = await queue.retryDeadLetters(ids);
          out(`${n} dead letters moved back to the queue`, { retried: n });
          return 0;
        }
        if (sub === 'purge') {
          const n = await queue.purgeDeadLetters(ids);
          out(`${n} dead letters deleted`, { purged: n });
          return 0;
        }
        process.stderr.write(`unknown dlq command "${sub ?? ''}"\n\n${HELP}\n`);
        return 2;
      }
      case 'verify': {
        const bar = progress('verify');
        const report = await engine.verify({ ...(tables ? { tables } : {}), onProgress: (_t, n) => bar.update(n) });
        bar.end();
        out(
          report.tables
            .map(
              (t) =>
                `${t.table}: ${t.sourceRows} source rows, ${t.targetRows} target rows, ${t.missing.length} missing, ${t.extra.length} extra, ${t.different.length} different`,
            )
            .join('\n'),
          report,
        );
        return report.differences === 0 ? 0 : 1;
      }
      case 'backfill': {
        const bar = progress('backfill');
        const rows = await engine.backfill({
          ...(tables ? { tables } : {}),
          chunkSize: Number(values.chunk ?? 1000),
          onChunk: (p) => bar.update(p.rows),
        });
        bar.end();
        out(`${rows} rows copied`, { rows });
        return 0;
      }
      case 'stage': {
        const flags = session.config.flags;
        const name = engine.migration.name;
        const state = flags?.get(name) ?? { stage: engine.migration.safeStage, rollout: 0 };
        if (sub === 'show' || sub === undefined) {
          out(`${name}: ${state.stage}, read rollout ${state.rollout}%`, state);
          return 0;
        }
        if (!isWritableFlags(flags)) {
          throw new MidflightError(
            'INVALID_OPTION',
            'the configured flag provider cannot be changed from the CLI (use the JSON file or Unleash)',
          );
        }
        if (sub === 'set') {
          const to = parseStage(rest[0], 'stage set');
          const { queued, deadLetters } = await engine.queueState();
          checkStageMove(state.stage, to, { queued, deadLetters: deadLetters.length, force: values.force ?? false });
          await flags.write(name, { ...state, stage: to });
          out(`${name}: ${state.stage} → ${to}`, { from: state.stage, to });
          return 0;
        }
        if (sub === 'rollout') {
          const rollout = Number(rest[0]);
          if (!(rollout >= 0 && rollout <= 100))
            throw new MidflightError('INVALID_OPTION', `rollout must be 0–100, got ${rest[0]}`);
          await flags.write(name, { ...state, rollout });
          out(`${name}: read rollout ${state.rollout}% → ${rollout}%`, { from: state.rollout, to: rollout });
          return 0;
        }
        process.stderr.write(`unknown stage command "${sub}"\n\n${HELP}\n`);
        return 2;
      }
      case 'cutover': {
        const redis = session.config.redis;
        if (!redis || !queue)
          throw new MidflightError(
            'INVALID_OPTION',
            'cutover coordinates app instances through Redis: configure `redis`',
          );
        const to = values.reverse ? 'source' : 'target';
        const prefix = session.config.queuePrefix ?? 'midflight';
        const name = engine.migration.name;
        const flagStage = session.config.flags?.get(name)?.stage;
        const expected = to === 'target' ? 'live' : 'rampdown';
        if (flagStage !== undefined && flagStage !== expected && !(to === 'target' && flagStage === 'rampdown')) {
          throw new MidflightError(
            'STAGE_NEEDS_CUTOVER',
            `cutover${values.reverse ? ' --reverse' : ''} runs from ${expected}; the flags say ${flagStage}`,
          );
        }
        const before = await currentAuthority({ connection: redis, prefix, migration: name });
        const r = await cutover({ connection: redis, prefix, migration: name, to, pending: () => queue.size() });
        if (r.ok) {
          const flags = session.config.flags;
          if (isWritableFlags(flags) && flagStage !== undefined) {
            await flags.write(name, {
              ...(flags.get(name) ?? { rollout: 0 }),
              stage: to === 'target' ? 'rampdown' : 'live',
            });
          }
          out(
            `${name}: write authority ${before?.side ?? 'source'} → ${to} (epoch ${r.epoch}, ${r.instances} instances, writes held ${r.frozenMs} ms)`,
            r,
          );
          return 0;
        }
        out(
          `${name}: cutover aborted, nothing flipped: ${r.reason}${r.missing ? ` (${r.missing.join(', ')})` : ''}`,
          r,
        );
        return 1;
      }
      case 'reconcile': {
        const n = await engine.reconcile(tables ? { tables } : {});
        out(`${n} keys repaired`, { repaired: n });
        return 0;
      }
      default:
        process.stderr.write(`unknown command "${command}"\n\n${HELP}\n`);
        return 2;
    }
  } catch (e) {
    const code = e instanceof MidflightError ? ` [${e.code}]` : '';
    process.stderr.write(`midflight: ${(e as Error).message}${code}\n`);
    return 1;
  } finally {
    await session?.queue?.close().catch(() => {});
    await session?.close().catch(() => {});
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      concurrency: { type: 'string' },
      port: { type: 'string' },
      table: { type: 'string' },
      chunk: { type: 'string' },
      force: { type: 'boolean' },
      reverse: { type: 'boolean' },
    },
  });
}
