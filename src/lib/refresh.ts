import { EventEmitter } from 'node:events';
import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import type { StoredTokenSet, TokenStore } from '../store/token-store.js';
import { randomToken } from './pkce.js';
import type { TokenClient } from './token-client.js';
import { isExpired, type TokenSet } from './token-set.js';

export interface RefreshOptions {
  /** Refresh this many seconds before expiry. Default 60. */
  skewSeconds?: number;
  /** Lease of the cross-instance refresh lock, in ms; renewed while the refresh runs. Default 15000. */
  lockLeaseMs?: number;
  /** How long a caller waits for another instance's refresh before giving up with 503. Default 30000. */
  waitTimeoutMs?: number;
  /** Retries of a transient refresh failure (network, timeout, 5xx), with backoff. Default 2. */
  maxRetries?: number;
  /** First backoff delay in ms; doubles each retry. Default 200. */
  retryDelayMs?: number;
  /** Seconds sent in `Retry-After` when a refresh cannot be done now. Default 5. */
  retryAfterSeconds?: number;
}

/** Events a user can subscribe to on `keeper.events`. No event carries a token. */
export interface RefreshEvents {
  'refresh:start': [{ provider: string; reason: 'expiring' | 'rejected' }];
  'refresh:success': [{ provider: string; durationMs: number; retries: number }];
  'refresh:failure': [{ provider: string; code: string; transient: boolean; retries: number }];
  'refresh:retry': [{ provider: string; attempt: number; delayMs: number }];
  'lock:wait': [{ provider: string; waitedMs: number; outcome: 'refreshed-elsewhere' | 'acquired' | 'timeout' }];
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref?.());

/**
 * Owns expiry, single-flight in this process, the cross-instance lock and the
 * compare-and-set write-back. Token sets live in the token store, never in the
 * session, so a session save can never write an old token set back.
 */
export class RefreshCoordinator {
  readonly events = new EventEmitter<RefreshEvents>();
  readonly #store: TokenStore;
  readonly #inFlight = new Map<string, Promise<TokenSet | null>>();
  readonly #skewMs: number;
  readonly #leaseMs: number;
  readonly #waitMs: number;
  readonly #maxRetries: number;
  readonly #retryDelayMs: number;
  readonly retryAfterSeconds: number;

  constructor(store: TokenStore, options: RefreshOptions = {}) {
    this.#store = store;
    this.#skewMs = (options.skewSeconds ?? 60) * 1000;
    this.#leaseMs = options.lockLeaseMs ?? 15_000;
    this.#waitMs = options.waitTimeoutMs ?? 30_000;
    this.#maxRetries = options.maxRetries ?? 2;
    this.#retryDelayMs = options.retryDelayMs ?? 200;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 5;
    // An EventEmitter with no 'error' listener throws; we never emit 'error'.
  }

  needsRefresh(set: TokenSet, now = Date.now()): boolean {
    return isExpired(set, now, this.#skewMs);
  }

  /**
   * The current usable token set for (owner, provider), refreshed first when it is
   * about to expire; `null` when there is none. With `rejected`, the provider refused
   * that access token: refresh unless someone already replaced it.
   */
  async getFresh(owner: string, client: TokenClient, rejected?: string): Promise<TokenSet | null> {
    const stored = await this.#store.get(owner, client.name);
    if (!stored) return null;
    if (rejected === undefined ? !this.needsRefresh(stored.tokenSet) : stored.tokenSet.accessToken !== rejected) {
      return stored.tokenSet;
    }
    const key = `${owner}\u0000${client.name}`;
    let flight = this.#inFlight.get(key);
    if (!flight) {
      flight = this.#refreshAcrossInstances(owner, client, stored, rejected).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, flight);
    }
    return flight;
  }

  #isCurrent(candidate: StoredTokenSet, before: StoredTokenSet, rejected: string | undefined): boolean {
    if (candidate.generation === before.generation) return false;
    return rejected === undefined ? !this.needsRefresh(candidate.tokenSet) : candidate.tokenSet.accessToken !== rejected;
  }

