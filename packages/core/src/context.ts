import { AsyncLocalStorage } from 'node:async_hooks';

/** Per-request facts the router needs: who is asking (sticky rollout, read-your-writes). */
export interface RequestContext {
  readonly userId?: string | undefined;
}

const storage = new AsyncLocalStorage<RequestContext>();

/**
 * Runs `fn` with a request context; adapters read it to route reads and track writes.
 *
 * @example
 * app.use((req, _res, next) => withContext({ userId: req.user?.id }, next))
 */
export function withContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

export function currentContext(): RequestContext {
  return storage.getStore() ?? {};
}
