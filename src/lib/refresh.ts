import { EventEmitter } from 'node:events';
import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import { ownerKeyOf } from '../store/owner.js';
import type { ApiCallEvents, LoginEvents } from './events.js';
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
  /**
   * The most time one request spends on refreshing, in ms, whatever the attempts, retries
   * and lock waits: then it goes on with a still-valid token, or answers 503. Default 10000.
   */
  requestBudgetMs?: number;
  /** A provider's `Retry-After` up to this many ms is waited out within the budget; a longer one ends the refresh at once. Default 2000. */
  maxRetryAfterMs?: number;
}

/**
 * One request's share of refreshing a provider's token: at most one refresh cycle, and
 * no longer than its deadline. Made by the keeper per (request, provider).
 */
export interface RefreshBudget {
  /** `Date.now()` after which this request stops waiting for a refresh. */
  readonly deadline: number;
  /** Set once this request has waited for a refresh cycle. */
  spent: boolean;
  /** How that cycle failed, for whoever in the request asks again (its Retry-After). */
  failure?: unknown;
}

/** Events a user can subscribe to on `keeper.events`. No event carries a token. */
export interface RefreshEvents {
  'refresh:start': [{ provider: string; reason: 'expiring' | 'rejected' }];
  'refresh:success': [{ provider: string; durationMs: number; retries: number }];
  /** `durationMs` from the refresh's start, its retries included. */
  'refresh:failure': [{ provider: string; code: string; transient: boolean; retries: number; durationMs: number }];
  'refresh:retry': [{ provider: string; attempt: number; delayMs: number }];
  'lock:wait': [{ provider: string; waitedMs: number; outcome: 'refreshed-elsewhere' | 'acquired' | 'timeout' }];
  /**
   * The provider finally refused the refresh token (or there is none and the token
   * expired): the set was deleted and the user must authorize again. `owner` is the key the
   * app chose (`owner` option, `keeper.forOwner(key)`), `null` for a session's own tokens.
   */
  'reauthorization:required': [{ provider: string; owner: string | null; oauthError?: string }];
}

/** Everything `keeper.events` emits: refreshes, logins and API calls. No event carries a token. */
export interface KeeperEvents extends RefreshEvents, LoginEvents, ApiCallEvents {}

/**
 * One request's (owner, provider): its token set once read, and its budget (the entry is
 * the budget). A request's entries are a short list: most requests use one provider.
 */
interface RequestEntry extends RefreshBudget {
  readonly owner: string;
  readonly provider: string;
  current: Promise<TokenSet | null> | undefined;
  readonly next: RequestEntry | undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref?.());

/**
 * Owns expiry, single-flight in this process, the cross-instance lock and the
 * compare-and-set write-back. Token sets live in the token store, never in the
 * session, so a session save can never write an old token set back.
 */
export class RefreshCoordinator {
  readonly events = new EventEmitter<KeeperEvents>();
  readonly #store: TokenStore;
  readonly #inFlight = new Map<string, Promise<TokenSet | null>>();
  readonly #requests = new WeakMap<object, RequestEntry>();
  readonly #skewMs: number;
  readonly #leaseMs: number;
  readonly #waitMs: number;
  readonly #maxRetries: number;
  readonly #retryDelayMs: number;
  readonly retryAfterSeconds: number;
  readonly requestBudgetMs: number;
  readonly #maxRetryAfterMs: number;

  constructor(store: TokenStore, options: RefreshOptions = {}) {
    this.#store = store;
    this.#skewMs = (options.skewSeconds ?? 60) * 1000;
    this.#leaseMs = options.lockLeaseMs ?? 15_000;
    this.#waitMs = options.waitTimeoutMs ?? 30_000;
    this.#maxRetries = options.maxRetries ?? 2;
    this.#retryDelayMs = options.retryDelayMs ?? 200;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 5;
    this.requestBudgetMs = options.requestBudgetMs ?? 10_000;
    this.#maxRetryAfterMs = options.maxRetryAfterMs ?? 2000;
    // An EventEmitter with no 'error' listener throws; we never emit 'error'.
  }

