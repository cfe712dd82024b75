import { inspect } from 'node:util';

/** The normalized token set the store keeps for one (session, provider). */
export interface TokenSet {
  accessToken: string;
  /** As the provider spelled it (`bearer`, `Bearer`, ...). */
  tokenType: string;
  /** Epoch milliseconds; `null` means the token never expires. */
  expiresAt: number | null;
  refreshToken?: string;
  /** Epoch milliseconds; `null` means never, `undefined` means unknown. */
  refreshTokenExpiresAt?: number | null;
  scope?: string;
  idToken?: string;
  /**
   * The redirect_uri the login's code was exchanged with, kept for providers that document
   * it on the refresh request too (cnblogs). Set by the keeper, never by a provider's answer.
   */
  redirectUri?: string;
  /** Everything else the provider answered with (user ids, `jti`, region, ...). */
  extras: Record<string, unknown>;
  /** Epoch milliseconds when the set was obtained. */
  obtainedAt: number;
}

/**
 * What a handler behind `ensureAuthorized(provider)` sees as `req.oauthToken`.
 * The refresh token is deliberately absent. `console.log` and `JSON.stringify`
 * print it without the access token.
 */
export interface OAuthToken {
  readonly provider: string;
  readonly accessToken: string;
  readonly tokenType: string;
  /** `null` when the token never expires. */
  readonly expiresAt: Date | null;
  readonly scope: string | undefined;
  readonly extras: Readonly<Record<string, unknown>>;
}

export function toOAuthToken(provider: string, set: TokenSet): OAuthToken {
  const token = {
    provider,
    tokenType: set.tokenType,
    expiresAt: set.expiresAt === null ? null : new Date(set.expiresAt),
    scope: set.scope,
    extras: Object.freeze({ ...set.extras }),
  };
  Object.defineProperty(token, 'accessToken', { value: set.accessToken, enumerable: false });
  Object.defineProperty(token, inspect.custom, {
    value: () => ({ ...token, accessToken: '[redacted]' }),
    enumerable: false,
  });
  return Object.freeze(token) as OAuthToken;
}

/** Keys a provider's token response may hold that are never copied into `extras`. */
const STANDARD_FIELDS = new Set([
  'access_token',
  'token_type',
  'expires_in',
  'refresh_token',
  'refresh_token_expires_in',
  'scope',
  'id_token',
]);

/**
 * Reads a lifetime in seconds that may arrive as a number or a numeric string.
 * Returns `undefined` when absent and `NaN` when present but not a number.
 */
export function readLifetime(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const seconds = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : Number.NaN;
  // Beyond a century either way is no lifetime a provider means; it would overflow to an Invalid Date.
  return Number.isFinite(seconds) && Math.abs(seconds) <= MAX_LIFETIME_SECONDS ? seconds : Number.NaN;
}

/** A hundred years, in seconds: the longest lifetime read as one. */
const MAX_LIFETIME_SECONDS = 100 * 365 * 24 * 3600;

/** Deepest nesting accepted anywhere in a token response; real ones are one or two levels deep. */
export const MAX_TOKEN_RESPONSE_DEPTH = 16;

/**
 * RFC 6749 Appendix A: an access or refresh token is 1*VSCHAR (printable ASCII, %x20-7E).
 * Leading or trailing spaces, or nothing but spaces, cannot survive an HTTP header either.
 */
export function isUsableTokenValue(value: string): boolean {
  return /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(value);
}

/** Depth of a parsed JSON value (a scalar is 0), counted without recursion. */
function depthExceeds(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth + 1 > limit) return true;
    for (const child of Object.values(node as Record<string, unknown>)) stack.push([child, depth + 1]);
  }
  return false;
}

export interface NormalizeOptions {
  now?: number;
  /** Lifetimes at or below zero mean "never expires" (sop). Default: they mean "already expired". */
  nonPositiveLifetimeMeansNever?: boolean;
}

/**
 * Normalizes a standard RFC 6749 §5.1 token response object. Returns an error
 * string describing what is wrong instead of throwing, so the caller can wrap it
 * in its own typed error without echoing the body.
 */
