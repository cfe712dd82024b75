import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import type { OAuthToken } from '../lib/token-set.js';

/**
 * A route handler behind `ensureAuthorized`: its `req.oauthToken` is present, and so is
 * `req.oauthFetch` (the guard runs only where `keeper.middleware()` ran). The type
 * parameters are the first four of Express's `RequestHandler` (route parameters, response
 * body, request body, query): `authorized<{ id: string }>((req, res) => ...)` types
 * `req.params.id` (a wrapped handler does not see the route's path).
 */
export type AuthorizedHandler<P = Request['params'], ResBody = unknown, ReqBody = unknown, ReqQuery = Request['query']> = (
  req: Request<P, ResBody, ReqBody, ReqQuery> & { readonly oauthToken: OAuthToken; oauthFetch: NonNullable<Request['oauthFetch']> },
  res: Response<ResBody>,
  next: NextFunction,
) => unknown;

function notGuarded(missing: string): OAuthKeeperError {
  return new OAuthKeeperError(
    ErrorCodes.MIDDLEWARE_NOT_MOUNTED,
    `authorized(handler) found no ${missing}: it runs behind the guard — app.use(keeper.middleware()), then keeper.ensureAuthorized(provider) (or ensureAuthorized(provider)) before it on this route.`,
  );
}

/**
 * Wraps a handler that runs behind the guard, so that it reads `req.oauthToken` and calls
 * `req.oauthFetch` with no cast. Mounted where no guard ran, it calls `next()` with an
 * `OAUTH_KEEPER_MIDDLEWARE_NOT_MOUNTED` error instead of running the handler. A rejected
 * promise goes to `next(error)`, on Express 4 as on 5; any value the handler returns is ignored.
 *
 * @example
 * app.get('/me', keeper.ensureAuthorized('di'), authorized(async (req, res) => {
 *   const user = await req.oauthFetch('di', '/user');
 *   res.status(user.status).json({ user: await user.json(), expiresAt: req.oauthToken.expiresAt });
 * }));
 */
export function authorized<P = Request['params'], ResBody = unknown, ReqBody = unknown, ReqQuery = Request['query']>(
  handler: AuthorizedHandler<P, ResBody, ReqBody, ReqQuery>,
): RequestHandler<P, ResBody, ReqBody, ReqQuery> {
  if (typeof handler !== 'function') throw configurationError('authorized(handler) needs a function (req, res, next).');
  return (req, res, next) => {
    if (!req.oauthToken) return next(notGuarded('req.oauthToken'));
    if (!req.oauthFetch) return next(notGuarded('req.oauthFetch'));
    try {
      const result = handler(req as Parameters<typeof handler>[0], res, next);
      if (result instanceof Promise) result.catch((error: unknown) => next(error ?? new Error('The authorized handler rejected without a reason.')));
    } catch (error) {
      next(error);
    }
  };
}