  needsRefresh(set: TokenSet, now = Date.now()): boolean {
    return isExpired(set, now, this.#skewMs);
  }

  /** A fresh budget for one request (see {@link RefreshBudget}). */
  budget(now = Date.now()): RefreshBudget {
    return { deadline: now + this.requestBudgetMs, spent: false };
  }

  /**
   * For one request (any object that lives as long as it): the token set of (owner,
   * provider), read and refreshed when due once, then shared by everyone in that request
   * (the guard, the proxy, `req.oauthFetch`), all under one {@link RefreshBudget}.
   */
  forRequest(request: object, owner: string, client: TokenClient): Promise<TokenSet | null> {
    const entry = this.#requestEntry(request, owner, client.name);
    if (entry.current !== undefined) return entry.current;
    // Read in the same Redis command as this request's session, when its session store is the keeper's.
    const sid = (request as { sessionID?: unknown }).sessionID;
    const known = typeof sid === 'string' ? this.#store.takePrefetched(sid, owner, client.name) : undefined;
    return this.#remember(entry, this.getFresh(owner, client, undefined, entry, known));
  }

  /** For one request: after the provider refused `rejected`, its replacement, within the request's budget. */
  replaceRejected(request: object, owner: string, client: TokenClient, rejected: string): Promise<TokenSet | null> {
    const entry = this.#requestEntry(request, owner, client.name);
    return this.#remember(entry, this.getFresh(owner, client, rejected, entry));
  }

  #requestEntry(request: object, owner: string, provider: string): RequestEntry {
    const first = this.#requests.get(request);
    for (let entry = first; entry !== undefined; entry = entry.next) {
      if (entry.owner === owner && entry.provider === provider) return entry;
    }
    const entry: RequestEntry = { owner, provider, deadline: Date.now() + this.requestBudgetMs, spent: false, current: undefined, next: first };
    this.#requests.set(request, entry);
    return entry;
  }