export function normalizeTokenResponse(
  body: Record<string, unknown>,
  options: NormalizeOptions = {},
): TokenSet | string {
  const now = options.now ?? Date.now();
  if (depthExceeds(body, MAX_TOKEN_RESPONSE_DEPTH)) return `it is nested deeper than ${MAX_TOKEN_RESPONSE_DEPTH} levels`;
  const accessToken = body['access_token'];
  if (typeof accessToken !== 'string' || accessToken.length === 0) return 'it has no access_token';
  if (!isUsableTokenValue(accessToken)) return 'its access_token holds characters a token cannot have (RFC 6749 allows printable ASCII only)';
  const tokenType = body['token_type'] ?? 'Bearer';
  if (typeof tokenType !== 'string') return 'its token_type is not a string';
  const expiresIn = readLifetime(body['expires_in']);
  if (Number.isNaN(expiresIn)) return 'its expires_in is not a number of seconds (up to a century)';
  const refreshExpiresIn = readLifetime(body['refresh_token_expires_in']);
  if (Number.isNaN(refreshExpiresIn)) return 'its refresh_token_expires_in is not a number of seconds (up to a century)';
  const scope = body['scope'];
  if (scope !== undefined && scope !== null && typeof scope !== 'string' && !(Array.isArray(scope) && scope.every((s) => typeof s === 'string'))) {
    return 'its scope is neither a string nor a list of strings';
  }
  const refreshToken = body['refresh_token'];
  if (refreshToken !== undefined && refreshToken !== null && typeof refreshToken !== 'string') {
    return 'its refresh_token is not a string';
  }
  if (typeof refreshToken === 'string' && refreshToken.length > 0 && !isUsableTokenValue(refreshToken)) {
    return 'its refresh_token holds characters a token cannot have (RFC 6749 allows printable ASCII only)';
  }
  const idToken = body['id_token'];
  const extras: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) if (!STANDARD_FIELDS.has(key)) extras[key] = value;
  const set: TokenSet = {
    accessToken,
    tokenType,
    expiresAt: lifetimeToInstant(expiresIn, now, options.nonPositiveLifetimeMeansNever ?? false),
    extras,
    obtainedAt: now,
  };
  if (typeof scope === 'string') set.scope = scope;
  else if (Array.isArray(scope)) set.scope = scope.join(' ');
  if (typeof refreshToken === 'string' && refreshToken.length > 0) set.refreshToken = refreshToken;
  if (refreshExpiresIn !== undefined) {
    set.refreshTokenExpiresAt = lifetimeToInstant(refreshExpiresIn, now, options.nonPositiveLifetimeMeansNever ?? false);
  }
  if (typeof idToken === 'string') set.idToken = idToken;
  return set;
}

export function lifetimeToInstant(
  seconds: number | undefined,
  now: number,
  nonPositiveMeansNever: boolean,
): number | null {
  if (seconds === undefined) return null;
  if (seconds <= 0 && nonPositiveMeansNever) return null;
  return now + seconds * 1000;
}

/**
 * A refresh answer may omit the refresh token (RFC 6749 §6: "MAY issue a new refresh
 * token"): keep the one we had, and keep the scope and id_token when not re-sent.
 */
export function mergeRefreshed(previous: TokenSet, next: TokenSet): TokenSet {
  const merged: TokenSet = { ...next, extras: { ...previous.extras, ...next.extras } };
  if (merged.refreshToken === undefined && previous.refreshToken !== undefined) {
    merged.refreshToken = previous.refreshToken;
    if (previous.refreshTokenExpiresAt !== undefined) merged.refreshTokenExpiresAt = previous.refreshTokenExpiresAt;
  }
  if (merged.scope === undefined && previous.scope !== undefined) merged.scope = previous.scope;
  if (merged.idToken === undefined && previous.idToken !== undefined) merged.idToken = previous.idToken;
  if (previous.redirectUri !== undefined) merged.redirectUri = previous.redirectUri;
  return merged;
}

export function isExpired(set: TokenSet, now: number, skewMs = 0): boolean {
  return set.expiresAt !== null && set.expiresAt - skewMs <= now;
}
