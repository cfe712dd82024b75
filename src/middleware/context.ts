import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { RefreshCoordinator } from '../lib/refresh.js';
import type { OAuthToken } from '../lib/token-set.js';
import type { Profile, ProviderOptions } from '../provider/types.js';
import type { TokenStore } from '../store/token-store.js';
import type { AuthenticateOptions } from '../passport/options.js';
import type { OAuthKeeperStrategy } from '../passport/strategy.js';

/** A strategy of the keeper, whatever its provider's options and user type. */
export type AnyStrategy = OAuthKeeperStrategy<ProviderOptions, unknown>;

/** The part of Passport the keeper uses: `passport.authenticate(strategy, options, callback)`. */
export interface PassportLike {
  authenticate(
    strategy: AnyStrategy,
    options: Pick<AuthenticateOptions, 'returnTo' | 'sessionCookieName'> & { session?: boolean },
    callback: (err: unknown, user: unknown, info: unknown, status?: number) => void,
  ): RequestHandler;
}

/** Debug logging. Nothing the keeper logs contains a token, secret, code or state. */
export interface KeeperLogger {
  debug?(message: string, fields?: Record<string, unknown>): void;
  warn?(message: string, fields?: Record<string, unknown>): void;
  /** Unexpected errors (a bug, a hook that threw, a store fault), with their cause; `warn` when absent. */
  error?(message: string, fields?: Record<string, unknown>): void;
}

/**
 * The keeper's `owner` option: the stable key (typically your user id) that a login's
 * token sets are kept under, instead of the session's own random owner; `undefined` keeps
 * the session's owner as it is. Called after each completed login, with the Passport user
 * and the provider's profile.
 */
export type OwnerOption = (req: Request, user: unknown, profile: Profile) => string | undefined | Promise<string | undefined>;

/** Answers an error the keeper's way (through `onError` when given). */
export type Responder = (error: unknown, req: Request, res: Response, next: NextFunction, json?: boolean) => void;

/**
 * What the keeper's handlers (routes, guard, logout, proxy, `req.oauthFetch`) use of it:
 * one read-only view, so that each handler lives in its own module and none imports the
 * Keeper class back.
 */
export interface KeeperParts {
  readonly store: TokenStore;
  readonly refresher: RefreshCoordinator;
  readonly passport: PassportLike;
  readonly cookieName: string;
  /** Whether a completed login of this provider signs its user in (`req.logIn`), or only connects it. */
  readonly logIn: (provider: string) => boolean;
  readonly logger: KeeperLogger;
  readonly providers: readonly string[];
  strategy(provider: string): AnyStrategy;
  has(provider: string): boolean;
  loginURL(provider: string, returnTo?: string): string;
  token(req: Request, provider: string): Promise<OAuthToken | null>;
  readonly respond: Responder;
  /** The keeper's `owner` option, when given. */
  readonly owner: OwnerOption | undefined;
}
