import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { toOAuthToken, type OAuthToken } from '../lib/token-set.js';
import { ownerOf } from '../passport/session.js';
import { disconnectOwner, listConnections, type OwnerConnection } from './connections.js';
import type { AnyStrategy, KeeperParts, OwnerOption, PassportLike } from './context.js';
import { apiClients, fetchFor } from './fetch.js';
import { createGuard, type EnsureAuthorizedOptions, type KeeperContext } from './guard.js';
import { createLogout, type LogoutOptions } from './logout.js';
import { createProxy, type ProxyOptions } from './proxy.js';
import { createResponder, type ErrorHandlerOption } from './respond.js';
import { guardSessionStore, KeeperSessionStore, type KeeperSessionStoreOptions } from './session-store.js';
import { attachOAuthFetch, FETCH_MAKER, type FetchMaker } from './request-fetch.js';
import { callbackRoute, completeLogin, loginRoute } from './routes.js';
import { TokenKeeper, type TokenKeeperOptions } from './token-keeper.js';

export type { AnyStrategy, KeeperLogger, OwnerOption, PassportLike } from './context.js';
export type { LogoutOptions } from './logout.js';
export { ensureAuthorized } from './guard.js';
export type { EnsureAuthorizedOptions, KeeperContext, UnauthorizedBehaviour } from './guard.js';

export interface KeeperOptions extends TokenKeeperOptions {
  /** Your Passport instance (`import passport from 'passport'`). */
  passport: PassportLike;
  /** Login route of a provider; the callback route is the path of the strategy's callbackURL. Default `/auth/<name>`. */
  loginPath?: (provider: string) => string;
  /** express-session's cookie name, to tell a missing cookie from a state mismatch. Default `connect.sid`. */
  sessionCookieName?: string;
  /**
   * Sign-in or connect, per provider. `true` (default): a completed login signs its user in
   * (`req.logIn(user)`, when Passport is initialized), replacing whoever was signed in.
   * `false`: it only connects — the provider's tokens are kept for this session's owner (or
   * the `owner` you choose) and the signed-in user, if any, stays. A function decides per
   * provider: `(provider) => provider === 'cnblogs'` signs in with cnblogs and lets di and sop
   * be connected to that user.
   */
  logIn?: boolean | ((provider: string) => boolean);
  /**
   * Answer each strategy's login and callback routes (default true). Set false when the
   * app mounts `passport.authenticate(...)` on those routes itself; then put
   * `keeper.completeLogin()` right after it on the callback route.
   */
  routes?: boolean;
  /**
   * Binds a login's token sets to a key the app chooses — typically the user id known
   * after login — instead of the session's random owner: one record per user whichever
   * browser they come from, surviving session expiry, logout elsewhere and restarts, and
   * reachable without a request through `keeper.forOwner(key)`. Return `undefined` to keep
   * the session's owner. Keys: 1–128 characters of `A–Z a–z 0–9 . _ - @ + = ~ :`.
   */
  owner?: OwnerOption;
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
 * through its internal parts.
 */
export class Keeper extends TokenKeeper {
  static override readonly optionNames: readonly string[] = Object.freeze([
    ...TokenKeeper.optionNames,
    'passport',
    'loginPath',
    'sessionCookieName',
    'logIn',
    'routes',
    'owner',
    'onError',
  ]);

  readonly #loginPath: (provider: string) => string;
  readonly #routes = new Map<string, Route>();
  readonly #parts: KeeperParts;
  readonly #onError: ErrorHandlerOption | undefined;
  /** A request's `req.oauthFetch`, through the keeper's API clients (made once per provider, with its `api` options). */
  readonly #fetchMaker: FetchMaker;

