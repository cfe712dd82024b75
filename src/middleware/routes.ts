import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { loginFailure } from '../lib/events.js';
import { safeReturnTo } from '../lib/return-to.js';
import { regenerateSession, requireSession, saveSession } from '../passport/session.js';
import { sessionIdAtCallback, type AuthenticationInfo } from '../passport/options.js';
import { relayIfNeeded } from './callback-relay.js';
import type { AnyStrategy, KeeperParts } from './context.js';
import { loginOwner } from './owner-binding.js';

/**
 * The login and callback routes the keeper answers for each strategy, and
 * `completeLogin()` for apps that mount `passport.authenticate` themselves.
 */

/**
 * Passport assigns a request's success/fail/redirect/error onto the object it is given:
 * hand it an object of this request's own, never the shared strategy.
 */
function perRequest<S extends object>(strategy: S): S {
  return Object.create(strategy) as S;
}

/**
 * What a `fail(info, status)` of the strategy means for the keeper's own routes: the typed
 * error it carries (state mismatch, denied, ...), or, when verify said no, a 403.
 */
function refusalOf(info: unknown, status: number | undefined, provider: string): OAuthKeeperError {
  const failure = info as { message?: unknown; error?: unknown } | undefined;
  if (failure?.error instanceof OAuthKeeperError) return failure.error;
  const message = typeof failure?.message === 'string' ? failure.message : 'The account was not accepted.';
  return new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, message, { provider, status: status ?? 403 });
}

export function loginRoute(parts: KeeperParts, strategy: AnyStrategy, req: Request, res: Response, next: NextFunction): void {
  try {
    requireSession(req, 'The oauth-keeper login route');
  } catch (error) {
    return parts.respond(error, req, res, next);
  }
  const returnTo = safeReturnTo(req.query['returnTo']);
  parts.logger.debug?.('login started', { provider: strategy.name });
  const started = Date.now();
  parts.passport.authenticate(perRequest(strategy), { returnTo, sessionCookieName: parts.cookieName }, (err, _user, info, status) => {
    // Only reached when the strategy did not redirect.
    const error = err ?? refusalOf(info, status, strategy.name);
    parts.refresher.events.emit('login:failure', loginFailure(strategy.name, error, started));
    parts.respond(error, req, res, next);
  })(req, res, next);
}

export function callbackRoute(parts: KeeperParts, strategy: AnyStrategy, req: Request, res: Response, next: NextFunction): void {
  void (async () => {
    const started = Date.now();
    try {
      requireSession(req, 'The oauth-keeper callback route');
      if (req.method === 'POST' && req.body === undefined) req.body = await readForm(req);
      if (relayIfNeeded(strategy, parts.cookieName, req, res)) return;
      const { user, info, status } = await new Promise<{ user: unknown; info: unknown; status: number | undefined }>((resolve, reject) =>
        parts.passport.authenticate(perRequest(strategy), { sessionCookieName: parts.cookieName, session: false }, (err, user, info, status) =>
          err ? reject(err) : resolve({ user, info, status }),
        )(req, res, (err?: unknown) => reject(err ?? new Error('authentication passed'))),
      );
      if (!user) throw refusalOf(info, status, strategy.name);
      await establish(parts, req, user, (info as AuthenticationInfo).provider);
      await keepLogin(parts, req, info as AuthenticationInfo, user);
      res.set('cache-control', 'no-store');
      res.redirect(303, (info as AuthenticationInfo).returnTo);
      parts.refresher.events.emit('login:success', { provider: strategy.name, durationMs: Date.now() - started });
    } catch (error) {
      parts.refresher.events.emit('login:failure', loginFailure(strategy.name, error, started));
      parts.respond(error, req, res, next);
    }
  })();
}

/** See `Keeper.completeLogin`. */
export function completeLogin(parts: KeeperParts, options: { redirect?: boolean }): RequestHandler {
  const redirect = options.redirect ?? true;
  return (req, res, next) => {
    void (async () => {
      const started = Date.now();
      const info = req.authInfo as AuthenticationInfo | undefined;
      try {
        const arrivedWith = info === undefined ? undefined : sessionIdAtCallback(info);
        if (info === undefined || arrivedWith === undefined || !parts.has(info.provider)) {
          throw configurationError(
            'keeper.completeLogin() found no oauth-keeper login on this request: mount it right after ' +
              'passport.authenticate(<a strategy given to oauthKeeper, or one whose verify is wrapped by keepTokens()>) ' +
              'on the callback route, and do not set authInfo: false.',
          );
        }
        requireSession(req, 'keeper.completeLogin()');
        // Passport's req.logIn changed the id already, unless session: false (or unknown: change it).
        if (arrivedWith === null || req.sessionID === arrivedWith) await regenerateSession(req);
        // An adopted passport-oauth2 strategy has no returnTo of its own: Passport's session.returnTo.
        const session = req.session as typeof req.session & { returnTo?: unknown };
        const returnTo = info.returnTo || safeReturnTo(session.returnTo);
        delete session.returnTo;
        await keepLogin(parts, req, info, req.user);
        parts.refresher.events.emit('login:success', { provider: info.provider, durationMs: Date.now() - started });
        if (!redirect) return next();
        res.set('cache-control', 'no-store');
        res.redirect(303, returnTo);
      } catch (error) {
        if (info !== undefined && parts.has(info.provider)) parts.refresher.events.emit('login:failure', loginFailure(info.provider, error, started));
        parts.respond(error, req, res, next);
      }
    })();
  };
}

/** Stores a completed login's tokens for its owner (the session's, or the one the app chose), then saves the session. */
async function keepLogin(parts: KeeperParts, req: Request, info: AuthenticationInfo, user: unknown): Promise<void> {
  const owner = await loginOwner(parts, req, user, info.profile, info.provider);
  await parts.store.put(owner, info.provider, info.tokenSet);
  await saveSession(req);
  parts.logger.debug?.('login completed', { provider: info.provider });
}

/**
 * Logs the user in through Passport when it is set up and this provider signs in (`logIn`), and always leaves the request
 * with a new session id (fixation) holding the old data: other tabs' logins, the owner.
 */
async function establish(parts: KeeperParts, req: Request, user: unknown, provider: string): Promise<void> {
  const before = req.sessionID;
  if (parts.logIn(provider) && typeof req.logIn === 'function') {
    await new Promise<void>((resolve, reject) =>
      req.logIn(user as Express.User, { keepSessionInfo: true } as Parameters<Request['logIn']>[1], (e?: unknown) => (e ? reject(e) : resolve())),
    );
  }
  if (req.sessionID === before) await regenerateSession(req);
}

/** An urlencoded body; a name given twice keeps every value, so the strategy can refuse it. */
async function readForm(req: Request): Promise<Record<string, string | string[]>> {
  const type = req.get('content-type') ?? '';
  if (!/application\/x-www-form-urlencoded/i.test(type)) return {};
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 64 * 1024) {
      throw new OAuthKeeperError(ErrorCodes.CALLBACK_INVALID, 'The callback form body is larger than 64 KiB.');
    }
    chunks.push(chunk);
  }
  const form: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) {
    const before = form[name];
    form[name] = before === undefined ? value : [...(Array.isArray(before) ? before : [before]), value];
  }
  return form;
}
