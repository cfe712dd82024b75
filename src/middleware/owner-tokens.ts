import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import type { ApiClient } from '../lib/api/client.js';
import type { RefreshCoordinator } from '../lib/refresh.js';
import { toOAuthToken, type OAuthToken } from '../lib/token-set.js';
import { appOwner } from '../store/owner.js';
import { disconnectOwner, listConnections, type ConnectionParts, type OwnerConnection } from './connections.js';
import { fetchFor, type OAuthFetch } from './fetch.js';

/** What {@link OwnerTokens} uses of its keeper. */
export interface OwnerParts extends ConnectionParts {
  readonly refresher: Pick<RefreshCoordinator, 'forRequest'>;
  client(provider: string): ApiClient;
}

/**
 * One owner's tokens, for code that has no request — a worker, a queue consumer, a
 * script: `keeper.forOwner(userId)`. The same store, refresh coordinator (single-flight in
 * the process, the cross-instance Redis lock, compare-and-set write-back) and API client
 * as the app's web requests, so a job and a request rotating the same refresh token at the
 * same moment still make one refresh. Each call is its own unit: one store read, at most
 * one refresh cycle, within `refresh.requestBudgetMs`.
 */
export class OwnerTokens {
  /** The owner key the app chose. */
  readonly owner: string;
  /**
   * Calls the provider's API for this owner, as `req.oauthFetch` does for a session: a path
   * under the provider's API base (or an absolute URL under it); credentials attached the
   * provider's way (di parameters, Bearer, sop's signed gateway form — `POST /<method>` with
   * the JSON `biz_content`), refreshed first when due, refreshed once and retried once when
   * the provider rejects the token. Resolves to a standard `Response` for every HTTP answer;
   * rejects with an OAuthKeeperError: AUTHORIZATION_REQUIRED (not connected),
   * REAUTHORIZATION_REQUIRED (the refresh was refused: the set is gone), REFRESH_UNAVAILABLE,
   * API_UPSTREAM_FAILED / _TIMEOUT, API_REQUEST_INVALID.
   */
  readonly fetch: OAuthFetch;
  readonly #id: string;
  readonly #parts: OwnerParts;

  constructor(parts: OwnerParts, owner: string) {
    this.#id = appOwner(owner, 'The owner given to keeper.forOwner()');
    this.owner = owner;
    this.#parts = parts;
    this.fetch = fetchFor((provider) => parts.client(provider), () => ({ owner: this.#id }));
  }

  /**
   * The provider's current token for this owner, refreshed first when it is about to
   * expire. Rejects with AUTHORIZATION_REQUIRED when the owner has not connected it, and
   * REAUTHORIZATION_REQUIRED when the provider refused the refresh token (the set was
   * deleted; the `reauthorization:required` event names the owner).
   */
  async token(provider: string): Promise<OAuthToken> {
    const strategy = this.#parts.strategy(provider);
    const set = await this.#parts.refresher.forRequest({}, this.#id, strategy.tokens);
    if (!set) throw notConnected(strategy.name);
    return toOAuthToken(strategy.name, set);
  }

  /** The providers this owner has connected: expiry, scope, when — never a token. */
  connections(): Promise<OwnerConnection[]> {
    return listConnections(this.#parts, this.#id);
  }

  /**
   * Disconnects one provider for this owner — every browser and worker of it: revokes the
   * tokens where the provider supports revocation (unless `revoke: false`; a failed
   * revocation is logged and the set still removed), then deletes them. Resolves to whether
   * the provider was connected.
   */
  disconnect(provider: string, options: { revoke?: boolean } = {}): Promise<boolean> {
    return disconnectOwner(this.#parts, this.#id, provider, options.revoke ?? true);
  }
}

function notConnected(provider: string): OAuthKeeperError {
  return new OAuthKeeperError(
    ErrorCodes.AUTHORIZATION_REQUIRED,
    `This owner has no ${provider} tokens (never connected, or disconnected): the user must log in with ${provider} in the app first.`,
    { provider },
  );
}
