import type { OAuthKeeperError } from '../errors.js';
import type { TokenStore } from '../store/token-store.js';
import type { AnyStrategy, KeeperLogger } from './context.js';

/** What one owner has connected: a provider and facts about its token set, never a token. */
export interface OwnerConnection {
  /** The strategy's name. */
  readonly provider: string;
  /** When the access token expires; `null` when it never does (sop's `app_auth_token`). */
  readonly expiresAt: Date | null;
  readonly scope: string | undefined;
  /** When the login that stored this set happened (refreshes keep it). */
  readonly connectedAt: Date;
  /** Whether a refresh token is kept, so the set can be refreshed without the user. */
  readonly refreshable: boolean;
}

/** The parts of a keeper that listing, revoking and disconnecting use. */
export interface ConnectionParts {
  readonly store: TokenStore;
  readonly providers: readonly string[];
  readonly logger: KeeperLogger;
  strategy(provider: string): AnyStrategy;
}

/** The providers `owner` has a token set of, in the keeper's order. */
export async function listConnections(parts: ConnectionParts, owner: string): Promise<OwnerConnection[]> {
  const stored = await Promise.all(parts.providers.map((provider) => parts.store.get(owner, provider)));
  return parts.providers.flatMap((provider, i) => {
    const entry = stored[i];
    if (!entry) return [];
    const { tokenSet } = entry;
    const connection: OwnerConnection = {
      provider,
      expiresAt: tokenSet.expiresAt === null ? null : new Date(tokenSet.expiresAt),
      scope: tokenSet.scope,
      connectedAt: new Date(entry.connectedAt),
      refreshable: tokenSet.refreshToken !== undefined,
    };
    return [Object.freeze(connection)];
  });
}

/** Revokes the stored set of `provider` where it supports revocation; a failure is logged, never thrown. */
export async function revokeStored(parts: Omit<ConnectionParts, 'providers'>, owner: string, provider: string): Promise<void> {
  const strategy = parts.strategy(provider);
  if (!strategy.tokens.canRevoke) return;
  const stored = await parts.store.get(owner, provider).catch(() => null);
  if (!stored) return;
  await strategy.tokens.revoke(stored.tokenSet).catch((error: unknown) =>
    parts.logger.warn?.('token revocation failed', { provider, code: (error as OAuthKeeperError).code }),
  );
}

/**
 * Forgets `owner`'s set of `provider`, revoking it first where the provider supports it
 * (unless `revoke` is false). Resolves to whether there was one.
 */
export async function disconnectOwner(parts: Omit<ConnectionParts, 'providers'>, owner: string, provider: string, revoke: boolean): Promise<boolean> {
  const name = parts.strategy(provider).name;
  const stored = await parts.store.get(owner, name);
  if (!stored) return false;
  if (revoke) await revokeStored(parts, owner, name);
  await parts.store.delete(owner, [name]);
  return true;
}
