import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { safeReturnTo } from '../lib/return-to.js';
import type { KeeperParts } from './context.js';
import { isNavigation } from './respond.js';

export type UnauthorizedBehaviour = 'auto' | 'redirect' | 'status';

export interface EnsureAuthorizedOptions {
  /** `auto` (default): browser navigations are redirected to log in, other requests get 401. */
  unauthorized?: UnauthorizedBehaviour;
}

/**
 * Attached as `req.oauthKeeper` by `keeper.middleware()`. Typed loosely on purpose: the
 * ESM and CommonJS builds both augment `Express.Request`, and their declarations must agree.
 */
export interface KeeperContext {
  readonly keeper: object;
}

/** The keeper mounted on this request, if any. */
function mountedOn(req: Request): { ensureAuthorized(provider: string, options: EnsureAuthorizedOptions): RequestHandler } | undefined {
  const keeper = req.oauthKeeper?.keeper as { ensureAuthorized?: unknown } | undefined;
  return typeof keeper?.ensureAuthorized === 'function' ? (keeper as ReturnType<typeof mountedOn>) : undefined;
}

function notMounted(): OAuthKeeperError {
  return new OAuthKeeperError(
    ErrorCodes.MIDDLEWARE_NOT_MOUNTED,
    'ensureAuthorized found no token middleware on this request: mount app.use(keeper.middleware()) after express-session and before the guarded routes.',
  );
}

/**
 * The guard of `keeper` (the object `keeper.middleware()` attaches): puts the provider's
 * current token on `req.oauthToken`, refreshing it first when due. Without a usable
 * token, browser navigations are redirected to the login route (with `returnTo`) and
 * other requests get 401, through the keeper's responder.
 */
export function createGuard(keeper: object, parts: KeeperParts, provider: string, options: EnsureAuthorizedOptions): RequestHandler {
  const name = parts.strategy(provider).name;
  const behaviour = options.unauthorized ?? 'auto';
  if (!['auto', 'redirect', 'status'].includes(behaviour)) {
    throw configurationError(`ensureAuthorized unauthorized option must be "auto", "redirect" or "status", not "${behaviour}".`);
  }
  return (req, res, next) => {
    if (req.oauthKeeper?.keeper !== keeper) return next(notMounted());
    void guard(parts, name, behaviour, req, res, next);
  };
}

/** One guarded request (a function of its own: no closure made per request). */
async function guard(parts: KeeperParts, name: string, behaviour: UnauthorizedBehaviour, req: Request, res: Response, next: NextFunction): Promise<void> {
  let reason: OAuthKeeperError | undefined;
  try {
    const token = await parts.token(req, name);
    if (token) {
      req.oauthToken = token;
      return next();
    }
  } catch (error) {
    if (!(error instanceof OAuthKeeperError && error.code === ErrorCodes.REAUTHORIZATION_REQUIRED)) return parts.respond(error, req, res, next);
    reason = error;
  }
  res.set('cache-control', 'no-store');
  if (behaviour === 'redirect' || (behaviour === 'auto' && isNavigation(req))) {
    res.redirect(302, parts.loginURL(name, safeReturnTo(req.originalUrl)));
    return;
  }
  const error =
    reason ??
    new OAuthKeeperError(ErrorCodes.AUTHORIZATION_REQUIRED, `This route needs a ${name} authorization; log in at ${parts.loginURL(name)}.`, {
      provider: name,
    });
  parts.respond(error, req, res, next, true);
}

/** `ensureAuthorized` that finds the keeper mounted by `keeper.middleware()`. */
export function ensureAuthorized(provider: string, options: EnsureAuthorizedOptions = {}): RequestHandler {
  let handler: RequestHandler | undefined;
  let owner: object | undefined;
  return (req, res, next) => {
    const keeper = mountedOn(req);
    if (!keeper) return next(notMounted());
    if (owner !== keeper) {
      try {
        handler = keeper.ensureAuthorized(provider, options);
        owner = keeper;
      } catch (error) {
        return next(error);
      }
    }
    return handler!(req, res, next);
  };
}