  constructor(options: KeeperOptions) {
    super(options);
    if (!options.passport || typeof options.passport.authenticate !== 'function') {
      throw configurationError("oauthKeeper needs passport: pass your Passport instance (import passport from 'passport').");
    }
    if (options.logIn !== undefined && typeof options.logIn !== 'boolean' && typeof options.logIn !== 'function') {
      throw configurationError('oauthKeeper logIn must be true (sign in), false (only connect) or a function (provider) => boolean.');
    }
    if (options.owner !== undefined && typeof options.owner !== 'function') {
      throw configurationError('oauthKeeper owner must be a function (req, user, profile) => your stable user id, or undefined to keep the session\'s owner.');
    }
    this.#loginPath = options.loginPath ?? ((name) => `/auth/${name}`);
    this.#onError = options.onError;
    const clients = apiClients(this, options.api);
    this.#fetchMaker = (req) => fetchFor(clients, () => ({ owner: ownerOf(req, false), request: req }));
    const logger = this.logger;
    if (options.routes !== false) for (const strategy of options.strategies) this.#register(strategy);
    const loginURL = (provider: string, returnTo?: string) => this.loginURL(provider, returnTo);
    this.#parts = Object.freeze({
      store: this.store,
      refresher: this.refresher,
      passport: options.passport,
      cookieName: options.sessionCookieName ?? 'connect.sid',
      logIn: typeof options.logIn === 'function' ? options.logIn : () => options.logIn !== false,
      logger,
      providers: Object.freeze(this.providers),
      strategy: (provider: string) => this.strategy(provider),
      has: (provider: string) => this.providers.includes(provider),
      loginURL,
      token: (req: Request, provider: string) => this.token(req, provider),
      respond: createResponder(logger, options.onError, (provider) => loginURL(provider)),
      owner: options.owner,
    });
  }

  #register(strategy: AnyStrategy): void {
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

  /**
   * The provider's login route, with `?returnTo=` when given — for links and redirects:
   * `keeper.loginURL('di', '/reports')` is `/auth/di?returnTo=%2Freports` (with the default
   * `loginPath`). The login route keeps only a same-origin path as `returnTo`.
   */
  loginURL(provider: string, returnTo?: string): string {
    const path = this.#loginPath(provider);
    return returnTo === undefined ? path : `${path}?returnTo=${encodeURIComponent(returnTo)}`;
  }

  /**
   * Mount after express-session (and passport.initialize()). Attaches `req.oauthKeeper`
   * and `req.oauthFetch`, and answers the login and callback routes of every strategy.
   */
  middleware(): RequestHandler {
    const make = this.#fetchMaker;
    const context: KeeperContext = Object.freeze(Object.defineProperty({ keeper: this }, FETCH_MAKER, { value: make }));
    return (req, res, next) => {
      req.oauthKeeper = context;
      attachOAuthFetch(req, make);
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
   * Logout: ends the session (destroys it, clears its cookie). The session's own tokens are
   * revoked where the provider supports it and removed; those of an owner the app chose
   * (`owner` option) only with `disconnect: true`. Cross-origin requests are refused.
   */
  logout(options: LogoutOptions = {}): RequestHandler {
    return createLogout(this.#parts, options);
  }

  /**
   * An express-session store on Redis that reads each session and its token sets in one
   * Redis command (`MGET`) — one command per guarded request fewer than connect-redis plus
   * the token store — when `client` is the one the keeper's `RedisBackend` uses (and not a
   * Cluster). Sessions keep connect-redis's key layout and JSON (`prefix` default `sess:`),
   * so switching either way keeps everyone signed in. Every call is bounded like
   * `guardSessionStore()`: 503 with `Retry-After` through `keeper.errorHandler()`.
   *
   * ```js
   * app.use(session({ store: keeper.sessionStore({ client: redis }), secret, resave: false, saveUninitialized: false }));
   * ```
   */
  sessionStore(options: KeeperSessionStoreOptions): KeeperSessionStore {
    const backend = this.store.backend as { usesClient?: (client: unknown) => boolean };
    const together = typeof backend.usesClient === 'function' && backend.usesClient(options?.client);
    const store = new KeeperSessionStore(options, together ? this.store : undefined, this.providers);
    if (!store.readsTokensWithSession) {
      this.logger.debug?.('oauth-keeper sessionStore reads sessions alone', {
        reason: options.client.isCluster === true ? 'Redis Cluster' : 'the RedisBackend has another client',
      });
    }
    const { timeoutMs, retryAfterSeconds } = options;
    return guardSessionStore(store, { ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) });
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

  /**
   * Removes one provider's tokens from this session's owner (revoking first when
   * supported) — for an owner the app chose, for every browser and worker of that owner.
   */
  async disconnect(req: Request, provider: string, revoke = true): Promise<void> {
    const owner = ownerOf(req, false);
    if (!owner) return;
    await disconnectOwner(this.#parts, owner, provider, revoke);
  }

  /** The providers this request's session (or the owner it is bound to) has connected: expiry, scope, when — never a token. */
  async connections(req: Request): Promise<OwnerConnection[]> {
    const owner = ownerOf(req, false);
    return owner ? listConnections(this.#parts, owner) : [];
  }
}

export function oauthKeeper(options: KeeperOptions): Keeper {
  return new Keeper(options);
}
