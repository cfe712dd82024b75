import type { Request, RequestHandler } from 'express';
import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import { safeReturnTo } from '../lib/return-to.js';
import { destroySession, ownerOf, publicHost } from '../passport/session.js';
import type { KeeperParts } from './context.js';
import { isNavigation } from './respond.js';

/**
 * Logout: revokes tokens where the provider supports it, clears every provider's tokens,
 * destroys the session and clears its cookie. Cross-origin requests are refused.
 */
export function createLogout(parts: KeeperParts, options: { returnTo?: string; revoke?: boolean }): RequestHandler {
  const returnTo = safeReturnTo(options.returnTo ?? '/');
  const revoke = options.revoke ?? true;
  return (req, res, next) => {
    void (async () => {
      try {
        if (isCrossOrigin(req)) {
          throw new OAuthKeeperError(ErrorCodes.CROSS_ORIGIN_REQUEST, 'Logout must be posted from this site; cross-origin requests are refused.');
        }
        const owner = ownerOf(req, false);
        if (owner) {
          if (revoke) await Promise.all(parts.providers.map((provider) => revokeStored(parts, owner, provider)));
          await parts.store.delete(owner, parts.providers);
        }
        await destroySession(req);
        res.clearCookie(parts.cookieName, { path: '/' });
        res.set('cache-control', 'no-store');
        if (isNavigation(req) || (req.method === 'POST' && /html/.test(req.get('accept') ?? ''))) res.redirect(303, returnTo);
        else res.status(204).end();
      } catch (error) {
        parts.respond(error, req, res, next);
      }
    })();
  };
}

/** Revokes the stored set of `provider` where it supports revocation; a failure is logged, never thrown. */
export async function revokeStored(parts: KeeperParts, owner: string, provider: string): Promise<void> {
  const strategy = parts.strategy(provider);
  if (!strategy.tokens.canRevoke) return;
  const stored = await parts.store.get(owner, provider).catch(() => null);
  if (!stored) return;
  await strategy.tokens.revoke(stored.tokenSet).catch((error: unknown) =>
    parts.logger.warn?.('token revocation failed', { provider, code: (error as OAuthKeeperError).code }),
  );
}

function isCrossOrigin(req: Request): boolean {
  const origin = req.get('origin');
  // The public origin, as Express's trust proxy says (never a forwarded header it does not trust).
  if (origin !== undefined && origin !== 'null') return origin !== `${req.protocol}://${publicHost(req)}`;
  if (origin === 'null') return true;
  const site = req.get('sec-fetch-site');
  return site === 'cross-site' || site === 'same-site';
}
