export {
  type CoordinationOptions,
  type CutoverOptions,
  CutoverParticipant,
  type CutoverResult,
  currentAuthority,
  cutover,
} from './cutover.js';
export { BullMqRetryQueue, type BullMqRetryQueueOptions } from './retry-queue.js';
export { Spool } from './spool.js';
export { type RunningWorker, startWorker, type WorkerOptions } from './worker.js';
