export { BullMqRetryQueue, type BullMqRetryQueueOptions } from './retry-queue.js';
export { Spool } from './spool.js';
export { type RunningWorker, startWorker, type WorkerOptions } from './worker.js';
