import type { Request, RequestHandler } from 'express';
import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import { safeReturnTo } from '../lib/return-to.js';
import { destroySession, ownerOf, publicHost } from '../passport/session.js';
import { isAppOwner } from '../store/owner.js';
import { revokeStored } from './connections.js';
import type { KeeperParts } from './context.js';
import { isNavigation } from './respond.js';

export interface LogoutOptions {
  /** Where browsers land afterwards (`303`); a same-origin path. Default `/`. */
  returnTo?: string;
  /** Revoke the tokens it removes where the provider supports it. Default true. */
  revoke?: boolean;
  /**
   * Whether logout also disconnects token sets that belong to an owner the app chose (the
   * keeper's `owner` option): they outlive sessions by design — other browsers and workers
   * of that owner keep using them — so the default is false. The session's own token sets
   * (no `owner` option, or it chose none) are always removed: nobody could reach them again.
   */
  disconnect?: boolean;
}

/**
 * Logout: ends the session — destroys it and clears its cookie — after removing (and
 * revoking, where the provider supports it) the session's own tokens, and an app-chosen
 * owner's only with `disconnect: true`. Cross-origin requests are refused.
 */
export function createLogout(parts: KeeperParts, options: LogoutOptions): RequestHandler {
  const returnTo = safeReturnTo(options.returnTo ?? '/');
  const revoke = options.revoke ?? true;
  const disconnect = options.disconnect ?? false;
  return (req, res, next) => {
    void (async () => {
      try {
        if (isCrossOrigin(req)) {
          throw new OAuthKeeperError(ErrorCodes.CROSS_ORIGIN_REQUEST, 'Logout must be posted from this site; cross-origin requests are refused.');
        }
        const owner = ownerOf(req, false);
        if (owner && (disconnect || !isAppOwner(owner))) {
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

function isCrossOrigin(req: Request): boolean {
  const origin = req.get('origin');
  // The public origin, as Express's trust proxy says (never a forwarded header it does not trust).
  if (origin !== undefined && origin !== 'null') return origin !== `${req.protocol}://${publicHost(req)}`;
  if (origin === 'null') return true;
  const site = req.get('sec-fetch-site');
  return site === 'cross-site' || site === 'same-site';
}
