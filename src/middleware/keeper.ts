import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { RefreshCoordinator, type RefreshOptions } from '../lib/refresh.js';
import { safeReturnTo } from '../lib/return-to.js';
import { destroySession, ownerOf, regenerateSession, requireSession, saveSession } from '../passport/session.js';
import { toOAuthToken, type OAuthToken } from '../lib/token-set.js';
import type { TokenStore } from '../store/token-store.js';
import { publicHost, sessionIdAtCallback, type AuthenticateOptions, type AuthenticationInfo, type OAuthKeeperStrategy } from '../strategy.js';
import { createOAuthFetch } from './fetch.js';
import { createProxy, type ProxyOptions } from './proxy.js';
import { escapeHtml, isNavigation, sendError } from './respond.js';

/** The part of Passport the keeper uses: `passport.authenticate(strategy, options, callback)`. */
export interface PassportLike {
  authenticate(
    strategy: OAuthKeeperStrategy<any, any>,
    options: Pick<AuthenticateOptions, 'returnTo' | 'sessionCookieName'> & { session?: boolean },
    callback: (err: unknown, user: unknown, info: unknown, status?: number) => void,
  ): RequestHandler;
}

/** Debug logging. Nothing the keeper logs contains a token, secret, code or state. */
export interface KeeperLogger {
  debug?(message: string, fields?: Record<string, unknown>): void;
  warn?(message: string, fields?: Record<string, unknown>): void;
}

export interface KeeperOptions {
  /** The provider strategies this app uses (each also usable with `passport.use`). */
  strategies: ReadonlyArray<OAuthKeeperStrategy<any, any>>;
  /** Where token sets are kept, encrypted: `new TokenStore({ backend, encryptionKeys })`. */
  store: TokenStore;
  /** Your Passport instance (`import passport from 'passport'`). */
  passport: PassportLike;
  /** Login route of a provider; the callback route is the path of the strategy's callbackURL. Default `/auth/<name>`. */
  loginPath?: (provider: string) => string;
  /** express-session's cookie name, to tell a missing cookie from a state mismatch. Default `connect.sid`. */
  sessionCookieName?: string;
  /** Call `req.logIn(user)` after a login when Passport is initialized. Default true. */
  logIn?: boolean;
  /**
   * Answer each strategy's login and callback routes (default true). Set false when the
   * app mounts `passport.authenticate(...)` on those routes itself; then put
   * `keeper.completeLogin()` right after it on the callback route.
   */
  routes?: boolean;
  refresh?: RefreshOptions;
  logger?: KeeperLogger;
  /** Replaces the default error answer (JSON for API callers, a short page for browsers). */
  onError?: (error: OAuthKeeperError, req: Request, res: Response, next: NextFunction) => void;
}

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

function keeperOf(req: Request): Keeper | undefined {
  const keeper = req.oauthKeeper?.keeper;
  return keeper instanceof Keeper ? keeper : undefined;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The current token of the provider guarded by `ensureAuthorized`; absent elsewhere. */
      oauthToken?: OAuthToken;
      /** Set by `keeper.middleware()`. */
      oauthKeeper?: KeeperContext;
      /**
       * Set by `keeper.middleware()`: calls a provider's API for this session — credentials
       * attached the provider's way, refreshed first when due, retried once after a rejection.
       * A path is resolved under the provider's API base.
       */
      oauthFetch?: (provider: string, input: string | URL, init?: RequestInit) => Promise<globalThis.Response>;
    }
  }
}

/** A request behind `ensureAuthorized`: `req.oauthToken` is present. */
export type AuthorizedRequest = Request & { oauthToken: OAuthToken };

export class Keeper {
  readonly store: TokenStore;
  readonly refresher: RefreshCoordinator;
  readonly #strategies = new Map<string, OAuthKeeperStrategy<any, any>>();
  readonly #passport: PassportLike;
  readonly #loginPath: (provider: string) => string;
  readonly #cookieName: string;
  readonly #logIn: boolean;
  readonly #logger: KeeperLogger;
  readonly #onError: KeeperOptions['onError'];
  readonly #routes = new Map<string, { kind: 'login' | 'callback'; strategy: OAuthKeeperStrategy<any, any> }>();

