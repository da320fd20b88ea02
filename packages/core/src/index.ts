export type { BackfillOptions } from './backfill.js';
export { type Change, type Key, keyId, keyOf, type Row } from './change.js';
export { ChangeScope } from './change-scope.js';
export { currentContext, type RequestContext, withContext } from './context.js';
export { type Dialect, detectDialect } from './dialect.js';
export { Engine, type StartOptions, startMigration } from './engine.js';
export { ConfigError, type ErrorCode, MidflightError, midflightErrorCodes, safeReason } from './errors.js';
export {
  EnvFlags,
  type FlagProvider,
  type FlagState,
  isWritableFlags,
  JsonFileFlags,
  StaticFlags,
  type WritableFlags,
} from './flags.js';
export type { ColumnInfo, TableInfo } from './introspect.js';
export { chooseKeyStrategy, isPlainValue, type KeyStrategy, type WriteShape } from './key-strategy.js';
export { consoleLogger, type Logger, type LogLevel, silentLogger } from './logger.js';
export { Metrics } from './metrics.js';
export {
  defineMigration,
  type Migration,
  type MigrationConfig,
  type MirrorOptions,
  type ReadOptions,
  type RetryOptions,
  type TableConfig,
} from './migration.js';
export { type CompareKind, diffRows, normalizeValue, sameValue } from './normalize.js';
export type { TablePlan } from './plan.js';
export { bucket, type ReadDecision, type ReadReason, routeRead } from './read-router.js';
export {
  type DeadLetter,
  InProcessRetryQueue,
  type RetryHandler,
  type RetryJob,
  type RetryQueue,
} from './retry-queue.js';
export { compareResults, type Mismatch } from './shadow-compare.js';
export {
  authority,
  checkStageMove,
  isStage,
  mirrors,
  parseStage,
  type Side,
  STAGES,
  type Stage,
  type StageMoveContext,
} from './stage.js';
export { KnexStore, whereKeys } from './store.js';
export type { TableDiff, VerifyOptions, VerifyReport } from './verify.js';
export { WriteGate } from './write-gate.js';
