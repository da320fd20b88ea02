/**
 * Where the engine reports events. Fields are identifiers, counts and hashed keys — never row
 * values — unless the operator opts in.
 */
export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof LEVELS;

/** JSON lines on stderr, from `MIDFLIGHT_LOG_LEVEL` (default `warn`). */
export function consoleLogger(level: LogLevel = (process.env.MIDFLIGHT_LOG_LEVEL as LogLevel) ?? 'warn'): Logger {
  const min = LEVELS[level] ?? LEVELS.warn;
  const emit = (lvl: Exclude<LogLevel, 'silent'>) => (event: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    process.stderr.write(`${JSON.stringify({ level: lvl, time: new Date().toISOString(), event, ...fields })}\n`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
