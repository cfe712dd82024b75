import type { Request } from 'express';
import type { TokenSet } from '../lib/token-set.js';
import type { Profile } from '../provider/types.js';

/** `done(error, user, info)`: `user === false` refuses the login, with `info` for `fail()`. */
export type VerifyDone<User> = (error: unknown, user?: User | false, info?: Record<string, unknown>) => void;

/** oauth-keeper's own verify: the whole token set, the profile, `done`. */
export type VerifyFunction<User> = (tokens: TokenSet, profile: Profile, done: VerifyDone<User>) => void | Promise<void>;
export type VerifyFunctionWithRequest<User> = (req: Request, tokens: TokenSet, profile: Profile, done: VerifyDone<User>) => void | Promise<void>;

/** passport-oauth2's verify shapes, as its users already write them. */
export type OAuth2VerifyFunction<User> = (
  accessToken: string,
  refreshToken: string | undefined,
  profile: Profile,
  done: VerifyDone<User>,
) => void | Promise<void>;
export type OAuth2VerifyFunctionWithParams<User> = (
  accessToken: string,
  refreshToken: string | undefined,
  params: Record<string, unknown>,
  profile: Profile,
  done: VerifyDone<User>,
) => void | Promise<void>;
export type OAuth2VerifyFunctionWithRequest<User> = (
  req: Request,
  accessToken: string,
  refreshToken: string | undefined,
  profile: Profile,
  done: VerifyDone<User>,
) => void | Promise<void>;
export type OAuth2VerifyFunctionWithRequestAndParams<User> = (
  req: Request,
  accessToken: string,
  refreshToken: string | undefined,
  params: Record<string, unknown>,
  profile: Profile,
  done: VerifyDone<User>,
) => void | Promise<void>;

export type AnyVerifyFunction<User> =
  | VerifyFunction<User>
  | OAuth2VerifyFunction<User>
  | OAuth2VerifyFunctionWithParams<User>;
export type AnyVerifyFunctionWithRequest<User> =
  | VerifyFunctionWithRequest<User>
  | OAuth2VerifyFunctionWithRequest<User>
  | OAuth2VerifyFunctionWithRequestAndParams<User>;

/** Strategy options without / with `passReqToCallback`, for the constructor overloads. */
export type NoRequest = { passReqToCallback?: false };
export type WithRequest = { passReqToCallback: true };

/** The one shape the strategy calls, whatever the user wrote. */
export type Verify<User> = (req: Request, tokens: TokenSet, profile: Profile, done: VerifyDone<User>) => unknown;

/**
 * The token response the way passport-oauth2 hands it to verify as `params`: the standard
 * members (with `expires_in` as the seconds left) and every other member the provider sent.
 */
export function tokenParams(tokens: TokenSet, now = Date.now()): Record<string, unknown> {
  const params: Record<string, unknown> = { ...tokens.extras, access_token: tokens.accessToken, token_type: tokens.tokenType };
  if (tokens.expiresAt !== null) params['expires_in'] = Math.max(0, Math.round((tokens.expiresAt - now) / 1000));
  if (tokens.refreshToken !== undefined) params['refresh_token'] = tokens.refreshToken;
  if (tokens.scope !== undefined) params['scope'] = tokens.scope;
  if (tokens.idToken !== undefined) params['id_token'] = tokens.idToken;
  return params;
}

/**
 * Calls `verify` in the shape it was written in, told apart by its number of parameters
 * as passport-oauth2 does: (tokens, profile, done), (accessToken, refreshToken, profile,
 * done) or (accessToken, refreshToken, params, profile, done) — each with `req` first
 * under `passReqToCallback`. Without a verify, the profile is the user.
 */
export function adaptVerify<User>(
  verify: AnyVerifyFunction<User> | AnyVerifyFunctionWithRequest<User> | undefined,
  passReqToCallback: boolean,
): Verify<User> {
  if (!verify) return (_req, _tokens, profile, done) => done(null, profile as unknown as User);
  const arity = verify.length - (passReqToCallback ? 1 : 0);
  const call = verify as (...args: unknown[]) => unknown;
  return (req, tokens, profile, done) => {
    const head: unknown[] = passReqToCallback ? [req] : [];
    if (arity === 4) return call(...head, tokens.accessToken, tokens.refreshToken, profile, done);
    if (arity === 5) return call(...head, tokens.accessToken, tokens.refreshToken, tokenParams(tokens), profile, done);
    return call(...head, tokens, profile, done);
  };
}

/** The profile when the provider has no profile lookup: the id from the id_token or the token response. */
export function fallbackProfile(provider: string, tokenSet: TokenSet, claims: Record<string, unknown> | undefined): Profile {
  const id = claims?.['sub'] ?? tokenSet.extras['user_id'] ?? tokenSet.extras['uid'] ?? tokenSet.extras['openid'];
  return { provider, id: id === undefined ? '' : String(id) };
}