  constructor(options: KeeperOptions) {
    if (!options || !Array.isArray(options.strategies) || options.strategies.length === 0) {
      throw configurationError('oauthKeeper needs strategies: [new DiStrategy(...), ...] with at least one strategy.');
    }
    if (!options.store || typeof options.store.get !== 'function') {
      throw configurationError('oauthKeeper needs store: new TokenStore({ backend, encryptionKeys }).');
    }
    if (!options.passport || typeof options.passport.authenticate !== 'function') {
      throw configurationError("oauthKeeper needs passport: pass your Passport instance (import passport from 'passport').");
    }
    this.store = options.store;
    this.refresher = new RefreshCoordinator(options.store, options.refresh);
    this.#passport = options.passport;
    this.#loginPath = options.loginPath ?? ((name) => `/auth/${name}`);
    this.#cookieName = options.sessionCookieName ?? 'connect.sid';
    this.#logIn = options.logIn ?? true;
    this.#logger = options.logger ?? {};
    this.#onError = options.onError;
    const debug = this.#logger.debug?.bind(this.#logger);
    if (debug) {
      // Refresh events carry no token; they go to the debug log as they are.
      for (const name of ['refresh:start', 'refresh:success', 'refresh:failure', 'refresh:retry', 'lock:wait'] as const) {
        this.refresher.events.on(name, (event: object) => debug(name, { ...event }));
      }
    }
    for (const strategy of options.strategies) {
      if (this.#strategies.has(strategy.name)) {
        throw configurationError(`Two strategies are named "${strategy.name}"; give one of them another name option.`);
      }
      this.#strategies.set(strategy.name, strategy);
      if (options.routes === false) continue;
      const login = this.#loginPath(strategy.name);
      const callback = new URL(strategy.options.callbackURL, 'http://callback.invalid').pathname;
      if (login === callback) {
        throw configurationError(`The ${strategy.name} login path and callbackURL path are both "${login}"; they must differ.`);
      }
      for (const [path, kind] of [[login, 'login'], [callback, 'callback']] as const) {
        if (this.#routes.has(path)) throw configurationError(`Two routes of oauth-keeper use the path "${path}"; change a callbackURL or loginPath.`);
        this.#routes.set(path, { kind, strategy });
      }
    }
  }

  /** Events: `refresh:start`, `refresh:success`, `refresh:failure`, `refresh:retry`, `lock:wait`. */
  get events(): RefreshCoordinator['events'] {
    return this.refresher.events;
  }

  get providers(): string[] {
    return [...this.#strategies.keys()];
  }

  strategy(provider: string): OAuthKeeperStrategy<any, any> {
    const strategy = this.#strategies.get(provider);
    if (!strategy) {
      throw configurationError(`No strategy named "${provider}" was given to oauthKeeper; known: ${this.providers.join(', ')}.`);
    }
    return strategy;
  }

  loginURL(provider: string, returnTo?: string): string {
    const path = this.#loginPath(provider);
    return returnTo === undefined ? path : `${path}?returnTo=${encodeURIComponent(returnTo)}`;
  }

  /**
   * Mount after express-session (and passport.initialize()). Attaches `req.oauthKeeper`
   * and answers the login and callback routes of every strategy.
   */
  middleware(): RequestHandler {
    const context: KeeperContext = Object.freeze({ keeper: this });
    return (req, res, next) => {
      req.oauthKeeper = context;
      req.oauthFetch = createOAuthFetch(this, req);
      const route = this.#routes.get(req.path);
      if (!route) return next();
      if (route.kind === 'login' && (req.method === 'GET' || req.method === 'HEAD')) return this.#login(route.strategy, req, res, next);
      if (route.kind === 'callback' && (req.method === 'GET' || req.method === 'POST')) return this.#callback(route.strategy, req, res, next);
      return next();
    };
  }

  #login(strategy: OAuthKeeperStrategy<any, any>, req: Request, res: Response, next: NextFunction): void {
    try {
      requireSession(req, 'The oauth-keeper login route');
    } catch (error) {
      return this.#fail(error, req, res, next);
    }
    const returnTo = safeReturnTo(req.query['returnTo']);
    this.#logger.debug?.('login started', { provider: strategy.name });
    this.#passport.authenticate(perRequest(strategy), { returnTo, sessionCookieName: this.#cookieName }, (err, _user, info, status) => {
      // Only reached when the strategy did not redirect.
      this.#fail(err ?? refusalOf(info, status, strategy.name), req, res, next);
    })(req, res, next);
  }

  #callback(strategy: OAuthKeeperStrategy<any, any>, req: Request, res: Response, next: NextFunction): void {
    void (async () => {
      try {
        requireSession(req, 'The oauth-keeper callback route');
        if (req.method === 'POST' && req.body === undefined) req.body = await readForm(req);
        if (this.#relayIfNeeded(strategy, req, res)) return;
        const { user, info, status } = await new Promise<{ user: unknown; info: unknown; status: number | undefined }>(
          (resolve, reject) =>
            this.#passport.authenticate(perRequest(strategy), { sessionCookieName: this.#cookieName, session: false }, (err, user, info, status) =>
              err ? reject(err) : resolve({ user, info, status }),
            )(req, res, (err?: unknown) => reject(err ?? new Error('authentication passed'))),
        );
        if (!user) throw refusalOf(info, status, strategy.name);
        await this.#establish(req, user);
        await this.#keepLogin(req, info as AuthenticationInfo);
        res.set('cache-control', 'no-store');
        res.redirect(303, (info as AuthenticationInfo).returnTo);
      } catch (error) {
        this.#fail(error, req, res, next);
      }
    })();
  }

  /**
   * For apps that mount `passport.authenticate(strategy, ...)` on the callback route
   * themselves (with `routes: false`): mounted right after it, stores the login's tokens
   * for this session, makes sure the session id changed since the callback arrived
   * (Passport's `req.logIn` does that; with `session: false` this does), then redirects
   * (`303`) to the login's `returnTo` — or, with `{ redirect: false }`, calls `next()`.
   */
  completeLogin(options: { redirect?: boolean } = {}): RequestHandler {
    const redirect = options.redirect ?? true;
    return (req, res, next) => {
      void (async () => {
        try {
          const info = req.authInfo as AuthenticationInfo | undefined;
          const arrivedWith = info === undefined ? undefined : sessionIdAtCallback(info);
          if (info === undefined || arrivedWith === undefined || this.#strategies.get(info.provider) === undefined) {
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
          await this.#keepLogin(req, info);
          if (!redirect) return next();
          res.set('cache-control', 'no-store');
          res.redirect(303, returnTo);
        } catch (error) {
          this.#fail(error, req, res, next);
        }
      })();
    };
  }

  /** Stores a completed login's tokens for this session's owner, then saves the session. */
  async #keepLogin(req: Request, info: AuthenticationInfo): Promise<void> {
    await this.store.put(ownerOf(req, true)!, info.provider, info.tokenSet);
    await saveSession(req);
    this.#logger.debug?.('login completed', { provider: info.provider });
  }

  /**
   * Logs the user in through Passport when it is set up, and always leaves the request
   * with a new session id (fixation) holding the old data: other tabs' logins, the owner.
   */
  async #establish(req: Request, user: unknown): Promise<void> {
    const before = req.sessionID;
    if (this.#logIn && typeof req.logIn === 'function') {
      await new Promise<void>((resolve, reject) =>
        req.logIn(user as Express.User, { keepSessionInfo: true } as Parameters<Request['logIn']>[1], (e?: unknown) => (e ? reject(e) : resolve())),
      );
    }
    if (req.sessionID === before) await regenerateSession(req);
  }

  /**
   * Browsers drop SameSite=Lax cookies on a cross-site form POST (response_mode=form_post),
   * and never send a URL fragment to a server. Both arrive here without what we need; a tiny
   * same-origin page re-submits the parameters, this time with the session cookie.
   */
  #relayIfNeeded(strategy: OAuthKeeperStrategy<any, any>, req: Request, res: Response): boolean {
    if (req.method === 'POST' && strategy.provider.formPostCallback && !hasCookie(req, this.#cookieName) && req.body?.['oauth_keeper_relay'] === undefined) {
      // Every value goes through, repeated ones too: the strategy refuses a repeated parameter.
      const fields = Object.entries(req.body as Record<string, unknown>)
        .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).filter((one): one is string => typeof one === 'string').map((one) => [k, one] as const))
        .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
        .join('');
      sendRelayPage(res, `<form method="post" action="${escapeHtml(req.originalUrl)}">${fields}<input type="hidden" name="oauth_keeper_relay" value="1"><noscript><button>Continue</button></noscript></form><script>document.forms[0].submit()</script>`);
      return true;
    }
    if (req.method === 'GET' && strategy.provider.formPostCallback && Object.keys(req.query).length === 0) {
      sendRelayPage(
        res,
        `<form method="post" action="${escapeHtml(req.originalUrl)}"><input type="hidden" name="oauth_keeper_relay" value="1"></form>` +
          `<p id="m">Completing sign-in…</p><script>(function(){var h=location.hash.slice(1);if(!h){document.getElementById('m').textContent='Nothing to complete: start the sign-in again.';return}` +
          `var f=document.forms[0];new URLSearchParams(h).forEach(function(v,k){var i=document.createElement('input');i.type='hidden';i.name=k;i.value=v;f.appendChild(i)});` +
          `history.replaceState(null,'',location.pathname+location.search);f.submit()})()</script>`,
      );
      return true;
    }
    return false;
  }

  /**
   * Guards a route: puts the provider's current token on `req.oauthToken`, refreshing
   * it first when it is about to expire. Without a usable token, browser navigations are
   * redirected to the login route (with `returnTo`) and other requests get 401.
   */
  ensureAuthorized(provider: string, options: EnsureAuthorizedOptions = {}): RequestHandler {
    const strategy = this.strategy(provider);
    const behaviour = options.unauthorized ?? 'auto';
    if (!['auto', 'redirect', 'status'].includes(behaviour)) {
      throw configurationError(`ensureAuthorized unauthorized option must be "auto", "redirect" or "status", not "${behaviour}".`);
    }
    return (req, res, next) => {
      if (keeperOf(req) !== this) {
        return next(notMounted());
      }
      void (async () => {
        try {
          const token = await this.token(req, strategy.name);
          if (token) {
            req.oauthToken = token;
            return next();
          }
          this.#unauthorized(req, res, strategy.name, behaviour, undefined);
        } catch (error) {
          if (error instanceof OAuthKeeperError && error.code === ErrorCodes.REAUTHORIZATION_REQUIRED) {
            return this.#unauthorized(req, res, strategy.name, behaviour, error);
          }
          this.#fail(error, req, res, next);
        }
      })();
    };
  }

  /**
   * Forwards requests under its mount path to the provider's API with the session's
   * credentials: `app.use('/api/di', keeper.ensureAuthorized('di', { unauthorized: 'status' }), keeper.proxy('di'))`.
   */
  proxy(provider: string, options: ProxyOptions = {}): RequestHandler {
    return createProxy(this, provider, options);
  }

  /** The provider's current token for this request's session (refreshed when due), or null. */
  async token(req: Request, provider: string): Promise<OAuthToken | null> {
    const owner = ownerOf(req, false);
    if (!owner) return null;
    const set = await this.refresher.forRequest(req, owner, this.strategy(provider).tokens);
    return set ? toOAuthToken(provider, set) : null;
  }

  #unauthorized(req: Request, res: Response, provider: string, behaviour: UnauthorizedBehaviour, reason: OAuthKeeperError | undefined): void {
    const browser = behaviour === 'redirect' || (behaviour === 'auto' && isNavigation(req));
    const loginUrl = this.loginURL(provider);
    res.set('cache-control', 'no-store');
    if (browser) {
      res.redirect(302, this.loginURL(provider, safeReturnTo(req.originalUrl)));
      return;
    }
    const error =
      reason ??
      new OAuthKeeperError(ErrorCodes.AUTHORIZATION_REQUIRED, `This route needs a ${provider} authorization; log in at ${loginUrl}.`, { provider });
    res.set('www-authenticate', `OAuthKeeper realm="${provider}", error="${reason ? 'reauthorization_required' : 'authorization_required'}", login_uri="${loginUrl}"`);
    res.status(401).json({ ...error.toJSON(), provider, loginUrl });
  }

  /**
   * Logout: revokes tokens where the provider supports it, clears every provider's
   * tokens, destroys the session and clears its cookie. Cross-origin requests are refused.
   */
  logout(options: { returnTo?: string; revoke?: boolean } = {}): RequestHandler {
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
            await Promise.all(
              [...this.#strategies.values()].map(async (strategy) => {
                if (!revoke || !strategy.tokens.canRevoke) return;
                const stored = await this.store.get(owner, strategy.name).catch(() => null);
                if (!stored) return;
                await strategy.tokens.revoke(stored.tokenSet).catch((error: unknown) =>
                  this.#logger.warn?.('token revocation failed', { provider: strategy.name, code: (error as OAuthKeeperError).code }),
                );
              }),
            );
            await this.store.delete(owner, this.providers);
          }
          await destroySession(req);
          res.clearCookie(this.#cookieName, { path: '/' });
          res.set('cache-control', 'no-store');
          if (isNavigation(req) || (req.method === 'POST' && /html/.test(req.get('accept') ?? ''))) res.redirect(303, returnTo);
          else res.status(204).end();
        } catch (error) {
          this.#fail(error, req, res, next);
        }
      })();
    };
  }

  /**
   * Mount last (`app.use(keeper.errorHandler())`): answers the package's own errors that
   * reach Express's error chain — such as a session store wrapped by
   * `guardSessionStore()` being down (503 with `Retry-After`) — the way the keeper's
   * routes answer (through `onError` when given); passes every other error on.
   */
  errorHandler(): ErrorRequestHandler {
    return (error: unknown, req: Request, res: Response, next: NextFunction) => {
      if (!(error instanceof OAuthKeeperError)) return next(error);
      if (res.headersSent) {
        // express-session failing to save or touch a session after the answer went out: it ends the
        // response itself. Passing the error on would make Express destroy the (keep-alive) socket.
        if (error.code === ErrorCodes.STORE_UNAVAILABLE) {
          this.#logger.warn?.('oauth-keeper error', { code: error.code, status: error.status, after: 'response sent' });
          return;
        }
        return next(error);
      }
      this.#fail(error, req, res, next);
    };
  }

  /** Removes one provider's tokens from this session (revoking first when supported). */
  async disconnect(req: Request, provider: string, revoke = true): Promise<void> {
    const owner = ownerOf(req, false);
    if (!owner) return;
    const strategy = this.strategy(provider);
    if (revoke && strategy.tokens.canRevoke) {
      const stored = await this.store.get(owner, provider);
      if (stored) await strategy.tokens.revoke(stored.tokenSet).catch(() => undefined);
    }
    await this.store.delete(owner, [provider]);
  }

  #fail(error: unknown, req: Request, res: Response, next: NextFunction): void {
    const known =
      error instanceof OAuthKeeperError
        ? error
        : new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, 'The sign-in could not be completed; see error.cause.', { cause: error, status: 500 });
    this.#logger.warn?.('oauth-keeper error', { code: known.code, provider: known.provider, status: known.status, message: known.message });
    if (known.retryAfter !== undefined && !res.headersSent) res.set('retry-after', String(known.retryAfter));
    if (this.#onError) return this.#onError(known, req, res, next);
    sendError(req, res, known);
  }
}