  #remember(entry: RequestEntry, pending: Promise<TokenSet | null>): Promise<TokenSet | null> {
    entry.current = pending;
    // A failure is not remembered: a later caller in the request reads again (its budget still holds).
    pending.catch(() => {
      if (entry.current === pending) entry.current = undefined;
    });
    return pending;
  }

  /**
   * The current usable token set for (owner, provider), refreshed first when it is
   * about to expire; `null` when there is none. With `rejected`, the provider refused
   * that access token: refresh unless someone already replaced it. With a `budget`, the
   * caller waits at most one refresh cycle, until the budget's deadline; the refresh
   * itself goes on for whoever comes next. `known`: the stored set as just read (by the
   * session store, with this request's session) instead of reading it again.
   */
  async getFresh(owner: string, client: TokenClient, rejected?: string, budget?: RefreshBudget, known?: StoredTokenSet | null): Promise<TokenSet | null> {
    const stored = known === undefined ? await this.#store.get(owner, client.name) : known;
    if (!stored) return null;
    this.#store.touch(owner, client.name, stored.tokenSet);
    if (rejected === undefined ? !this.needsRefresh(stored.tokenSet) : stored.tokenSet.accessToken !== rejected) {
      return stored.tokenSet;
    }
    if (budget?.spent) {
      // This request had its refresh cycle: a rejected token goes back as it is (the caller
      // passes the provider's answer on); an expired one is answered as unavailable.
      return rejected === undefined ? this.#unavailable(stored.tokenSet, client.name, undefined, budget.failure) : stored.tokenSet;
    }
    const key = `${owner}\u0000${client.name}`;
    let flight = this.#inFlight.get(key);
    if (!flight) {
      flight = this.#refreshAcrossInstances(owner, client, stored, rejected).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, flight);
    }
    if (!budget) return flight;
    budget.spent = true;
    const remaining = budget.deadline - Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outOfTime = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(0, remaining));
    });
    try {
      const outcome = await Promise.race([flight, outOfTime]);
      if (outcome !== 'timeout') return outcome;
      return this.#unavailable(stored.tokenSet, client.name, rejected, undefined);
    } catch (error) {
      budget.failure = error instanceof OAuthKeeperError && error.code === ErrorCodes.REFRESH_UNAVAILABLE ? (error.cause ?? error) : error;
      throw error;
    } finally {
      clearTimeout(timer);
    }
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
    const deadline = started + this.requestBudgetMs;
    this.events.emit('refresh:start', { provider, reason: rejected === undefined ? 'expiring' : 'rejected' });
    let retries = 0;
    let refreshed: TokenSet;
    for (;;) {
      try {
        refreshed = await client.refresh(current.tokenSet);
        break;
      } catch (error) {
        const failure = error instanceof OAuthKeeperError ? error : undefined;
        const delayMs = failure?.retryAfter !== undefined ? failure.retryAfter * 1000 : this.#retryDelayMs * 2 ** retries;
        const retryable = failure?.transient === true && !failure.grantInvalid && retries < this.#maxRetries;
        // A provider's Retry-After longer than maxRetryAfterMs ends the refresh; our own backoff only has the budget.
        const waitable = failure?.retryAfter === undefined || delayMs <= this.#maxRetryAfterMs;
        if (retryable && waitable && Date.now() + delayMs < deadline) {
          retries += 1;
          this.events.emit('refresh:retry', { provider, attempt: retries, delayMs });
          await sleep(delayMs);
          continue;
        }
        this.events.emit('refresh:failure', { provider, code: failure?.code ?? 'unknown', transient: failure?.transient ?? false, retries, durationMs: Date.now() - started });
        return this.#afterFailure(owner, client, current, rejected, error);
      }
    }
    // Only the provider's answer is retried: a store fault from here on propagates as it is.
    const generation = await this.#store.put(owner, provider, refreshed, current.generation, current.connectedAt);
    if (generation === null) {
      // Someone logged out or logged in again meanwhile: their write wins.
      const latest = await this.#store.get(owner, provider);
      return latest?.tokenSet ?? null;
    }
    this.events.emit('refresh:success', { provider, durationMs: Date.now() - started, retries });
    return refreshed;
  }

  /**
   * A refresh that did not work. Only the provider saying the grant is invalid deletes
   * the stored set; anything else — network, provider, our own configuration — keeps it,
   * and a still-valid token goes on being used.
   */
  async #afterFailure(owner: string, client: TokenClient, current: StoredTokenSet, rejected: string | undefined, error: unknown): Promise<TokenSet | null> {
    const provider = client.name;
    const failure = error instanceof OAuthKeeperError ? error : undefined;
    // Re-read first: another instance may have rotated the refresh token meanwhile.
    const latest = await this.#store.get(owner, provider);
    // Logged out meanwhile: there is no token to hand back, whatever the refresh did.
    if (!latest) return null;
    if (latest.generation !== current.generation) return latest.tokenSet;
    if (failure && (failure.grantInvalid || failure.code === ErrorCodes.REAUTHORIZATION_REQUIRED)) {
      await this.#store.delete(owner, [provider]);
      this.events.emit('reauthorization:required', {
        provider,
        owner: ownerKeyOf(owner),
        ...(failure.oauthError === undefined ? {} : { oauthError: failure.oauthError }),
      });
      if (failure.code === ErrorCodes.REAUTHORIZATION_REQUIRED) throw failure;
      throw new OAuthKeeperError(
        ErrorCodes.REAUTHORIZATION_REQUIRED,
        `The ${provider} refresh was refused${failure.oauthError ? ` (${failure.oauthError})` : ''}; the user must authorize again.`,
        { provider, cause: failure, ...(failure.oauthError ? { oauthError: failure.oauthError } : {}) },
      );
    }
    if (failure && !failure.transient) {
      if (rejected === undefined && !isExpired(current.tokenSet, Date.now())) return current.tokenSet;
      throw failure;
    }
    return this.#unavailable(current.tokenSet, provider, rejected, error);
  }

  /**
   * Transient trouble: keep using a token that is still valid (and was not just
   * rejected by the provider); otherwise 503 with Retry-After.
   */
  #unavailable(set: TokenSet, provider: string, rejected: string | undefined, cause: unknown): TokenSet {
    if (rejected === undefined && !isExpired(set, Date.now())) return set;
    const retryAfter = cause instanceof OAuthKeeperError ? cause.retryAfter : undefined;
    throw new OAuthKeeperError(
      ErrorCodes.REFRESH_UNAVAILABLE,
      rejected === undefined
        ? `The ${provider} token has expired and could not be refreshed right now; try again shortly.`
        : `The ${provider} token was refused by the provider and could not be replaced right now; try again shortly.`,
      { provider, transient: true, retryAfter: retryAfter ?? this.retryAfterSeconds, ...(cause === undefined ? {} : { cause }) },
    );
  }
}