  async #refreshAcrossInstances(
    owner: string,
    client: TokenClient,
    before: StoredTokenSet,
    rejected: string | undefined,
  ): Promise<TokenSet | null> {
    const provider = client.name;
    const lockKey = this.#store.lockKey(owner, provider);
    const lockOwner = randomToken(16);
    const waitStart = Date.now();
    let delay = 25;
    for (;;) {
      if (await this.#store.backend.acquireLock(lockKey, lockOwner, this.#leaseMs)) break;
      await sleep(delay);
      delay = Math.min(delay * 2, 250);
      const now = await this.#store.get(owner, provider);
      if (!now) return null;
      if (this.#isCurrent(now, before, rejected)) {
        this.events.emit('lock:wait', { provider, waitedMs: Date.now() - waitStart, outcome: 'refreshed-elsewhere' });
        return now.tokenSet;
      }
      if (Date.now() - waitStart > this.#waitMs) {
        this.events.emit('lock:wait', { provider, waitedMs: Date.now() - waitStart, outcome: 'timeout' });
        return this.#unavailable(before.tokenSet, provider, rejected, undefined);
      }
    }
    if (Date.now() - waitStart > 5) {
      this.events.emit('lock:wait', { provider, waitedMs: Date.now() - waitStart, outcome: 'acquired' });
    }
    const renew = setInterval(() => {
      this.#store.backend.renewLock(lockKey, lockOwner, this.#leaseMs).catch(() => undefined);
    }, Math.max(50, Math.floor(this.#leaseMs / 3)));
    renew.unref?.();
    try {
      // Re-read under the lock: another instance may have refreshed between our read and the lock.
      const current = await this.#store.get(owner, provider);
      if (!current) return null;
      if (this.#isCurrent(current, before, rejected)) return current.tokenSet;
      return await this.#refreshHeld(owner, client, current, rejected);
    } finally {
      clearInterval(renew);
      await this.#store.backend.releaseLock(lockKey, lockOwner).catch(() => undefined);
    }
  }

  async #refreshHeld(owner: string, client: TokenClient, current: StoredTokenSet, rejected: string | undefined): Promise<TokenSet | null> {
    const provider = client.name;
    const started = Date.now();
    this.events.emit('refresh:start', { provider, reason: rejected === undefined ? 'expiring' : 'rejected' });
    let retries = 0;
    for (;;) {
      try {
        const refreshed = await client.refresh(current.tokenSet);
        const generation = await this.#store.put(owner, provider, refreshed, current.generation);
        if (generation === null) {
          // Someone logged out or logged in again meanwhile: their write wins.
          const latest = await this.#store.get(owner, provider);
          return latest?.tokenSet ?? null;
        }
        this.events.emit('refresh:success', { provider, durationMs: Date.now() - started, retries });
        return refreshed;
      } catch (error) {
        const failure = error instanceof OAuthKeeperError ? error : undefined;
        if (failure?.transient && retries < this.#maxRetries) {
          const delayMs = this.#retryDelayMs * 2 ** retries;
          retries += 1;
          this.events.emit('refresh:retry', { provider, attempt: retries, delayMs });
          await sleep(delayMs);
          continue;
        }
        this.events.emit('refresh:failure', {
          provider,
          code: failure?.code ?? 'unknown',
          transient: failure?.transient ?? false,
          retries,
        });
        if (failure && !failure.transient) {
          // Re-read first: another instance may have rotated the refresh token already.
          const latest = await this.#store.get(owner, provider);
          if (latest && latest.generation !== current.generation) return latest.tokenSet;
          await this.#store.delete(owner, [provider]);
          throw new OAuthKeeperError(
            ErrorCodes.REAUTHORIZATION_REQUIRED,
            `The ${provider} refresh was refused${failure.oauthError ? ` (${failure.oauthError})` : ''}; the user must authorize again.`,
            { provider, cause: failure, ...(failure.oauthError ? { oauthError: failure.oauthError } : {}) },
          );
        }
        return this.#unavailable(current.tokenSet, provider, rejected, error);
      }
    }
  }

  /**
   * Transient trouble: keep using a token that is still valid (and was not just
   * rejected by the provider); otherwise 503 with Retry-After.
   */
  #unavailable(set: TokenSet, provider: string, rejected: string | undefined, cause: unknown): TokenSet {
    if (rejected === undefined && !isExpired(set, Date.now())) return set;
    throw new OAuthKeeperError(
      ErrorCodes.REFRESH_UNAVAILABLE,
      `The ${provider} token has expired and could not be refreshed right now; try again shortly.`,
      { provider, transient: true, ...(cause === undefined ? {} : { cause }) },
    );
  }
}
