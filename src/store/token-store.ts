import { EventEmitter } from 'node:events';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { TokenCipher, type EncryptionKey } from '../lib/cipher.js';
import type { StoreEvents, StoreOperation } from '../lib/events.js';
import type { TokenSet } from '../lib/token-set.js';
import type { StoredEntry, TokenStoreBackend } from './backend.js';
import { parseStoredValue } from './redis.js';

export interface TokenStoreOptions {
  /** Where the encrypted sets live: `new RedisBackend({ client })` or `new MemoryBackend()`. */
  backend: TokenStoreBackend;
  /** 32-byte keys; the first encrypts, all decrypt (rotation). */
  encryptionKeys: readonly EncryptionKey[];
  /** Prefix of every key written. Default `oauth-keeper:`. */
  prefix?: string;
  /**
   * Longest time, in seconds, a token set is kept after its last use (or, with
   * `retention: 'fixed'`, its last write). A set is also dropped once nothing in it can be
   * used any more (its refresh token, or its access token when there is no refresh token,
   * has expired). Default 30 days.
   */
  maxAgeSeconds?: number;
  /**
   * `'sliding'` (default): every use of a set — the guard, the proxy, `req.oauthFetch`, a
   * worker's `keeper.forOwner()` — gives it `maxAgeSeconds` again (at most once per tenth of
   * it per process), so a permanent token a job keeps using (sop's `app_auth_token`) is never
   * thrown away, and one nobody used for `maxAgeSeconds` is. `'fixed'`: counted from the last write.
   */
  retention?: 'sliding' | 'fixed';
  /**
   * Longest wait for one backend operation, in ms: then the request gets 503
   * `OAUTH_KEEPER_STORE_UNAVAILABLE` with `Retry-After`, whatever the Redis client does
   * (its own `commandTimeout` and offline queue decide how soon it fails by itself). Default 3000.
   */
  timeoutMs?: number;
  /** Seconds sent in `Retry-After` when the store cannot be reached. Default 2. */
  retryAfterSeconds?: number;
}

export interface StoredTokenSet {
  tokenSet: TokenSet;
  /** Compare-and-set generation: pass it back to `put` to write only over this copy. */
  generation: number;
  /** Epoch ms of the login that stored this set (kept across refreshes). */
  connectedAt: number;
}

/** What is encrypted under a key: the set and when its login happened. */
interface Sealed {
  v: 1;
  set: TokenSet;
  connectedAt: number;
}

function unseal(text: string): { tokenSet: TokenSet; connectedAt: number } {
  const parsed = JSON.parse(text) as Sealed | TokenSet;
  // Sets written before connectedAt was kept are the bare token set.
  if ('v' in parsed && parsed.v === 1) return { tokenSet: parsed.set, connectedAt: parsed.connectedAt };
  const legacy = parsed as TokenSet;
  return { tokenSet: legacy, connectedAt: legacy.obtainedAt };
}

/** A stored value and its plaintext (see `TokenStore#open`). */
interface Opened {
  readonly sealed: string;
  readonly tokenSet: TokenSet;
  readonly connectedAt: number;
}

/** What a session store hands the token store for one session read: the token sets read with it (see `KeeperSessionStore`). */
export interface SessionPrefetch {
  readonly owner: string;
  /** `Date.now()` of the read. */
  readonly at: number;
  /** The providers read, in the order of their values. */
  readonly providers: readonly string[];
  /**
   * The stored values as the backend keeps them (`parseStoredValue` reads them), from index
   * `first` on, one per provider: `null` when none is stored. Parsed only when taken; a taken
   * one becomes `undefined`.
   */
  readonly values: Array<string | null | undefined>;
  readonly first: number;
}

/** Keys whose last decrypted value this process remembers, at most; then the oldest is forgotten. */
const MAX_OPENED = 1000;

/** Keys whose last touch this process remembers, at most; then it starts over. */
const MAX_REMEMBERED_TOUCHES = 10_000;

const DEFAULT_MAX_AGE = 30 * 24 * 3600;

/** Session reads whose token sets wait to be taken, at most; then the oldest is dropped. */
const MAX_PREFETCHED = 10_000;

/** A token set read with the session is used only this soon after that read; later, the backend is read again. */
const PREFETCH_MAX_AGE_MS = 1000;

const ignore = (): undefined => undefined;

/** Encrypts token sets and keeps them per (session owner, provider). */
export class TokenStore {
  readonly backend: TokenStoreBackend;
  /** `store:error` when an operation fails (see {@link StoreEvents}); never a key, an owner or a token. */
  readonly events = new EventEmitter<StoreEvents>();
  readonly #cipher: TokenCipher;
  readonly #prefix: string;
  readonly #maxAge: number;
  readonly #timeoutMs: number;
  readonly #retryAfter: number;
  readonly #sliding: boolean;
  readonly #touched = new Map<string, number>();
  readonly #opened = new Map<string, Opened>();
  /** sid → the token sets the session store read with that session (see `KeeperSessionStore`). */
  readonly #prefetched = new Map<string, SessionPrefetch>();

