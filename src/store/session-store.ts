import { Store, type SessionData } from 'express-session';
import { configurationError } from '../errors.js';
import { parseStoredValue } from './redis.js';
import type { StoredEntry } from './backend.js';
import type { TokenStore } from './token-store.js';

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

/** What the store hands over to the keeper for one session read: the token sets read with it. */
export interface SessionPrefetch {
  readonly owner: string;
  /** `Date.now()` of the read. */
  readonly at: number;
  /** Per provider, the stored entry read in the same command as the session (`null`: none stored). */
  readonly entries: Map<string, StoredEntry | null>;
}

/** Sessions whose token owner this process remembers, at most; then the oldest is forgotten. */
const MAX_HINTS = 50_000;

type Callback = (err?: unknown) => void;
type GetCallback = (err: unknown, session?: SessionData | null) => void;

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

  override get(sid: string, callback: GetCallback): void {
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

  #loaded(sid: string, raw: string | null, owner: string | undefined, values: Array<string | null> | undefined, callback: GetCallback): void {
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
      const entries = new Map<string, StoredEntry | null>();
      this.#providers.forEach((provider, i) => entries.set(provider, parseStoredValue(values[i + 1] ?? null)));
      this.#tokens!.offerPrefetched(sid, { owner, at: Date.now(), entries });
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

  override set(sid: string, session: SessionData, callback?: Callback): void {
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

  override touch(sid: string, session: SessionData, callback?: Callback): void {
    const done = callback ?? (() => undefined);
    this.#client.expire(this.#prefix + sid, Math.max(1, this.#ttlOf(session))).then(
      () => done(null),
      (error: unknown) => done(error),
    );
  }

  override destroy(sid: string, callback?: Callback): void {
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
