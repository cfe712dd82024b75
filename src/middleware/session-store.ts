import { Store, type SessionData } from 'express-session';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { unknownOptions } from '../lib/option-names.js';
import type { TokenStore } from '../store/token-store.js';

export interface GuardSessionStoreOptions {
  /** Longest wait for one session-store call, in ms. Default 3000. */
  timeoutMs?: number;
  /** Seconds sent in `Retry-After` with the 503. Default 2. */
  retryAfterSeconds?: number;
}

type StoreCallback = (err?: unknown, value?: unknown) => void;
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
      const done = typeof args[args.length - 1] === 'function' ? (args.pop() as StoreCallback) : () => undefined;
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
  wrapped['regenerate'] = (req: { sessionID: string }, fn: StoreCallback) => {
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

/**
 * The Redis commands the session store sends, as an ioredis `Redis` or `Cluster` offers
 * them (declared here so that these types need nothing from ioredis).
 */
export interface SessionRedisClientLike {
  get(key: string): Promise<string | null>;
  mget(...keys: string[]): Promise<Array<string | null>>;
  set(key: string, value: string, secondsToken: 'EX', seconds: number): Promise<unknown>;
  expire(key: string, seconds: number): Promise<number>;
  del(...keys: string[]): Promise<number>;
  /** ioredis sets it on a `Cluster`: session and token keys live in different slots there, so they are read apart. */
  readonly isCluster?: boolean;
}

export interface KeeperSessionStoreOptions {
  /** The ioredis client (or Cluster). Give the keeper's `RedisBackend` the same client to read session and tokens in one command. */
  client: SessionRedisClientLike;
  /** Prefix of session keys. Default `sess:`, connect-redis's: sessions it wrote stay valid. */
  prefix?: string;
  /** Seconds a session lives in Redis when its cookie has no expiry. Default 86400 (one day), as connect-redis. */
  ttlSeconds?: number;
  /** Longest wait for one Redis call, in ms, then 503 `OAUTH_KEEPER_STORE_UNAVAILABLE`. Default 3000. */
  timeoutMs?: number;
  /** Seconds sent in `Retry-After` with that 503. Default 2. */
  retryAfterSeconds?: number;
}

/** Sessions whose token owner this process remembers, at most; then the oldest is forgotten. */
const MAX_HINTS = 50_000;

const OPTION_NAMES: readonly string[] = Object.freeze(['client', 'prefix', 'ttlSeconds', 'timeoutMs', 'retryAfterSeconds']);

/**
 * An express-session store on Redis (connect-redis's key layout and JSON, so the two can
 * replace each other) that reads a session and its token sets **in one command**. Once this
 * process has seen which token owner a session belongs to (`req.session.oauthKeeper.owner`),
 * it reads that session with `MGET sess:<sid> <token key of each provider>`; the token sets
 * are handed to the keeper for this request only, and only when the session read in the same
 * command still names that owner. Nothing is cached: every request reads Redis, so a logout
 * or a refresh on another instance is seen by the next request. On Redis Cluster (where those
 * keys live in different slots) it reads the session alone.
 *
 * Made by `keeper.sessionStore({ client })`, which also bounds every call in time.
 */
export class KeeperSessionStore extends Store {
  readonly #client: SessionRedisClientLike;
  readonly #prefix: string;
  readonly #ttl: number;
  readonly #tokens: TokenStore | undefined;
  readonly #providers: readonly string[];
  /** sid → the token owner its session named when last read or written here. */
  readonly #hints = new Map<string, string>();

  constructor(options: KeeperSessionStoreOptions, tokens?: TokenStore, providers: readonly string[] = []) {
    super();
    const client = options?.client;
    if (!client || typeof client.get !== 'function' || typeof client.mget !== 'function' || typeof client.set !== 'function') {
      throw configurationError('keeper.sessionStore needs client: the ioredis client (new Redis(url)) your RedisBackend uses.');
    }
    // connect-redis users bring its option names: a ttl silently ignored would keep sessions a day.
    const unknown = unknownOptions('keeper.sessionStore', options, OPTION_NAMES);
    if (unknown.length > 0) {
      const hint = 'ttl' in options ? ' connect-redis\'s ttl is ttlSeconds here (the cookie\'s expiry wins when set).' : '';
      throw configurationError(`${unknown.join(' ')}${hint} Valid options: ${OPTION_NAMES.join(', ')}.`);
    }
    this.#client = client;
    this.#prefix = options.prefix ?? 'sess:';
    this.#ttl = options.ttlSeconds ?? 86_400;
    if (!(this.#ttl > 0)) throw configurationError('keeper.sessionStore ttlSeconds must be a positive number of seconds (default 86400).');
    const together = tokens !== undefined && providers.length > 0 && client.isCluster !== true;
    this.#tokens = together ? tokens : undefined;
    this.#providers = together ? providers : [];
  }

  /** Whether session and token sets are read in one command (false on Cluster, or with tokens on another client). */
  get readsTokensWithSession(): boolean {
    return this.#tokens !== undefined;
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    const key = this.#prefix + sid;
    const owner = this.#tokens === undefined ? undefined : this.#hints.get(sid);
    if (owner === undefined) {
      this.#client.get(key).then(
        (raw) => this.#loaded(sid, raw, undefined, undefined, callback),
        (error: unknown) => callback(error),
      );
      return;
    }
    const keys = [key];
    for (const provider of this.#providers) keys.push(this.#tokens!.tokenKey(owner, provider));
    this.#client.mget(...keys).then(
      (values) => this.#loaded(sid, values[0] ?? null, owner, values, callback),
      (error: unknown) => callback(error),
    );
  }

  #loaded(sid: string, raw: string | null, owner: string | undefined, values: Array<string | null> | undefined, callback: (err: unknown, session?: SessionData | null) => void): void {
    if (raw === null) {
      this.#hints.delete(sid);
      this.#tokens?.dropPrefetched(sid);
      return callback(null, null);
    }
    let session: SessionData;
    try {
      session = JSON.parse(raw) as SessionData;
    } catch (error) {
      return callback(error);
    }
    const named = this.#learn(sid, session);
    if (owner !== undefined && named === owner && values !== undefined) {
      // The token sets as read, parsed only if a route takes them.
      this.#tokens!.offerPrefetched(sid, { owner, at: Date.now(), providers: this.#providers, values, first: 1 });
    } else {
      // Whatever an earlier read of this session left unused is older than this read: never used.
      this.#tokens?.dropPrefetched(sid);
    }
    callback(null, session);
  }

  /** Remembers (or forgets) which owner the session names; returns it. */
  #learn(sid: string, session: SessionData | undefined): string | undefined {
    if (this.#tokens === undefined) return undefined;
    const owner = session?.oauthKeeper?.owner;
    if (typeof owner !== 'string' || owner === '') {
      this.#hints.delete(sid);
      return undefined;
    }
    if (this.#hints.get(sid) !== owner) {
      if (this.#hints.size >= MAX_HINTS) this.#hints.delete(this.#hints.keys().next().value!);
      this.#hints.set(sid, owner);
    }
    return owner;
  }

  override set(sid: string, session: SessionData, callback?: (err?: unknown) => void): void {
    const done = callback ?? (() => undefined);
    const ttl = this.#ttlOf(session);
    if (ttl <= 0) return this.destroy(sid, done);
    let value: string;
    try {
      value = JSON.stringify(session);
    } catch (error) {
      return done(error);
    }
    this.#learn(sid, session);
    this.#client.set(this.#prefix + sid, value, 'EX', ttl).then(
      () => done(null),
      (error: unknown) => done(error),
    );
  }

  override touch(sid: string, session: SessionData, callback?: (err?: unknown) => void): void {
    const done = callback ?? (() => undefined);
    this.#client.expire(this.#prefix + sid, Math.max(1, this.#ttlOf(session))).then(
      () => done(null),
      (error: unknown) => done(error),
    );
  }

  override destroy(sid: string, callback?: (err?: unknown) => void): void {
    const done = callback ?? (() => undefined);
    this.#hints.delete(sid);
    this.#tokens?.dropPrefetched(sid);
    this.#client.del(this.#prefix + sid).then(
      () => done(null),
      (error: unknown) => done(error),
    );
  }

  /** As connect-redis: until the cookie's expiry, else `ttlSeconds`. */
  #ttlOf(session: SessionData): number {
    const expires = session?.cookie?.expires;
    if (expires) return Math.ceil((new Date(expires).getTime() - Date.now()) / 1000);
    return this.#ttl;
  }
}