/** `ensureAuthorized` that finds the keeper mounted by `keeper.middleware()`. */
export function ensureAuthorized(provider: string, options: EnsureAuthorizedOptions = {}): RequestHandler {
  let handler: RequestHandler | undefined;
  let owner: Keeper | undefined;
  return (req, res, next) => {
    const keeper = keeperOf(req);
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

/**
 * Passport assigns a request's success/fail/redirect/error onto the object it is given:
 * hand it an object of this request's own, never the shared strategy.
 */
function perRequest<S extends object>(strategy: S): S {
  return Object.create(strategy) as S;
}

function notMounted(): OAuthKeeperError {
  return new OAuthKeeperError(
    ErrorCodes.MIDDLEWARE_NOT_MOUNTED,
    'ensureAuthorized found no token middleware on this request: mount app.use(keeper.middleware()) after express-session and before the guarded routes.',
  );
}

export function oauthKeeper(options: KeeperOptions): Keeper {
  return new Keeper(options);
}

function hasCookie(req: Request, name: string): boolean {
  return (req.headers.cookie ?? '').split(';').some((part) => part.trim().startsWith(`${name}=`));
}

function isCrossOrigin(req: Request): boolean {
  const origin = req.get('origin');
  // The public origin, as Express's trust proxy says (never a forwarded header it does not trust).
  if (origin !== undefined && origin !== 'null') return origin !== `${req.protocol}://${publicHost(req)}`;
  if (origin === 'null') return true;
  const site = req.get('sec-fetch-site');
  return site === 'cross-site' || site === 'same-site';
}

function sendRelayPage(res: Response, body: string): void {
  res.set('cache-control', 'no-store');
  res.set('referrer-policy', 'no-referrer');
  res.type('html').send(`<!doctype html><meta charset="utf-8"><title>Signing in…</title>${body}`);
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
