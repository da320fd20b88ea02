/**
 * Every error Midflight raises is a `MidflightError` with a stable `code`, so callers can
 * branch on it without parsing messages. Configuration errors name the table and column.
 *
 * @example
 * try { await startMigration(m, { source, target }) }
 * catch (e) { if (e instanceof MidflightError && e.code === 'TARGET_COLUMN_MISSING') ... }
 */
/** Every code a `MidflightError` can carry. */
export const midflightErrorCodes = [
  'MIGRATION_NAME_INVALID',
  'NO_TABLES',
  'IDENTIFIER_INVALID',
  'SOURCE_TABLE_MISSING',
  'TARGET_TABLE_MISSING',
  'NO_PRIMARY_KEY',
  'KEY_COLUMN_MISSING',
  'TARGET_KEY_COLUMN_MISSING',
  'KEY_TYPE_MISMATCH',
  'KEY_NOT_UNIQUE_IN_TARGET',
  'SOURCE_COLUMN_MISSING',
  'TARGET_COLUMN_MISSING',
  'TARGET_COLUMN_UNFILLED',
  'DUPLICATE_MAPPING',
  'DUPLICATE_TARGET_TABLE',
  'INVALID_STAGE',
  'INVALID_OPTION',
  'TRANSFORM_INVALID',
  'VERSION_COLUMN_MISSING',
  'UNSUPPORTED_DATABASE',
  'MIRROR_FAILED',
  'FLAGS_UNAVAILABLE',
  'ENGINE_CLOSED',
  'STAGE_SKIP',
  'STAGE_BLOCKED',
  'STAGE_NEEDS_CUTOVER',
] as const;
export type ErrorCode = (typeof midflightErrorCodes)[number];

export class MidflightError extends Error {
  override readonly name: string = 'MidflightError';
  readonly code: ErrorCode;
  readonly table: string | undefined;
  readonly column: string | undefined;

  constructor(code: ErrorCode, message: string, options: { table?: string; column?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.table = options.table;
    this.column = options.column;
  }
}

/** Thrown at start-up when the migration does not fit the databases it is given. */
export class ConfigError extends MidflightError {
  override readonly name = 'ConfigError';
}

/**
 * A reason safe to store and log: database errors often quote the offending value
 * (`Duplicate entry 'alice@x' for key`, `Key (email)=(alice@x)`, `invalid input syntax: "abc"`),
 * so literals are redacted and only codes, identifiers and the shape of the message remain.
 */
export function safeReason(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown error';
  const code = (error as { code?: unknown }).code;
  let message = error.message.split('\n')[0] ?? '';
  // A Knex error message starts with the SQL it ran; the SQL carries no values (bindings are
  // separate) but is noise, so keep the driver's part after the last " - ".
  const dash = message.lastIndexOf(' - ');
  if (dash >= 0) message = message.slice(dash + 3);
  message = message
    .replace(/Key \(([^)]*)\)=\([^)]*\)/g, 'Key ($1)=(<redacted>)')
    .replace(/Duplicate entry '.*?' for key/g, 'Duplicate entry <redacted> for key')
    .replace(
      /(?<!\b(?:column|constraint|relation|table|type|index|key|database|schema|function|role|user))\s+(["'])(?:(?!\1).)*\1/gi,
      ' <redacted>',
    )
    .replace(/:\s+(["'`])(?:(?!\1).)*\1/g, ': <redacted>');
  if (message.length > 300) message = `${message.slice(0, 300)}…`;
  return typeof code === 'string' || typeof code === 'number' ? `${code}: ${message}` : message;
}
