import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { RefreshCoordinator, type RefreshOptions } from '../lib/refresh.js';
import { toOAuthToken, type OAuthToken } from '../lib/token-set.js';
import { ownerOf } from '../passport/session.js';
import type { TokenStore } from '../store/token-store.js';
import type { AnyStrategy, KeeperLogger, KeeperParts, PassportLike } from './context.js';
import { createOAuthFetch } from './fetch.js';
import { createGuard, type EnsureAuthorizedOptions, type KeeperContext } from './guard.js';
import { createLogout, revokeStored } from './logout.js';
import { createProxy, type ProxyOptions } from './proxy.js';
import { createResponder, type ErrorHandlerOption } from './respond.js';
import { callbackRoute, completeLogin, loginRoute } from './routes.js';

export type { AnyStrategy, KeeperLogger, PassportLike } from './context.js';
export { ensureAuthorized } from './guard.js';
export type { EnsureAuthorizedOptions, KeeperContext, UnauthorizedBehaviour } from './guard.js';

export interface KeeperOptions {
  /** The provider strategies this app uses (each also usable with `passport.use`). */
  strategies: ReadonlyArray<AnyStrategy>;
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
  /** Replaces the default error answer (JSON for API callers, a short page for browsers), 401s included. */
  onError?: ErrorHandlerOption;
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

type Route = { kind: 'login' | 'callback'; strategy: AnyStrategy };

/**
 * The keeper: the registry of strategies and the token store, and the façade of what an
 * app mounts — `middleware()` (login and callback routes, `req.oauthFetch`), the guard,
 * the proxy, logout — each of which lives in its own module and sees the keeper only
 * through {@link KeeperParts}.
 */
export class Keeper {
  readonly store: TokenStore;
  readonly refresher: RefreshCoordinator;
  readonly #strategies = new Map<string, AnyStrategy>();
  readonly #loginPath: (provider: string) => string;
  readonly #routes = new Map<string, Route>();
  readonly #parts: KeeperParts;
  readonly #onError: ErrorHandlerOption | undefined;

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
    this.#loginPath = options.loginPath ?? ((name) => `/auth/${name}`);
    this.#onError = options.onError;
    const logger = options.logger ?? {};
    const debug = logger.debug?.bind(logger);
    if (debug) {
      // Refresh events carry no token; they go to the debug log as they are.
      for (const name of ['refresh:start', 'refresh:success', 'refresh:failure', 'refresh:retry', 'lock:wait'] as const) {
        this.refresher.events.on(name, (event: object) => debug(name, { ...event }));
      }
    }
    for (const strategy of options.strategies) {
      this.#register(strategy, options.routes !== false);
      // Said once, at start-up: what the app should know about a strategy's configuration.
      for (const warning of strategy.provider.startupWarnings?.(strategy.options) ?? []) logger.warn?.(warning, { provider: strategy.name });
    }
    const loginURL = (provider: string, returnTo?: string) => this.loginURL(provider, returnTo);
    this.#parts = Object.freeze({
      store: this.store,
      refresher: this.refresher,
      passport: options.passport,
      cookieName: options.sessionCookieName ?? 'connect.sid',
      logIn: options.logIn ?? true,
      logger,
      providers: Object.freeze([...this.#strategies.keys()]),
      strategy: (provider: string) => this.strategy(provider),
      has: (provider: string) => this.#strategies.has(provider),
      loginURL,
      token: (req: Request, provider: string) => this.token(req, provider),
      respond: createResponder(logger, options.onError, (provider) => loginURL(provider)),
    });
  }

  #register(strategy: AnyStrategy, withRoutes: boolean): void {
    if (this.#strategies.has(strategy.name)) {
      throw configurationError(`Two strategies are named "${strategy.name}"; give one of them another name option.`);
    }
    this.#strategies.set(strategy.name, strategy);
    if (!withRoutes) return;
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

  /** Events: `refresh:start`, `refresh:success`, `refresh:failure`, `refresh:retry`, `lock:wait`. */
  get events(): RefreshCoordinator['events'] {
    return this.refresher.events;
  }

  get providers(): string[] {
    return [...this.#strategies.keys()];
  }

  strategy(provider: string): AnyStrategy {
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
   * and `req.oauthFetch`, and answers the login and callback routes of every strategy.
   */
  middleware(): RequestHandler {
    const context: KeeperContext = Object.freeze({ keeper: this });
    return (req, res, next) => {
      req.oauthKeeper = context;
      req.oauthFetch = createOAuthFetch(this, req);
      const route = this.#routes.get(req.path);
      if (!route) return next();
      if (route.kind === 'login' && (req.method === 'GET' || req.method === 'HEAD')) return loginRoute(this.#parts, route.strategy, req, res, next);
      if (route.kind === 'callback' && (req.method === 'GET' || req.method === 'POST')) return callbackRoute(this.#parts, route.strategy, req, res, next);
      return next();
    };
  }

  /**
   * For apps that mount `passport.authenticate(strategy, ...)` on the callback route
   * themselves (with `routes: false`): mounted right after it, stores the login's tokens
   * for this session, makes sure the session id changed since the callback arrived
   * (Passport's `req.logIn` does that; with `session: false` this does), then redirects
   * (`303`) to the login's `returnTo` — or, with `{ redirect: false }`, calls `next()`.
   */
  completeLogin(options: { redirect?: boolean } = {}): RequestHandler {
    return completeLogin(this.#parts, options);
  }

  /**
   * Guards a route: puts the provider's current token on `req.oauthToken`, refreshing
   * it first when it is about to expire. Without a usable token, browser navigations are
   * redirected to the login route (with `returnTo`) and other requests get 401.
   */
  ensureAuthorized(provider: string, options: EnsureAuthorizedOptions = {}): RequestHandler {
    return createGuard(this, this.#parts, provider, options);
  }

  /**
   * Forwards requests under its mount path to the provider's API with the session's
   * credentials: `app.use('/api/di', keeper.ensureAuthorized('di', { unauthorized: 'status' }), keeper.proxy('di'))`.
   */
  proxy(provider: string, options: ProxyOptions = {}): RequestHandler {
    const onError = options.onError ?? this.#onError;
    return createProxy(this, provider, onError === undefined ? options : { ...options, onError });
  }

  /** The provider's current token for this request's session (refreshed when due), or null. */
  async token(req: Request, provider: string): Promise<OAuthToken | null> {
    const owner = ownerOf(req, false);
    if (!owner) return null;
    const set = await this.refresher.forRequest(req, owner, this.strategy(provider).tokens);
    return set ? toOAuthToken(provider, set) : null;
  }

  /**
   * Logout: revokes tokens where the provider supports it, clears every provider's
   * tokens, destroys the session and clears its cookie. Cross-origin requests are refused.
   */
  logout(options: { returnTo?: string; revoke?: boolean } = {}): RequestHandler {
    return createLogout(this.#parts, options);
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
          this.#parts.logger.warn?.('oauth-keeper error', { code: error.code, status: error.status, after: 'response sent' });
          return;
        }
        return next(error);
      }
      this.#parts.respond(error, req, res, next);
    };
  }

  /** Removes one provider's tokens from this session (revoking first when supported). */
  async disconnect(req: Request, provider: string, revoke = true): Promise<void> {
    const owner = ownerOf(req, false);
    if (!owner) return;
    this.strategy(provider);
    if (revoke) await revokeStored(this.#parts, owner, provider);
    await this.store.delete(owner, [provider]);
  }
}

export function oauthKeeper(options: KeeperOptions): Keeper {
  return new Keeper(options);
}
