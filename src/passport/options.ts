import type { OAuthKeeperError } from '../errors.js';
import type { TokenSet } from '../lib/token-set.js';
import { unknownOptions } from '../lib/option-names.js';
import type { Profile, ProviderDefinition } from '../provider/types.js';

/** The options of the strategy and of one `authenticate()` call, and what its outcomes carry. */

export interface StrategyOptions {
  /** Strategy name; default the provider's name. Also the name in routes and store keys. */
  name?: string;
  /** How long a started login may take, in seconds. Default 600. */
  loginTimeoutSeconds?: number;
  /** Most pending logins kept per session (tabs); the oldest is dropped first. Default 10. */
  maxPendingLogins?: number;
  /**
   * Skip the profile lookup (userinfo, ...): `true`, or a function of the token set deciding per
   * login, as passport-oauth2's `skipUserProfile`. The verify callback then gets `{ provider, id: '' }`
   * (or the id_token's `sub`).
   */
  skipUserProfile?: boolean | ((tokens: TokenSet) => boolean | Promise<boolean>);
  /** Extra authorization request parameters for every login (`prompt`, `access_type`, ...). */
  authorizationParams?: Readonly<Record<string, string>>;
  /**
   * passport-oauth2's `proxy`: trust `X-Forwarded-Proto` / `-Host` for relative callback URLs
   * even when Express's `trust proxy` is not set. Prefer `app.set('trust proxy', ...)`.
   */
  proxy?: boolean;
}

/** What `success(user, info)` carries, for the token middleware and custom callbacks. */
export interface AuthenticationInfo {
  provider: string;
  tokenSet: TokenSet;
  returnTo: string;
  profile: Profile;
  claims?: Record<string, unknown>;
  /** The `state` data the app gave `authenticate()` when the login started, returned as given. */
  state?: unknown;
}

/** What `fail(info, status)` carries: Passport's `message`, and the typed error with its code. */
export interface FailureInfo {
  message: string;
  error?: OAuthKeeperError;
  [key: string]: unknown;
}

/** Options of one `authenticate()` call (`passport.authenticate(strategy, options)`). */
export interface AuthenticateOptions {
  /** Where to land after login; default `req.query.returnTo`; only same-origin paths are kept. */
  returnTo?: string;
  /** The session cookie's name, to tell "cookie not sent" from "state mismatch". Default `connect.sid`. */
  sessionCookieName?: string;
  /** This login's scope instead of the strategy's (incremental consent): a string or a list. */
  scope?: string | string[];
  /** This login's redirect URI instead of the strategy's `callbackURL` (absolute or a path). */
  callbackURL?: string;
  /**
   * App data kept with the login (in the session, never in a URL) and handed back as
   * `info.state` after it: any JSON value. The OAuth `state` parameter itself stays random.
   */
  state?: unknown;
  /** OpenID Connect / provider `prompt` (`login`, `consent`, ...). */
  prompt?: string;
  /** OpenID Connect `login_hint`. */
  loginHint?: string;
  /** Any further authorization request parameters of this login. */
  authorizationParams?: Readonly<Record<string, string>>;
}

const callbackSessions = new WeakMap<AuthenticationInfo, string | null>();

/**
 * Marks `info` as a completed login of an oauth-keeper strategy, with the session id its
 * callback arrived with (`null` when unknown), for `keeper.completeLogin()`.
 * @internal
 */
export function markLogin(info: AuthenticationInfo, sessionId: string | null): void {
  callbackSessions.set(info, sessionId);
}

/**
 * The session id a login's callback arrived with (`null`: unknown), or undefined for
 * anything but a login marked by {@link markLogin}.
 * @internal
 */
export function sessionIdAtCallback(info: AuthenticationInfo): string | null | undefined {
  return callbackSessions.get(info);
}

/** The option names every strategy takes, whatever its provider. */
const STRATEGY_OPTIONS: readonly string[] = Object.freeze([
  // ProviderOptions
  'name', 'clientID', 'clientSecret', 'callbackURL', 'scope', 'timeoutMs', 'fetch',
  // StrategyOptions, and the verify callback's shape
  'loginTimeoutSeconds', 'maxPendingLogins', 'skipUserProfile', 'authorizationParams', 'proxy', 'passReqToCallback',
]);

/** passport-oauth2 options a keeper strategy has no use for: state and PKCE are always on, endpoints come from the provider. */
const PASSPORT_OAUTH2_ONLY = new Set(['authorizationURL', 'tokenURL', 'state', 'pkce', 'store', 'sessionKey', 'customHeaders', 'scopeSeparator']);

/**
 * Warnings for options nobody reads, when the provider declares its own option names: a
 * typo gets the nearest valid name, a passport-oauth2-only option says why it is not needed.
 */
export function strategyOptionWarnings(provider: ProviderDefinition<never>, options: object): string[] {
  if (provider.optionNames === undefined) return [];
  const known = [...STRATEGY_OPTIONS, ...provider.optionNames];
  const given = Object.fromEntries(Object.entries(options).filter(([key]) => !PASSPORT_OAUTH2_ONLY.has(key)));
  const notNeeded = Object.keys(options)
    .filter((key) => PASSPORT_OAUTH2_ONLY.has(key))
    .map((key) => `The ${provider.name} strategy does not use the passport-oauth2 option "${key}": state and PKCE are always on where the provider supports them, and endpoints come from the provider definition.`);
  return [...unknownOptions(`${provider.name} strategy`, given, known), ...notNeeded];
}