  constructor(options: TokenStoreOptions) {
    if (!options || typeof options.backend?.read !== 'function') {
      throw configurationError('TokenStore needs a backend: new RedisBackend({ client }) or new MemoryBackend().');
    }
    this.backend = options.backend;
    this.#cipher = new TokenCipher(options.encryptionKeys);
    this.#prefix = options.prefix ?? 'oauth-keeper:';
    this.#maxAge = options.maxAgeSeconds ?? DEFAULT_MAX_AGE;
    if (!(this.#maxAge > 0)) throw configurationError('TokenStore maxAgeSeconds must be a positive number of seconds.');
    if (options.retention !== undefined && options.retention !== 'sliding' && options.retention !== 'fixed') {
      throw configurationError(`TokenStore retention must be 'sliding' (the default) or 'fixed', not ${JSON.stringify(options.retention)}.`);
    }
    this.#sliding = options.retention !== 'fixed';
    this.#timeoutMs = options.timeoutMs ?? 3000;
    this.#retryAfter = options.retryAfterSeconds ?? 2;
    if (!(this.#timeoutMs > 0)) throw configurationError('TokenStore timeoutMs must be a positive number of milliseconds (default 3000).');
    if (!(this.#retryAfter >= 0)) throw configurationError('TokenStore retryAfterSeconds must be a number of seconds, 0 or more (default 2).');
  }

  /** `{owner}` is a Redis Cluster hash tag: every key of one session shares a slot. */
  tokenKey(owner: string, provider: string): string {
    return `${this.#prefix}tok:{${owner}}:${provider}`;
  }

  lockKey(owner: string, provider: string): string {
    return `${this.#prefix}lock:{${owner}}:${provider}`;
  }

  /** Always a read of the backend: what it answers is the set, however recently this process saw it. */
  async get(owner: string, provider: string): Promise<StoredTokenSet | null> {
    const key = this.tokenKey(owner, provider);
    return this.#fromEntry(key, await this.#call('read', () => this.backend.read(key)));
  }

  /**
   * From the session store: the token sets it read in the same Redis command as session
   * `sid` (which names `prefetch.owner`), for the request that read it. Replaces whatever an
   * earlier read of that session left, which is older.
   */
  offerPrefetched(sid: string, prefetch: SessionPrefetch): void {
    // Kept in the order of their reads: what a route never took (an unguarded one) goes once it is too old to use.
    this.#prefetched.delete(sid);
    for (const [key, old] of this.#prefetched) {
      if (prefetch.at - old.at <= PREFETCH_MAX_AGE_MS && this.#prefetched.size < MAX_PREFETCHED) break;
      this.#prefetched.delete(key);
    }
    this.#prefetched.set(sid, prefetch);
  }

  /** How many session reads' token sets wait to be taken (what an unguarded route leaves goes within a second). */
  get prefetchedCount(): number {
    return this.#prefetched.size;
  }

  /** Forgets what {@link offerPrefetched} left for session `sid`. */
  dropPrefetched(sid: string): void {
    this.#prefetched.delete(sid);
  }

  /**
   * The provider's set as read with session `sid` by this request's session read, taken
   * once: `undefined` when there is none to take (another provider, another owner, another
   * request of the same session took it, or it is older than a second), then the caller
   * reads the backend. Whatever is here was read no earlier than the caller's own session.
   */
  takePrefetched(sid: string, owner: string, provider: string): StoredTokenSet | null | undefined {
    const prefetch = this.#prefetched.get(sid);
    const index = prefetch === undefined ? -1 : prefetch.providers.indexOf(provider);
    if (index < 0) return undefined;
    const slot = prefetch!.first + index;
    const raw = prefetch!.values[slot];
    if (raw === undefined) return undefined;
    prefetch!.values[slot] = undefined;
    if (prefetch!.values.every((value, i) => i < prefetch!.first || value === undefined)) this.#prefetched.delete(sid);
    if (prefetch!.owner !== owner || Date.now() - prefetch!.at > PREFETCH_MAX_AGE_MS) return undefined;
    return this.#fromEntry(this.tokenKey(owner, provider), parseStoredValue(raw));
  }

  /** A write or delete here: what was read before it for this owner is not handed out any more. */
  #forgetPrefetched(owner: string): void {
    if (this.#prefetched.size === 0) return;
    for (const [sid, prefetch] of this.#prefetched) if (prefetch.owner === owner) this.#prefetched.delete(sid);
  }

  #fromEntry(key: string, entry: StoredEntry | null): StoredTokenSet | null {
    if (!entry) return null;
    const { tokenSet, connectedAt } = this.#open(key, entry.value);
    return { tokenSet, connectedAt, generation: entry.generation };
  }

  /**
   * The stored value decrypted. The last value read under each key is remembered with its
   * plaintext, so a value read again byte for byte (the same random IV and GCM tag: the same
   * write) is not decrypted and parsed again. It never answers instead of the backend: a set
   * rewritten or deleted anywhere reads as a different value, or none. Shared between reads,
   * so the set is frozen.
   */
  #open(key: string, sealed: string): Opened {
    const last = this.#opened.get(key);
    if (last !== undefined && last.sealed === sealed) return last;
    const { tokenSet, connectedAt } = unseal(this.#cipher.decrypt(sealed, key));
    Object.freeze(tokenSet.extras);
    const opened: Opened = { sealed, tokenSet: Object.freeze(tokenSet), connectedAt };
    if (last === undefined && this.#opened.size >= MAX_OPENED) this.#opened.delete(this.#opened.keys().next().value!);
    this.#opened.set(key, opened);
    return opened;
  }

  /**
   * Stores a set. With `expectedGeneration`, writes only if nobody wrote since that
   * generation was read; returns the new generation, or `null` when another writer won.
   * `connectedAt`: when its login happened (a refresh passes the stored one on); default now.
   */
  async put(owner: string, provider: string, tokenSet: TokenSet, expectedGeneration?: number, connectedAt = Date.now()): Promise<number | null> {
    const key = this.tokenKey(owner, provider);
    const record: Sealed = { v: 1, set: tokenSet, connectedAt };
    const sealed = this.#cipher.encrypt(JSON.stringify(record), key);
    this.#forgetPrefetched(owner);
    return this.#call('write', () => this.backend.write(key, sealed, this.#ttlFor(tokenSet), expectedGeneration));
  }

  /**
   * A use of the stored set: with sliding retention, gives it `maxAgeSeconds` again (never
   * beyond what is still usable in it), at most once per tenth of `maxAgeSeconds` per key in
   * this process. Never changes the value or its generation; a failure is ignored.
   */
  touch(owner: string, provider: string, tokenSet: TokenSet): void {
    if (!this.#sliding || typeof this.backend.touch !== 'function') return;
    const key = this.tokenKey(owner, provider);
    const now = Date.now();
    const last = this.#touched.get(key);
    if (last !== undefined && now - last < (this.#maxAge * 1000) / 10) return;
    if (this.#touched.size >= MAX_REMEMBERED_TOUCHES) this.#touched.clear();
    this.#touched.set(key, now);
    this.#call('touch', () => this.backend.touch!(key, this.#ttlFor(tokenSet))).catch(() => this.#touched.delete(key));
  }

  async delete(owner: string, providers: readonly string[]): Promise<void> {
    this.#forgetPrefetched(owner);
    for (const provider of providers) {
      this.#touched.delete(this.tokenKey(owner, provider));
      this.#opened.delete(this.tokenKey(owner, provider));
    }
    await this.#call('remove', () => this.backend.remove(providers.map((p) => this.tokenKey(owner, p))));
  }

  #ttlFor(set: TokenSet): number {
    const usefulUntil = set.refreshToken !== undefined ? set.refreshTokenExpiresAt : set.expiresAt;
    if (usefulUntil === undefined || usefulUntil === null) return this.#maxAge;
    const seconds = Math.ceil((usefulUntil - Date.now()) / 1000);
    return Math.max(1, Math.min(this.#maxAge, seconds));
  }

  async #call<T>(name: StoreOperation, operation: () => Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Made only when the time is up: an Error (and its stack) per call was the store's largest cost.
    let timedOut: Error | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject((timedOut = new Error(`no answer within ${this.#timeoutMs} ms`))), this.#timeoutMs);
    });
    try {
      const pending = operation();
      // Settled late, after the timeout answered: nothing is waiting for it any more.
      pending.catch(ignore);
      return await Promise.race([pending, timeout]);
    } catch (cause) {
      const late = timedOut !== undefined && cause === timedOut;
      this.events.emit('store:error', { operation: name, reason: late ? 'timeout' : 'error' });
      throw new OAuthKeeperError(
        ErrorCodes.STORE_UNAVAILABLE,
        `The token store could not be reached${late ? ` (${timedOut!.message})` : ''}. ` +
          'Check that Redis is up and the client passed to RedisBackend is connected.',
        { cause, retryAfter: this.#retryAfter },
      );
    } finally {
      clearTimeout(timer);
    }
  }
}
