export { UnleashAdmin, UnleashAdminError, type UnleashAdminOptions, type UnleashFlagStatus } from './admin.js';
export { AtomicFileStorage, type FlagStorage } from './backup.js';
export { UnleashFlags, type UnleashFlagsOptions, type UnleashFlagsStatus } from './flags.js';
export {
  DEFAULT_FLAG_PREFIX,
  flagName,
  type Parsed,
  parseToggle,
  ROLLOUT_STRATEGY,
  type StrategyDef,
  stageVariant,
  type ToggleDef,
  type VariantDef,
} from './scheme.js';
