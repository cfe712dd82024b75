import type { Store } from 'express-session';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';

export interface GuardSessionStoreOptions {
  /** Longest wait for one session-store call, in ms. Default 3000. */
  timeoutMs?: number;
  /** Seconds sent in `Retry-After` with the 503. Default 2. */
  retryAfterSeconds?: number;
}

type Callback = (err?: unknown, value?: unknown) => void;
type StoreMethod = (...args: unknown[]) => unknown;

/**
 * Wraps an express-session store (connect-redis, or any other) so that a store that is
 * down or stalled costs a request a bounded wait, not minutes: each `get`, `set`,
 * `destroy` and `touch` that does not answer within `timeoutMs`, or fails, answers with
 * an `OAuthKeeperError` `OAUTH_KEEPER_STORE_UNAVAILABLE` (503, with `retryAfter`), which
 * `keeper.errorHandler()` turns into a 503 with `Retry-After`. A late answer is dropped.
 *
 * ```js
 * app.use(session({ store: guardSessionStore(new RedisStore({ client: redis })), ... }));
 * ...
 * app.use(keeper.errorHandler());
 * ```
 */
export function guardSessionStore<S extends Store>(store: S, options: GuardSessionStoreOptions = {}): S {
  if (!store || typeof store.get !== 'function' || typeof store.set !== 'function' || typeof store.destroy !== 'function') {
    throw configurationError('guardSessionStore needs an express-session store, such as new RedisStore({ client }).');
  }
  const timeoutMs = options.timeoutMs ?? 3000;
  const retryAfter = options.retryAfterSeconds ?? 2;
  if (!(timeoutMs > 0)) throw configurationError('guardSessionStore timeoutMs must be a positive number of milliseconds (default 3000).');
  if (!(retryAfter >= 0)) throw configurationError('guardSessionStore retryAfterSeconds must be 0 or more seconds (default 2).');

  const unavailable = (operation: string, cause: unknown, timedOut: boolean) =>
    new OAuthKeeperError(
      ErrorCodes.STORE_UNAVAILABLE,
      `The session store could not ${operation} the session${timedOut ? ` (no answer within ${timeoutMs} ms)` : ''}. ` +
        'Check that Redis is up and the client passed to the session store is connected.',
      { retryAfter, ...(cause === undefined ? {} : { cause }) },
    );

  /**
   * The store's method with the callback as its last argument, bounded in time. A touch only
   * extends a session's expiry, after the answer has gone out: its failure is dropped.
   */
  const bounded = (name: 'get' | 'set' | 'destroy' | 'touch', operation: string) => {
    const original = store[name] as unknown as StoreMethod;
    return (...args: unknown[]) => {
      const done = typeof args[args.length - 1] === 'function' ? (args.pop() as Callback) : () => undefined;
      let settled = false;
      const finish = (err?: unknown, value?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err && name === 'touch') done(null);
        else if (err) done(err instanceof OAuthKeeperError ? err : unavailable(operation, err, false));
        else done(null, value);
      };
      const timer = setTimeout(() => finish(unavailable(operation, undefined, true)), timeoutMs);
      try {
        original.call(store, ...args, finish);
      } catch (error) {
        finish(error);
      }
    };
  };

  const wrapped: Partial<Record<string | symbol, unknown>> = {
    get: bounded('get', 'read'),
    set: bounded('set', 'save'),
    destroy: bounded('destroy', 'delete'),
    ...(typeof store.touch === 'function' ? { touch: bounded('touch', 'touch') } : {}),
  };
  // express-session's regenerate: destroy, then generate (which it sets on the store).
  wrapped['regenerate'] = (req: { sessionID: string }, fn: Callback) => {
    (wrapped['destroy'] as StoreMethod)(req.sessionID, (err?: unknown) => {
      (store as unknown as { generate(r: unknown): void }).generate(req);
      fn(err);
    });
  };
  // Each method bound once (express-session reads several per request), again only if it changes.
  const bound = new Map<string | symbol, { of: StoreMethod; fn: StoreMethod }>();
  return new Proxy(store, {
    get(target, property) {
      if (Object.prototype.hasOwnProperty.call(wrapped, property)) return wrapped[property];
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      const known = bound.get(property);
      if (known !== undefined && known.of === value) return known.fn;
      const fn = (value as StoreMethod).bind(target);
      bound.set(property, { of: value as StoreMethod, fn });
      return fn;
    },
  });
}
