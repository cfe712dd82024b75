import type { Request } from 'express';
import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import { isRecord } from '../lib/http.js';
import { normalizeTokenResponse, type TokenSet } from '../lib/token-set.js';
import type { Profile } from '../provider/types.js';
import { markLogin, type AuthenticationInfo } from './options.js';
import type { VerifyDone } from './verify.js';

/** A passport-oauth2 verify as its users write it; any of its four shapes. */
type OAuth2Verify = (...args: never[]) => unknown;

/**
 * passport-oauth2's `verified` callback, typed to accept any strategy's own callback type
 * (it is only ever called by passport-oauth2, never by you).
 */
export type PassportVerified = (error: unknown, user?: never, info?: never) => void;

/** The verify that passport-oauth2 calls with `params`: (accessToken, refreshToken, params, profile, done). */
export type KeptVerify = (accessToken: string, refreshToken: string | undefined, params: unknown, profile: Profile, done: PassportVerified) => void;
/** The same with `passReqToCallback: true`. */
export type KeptVerifyWithRequest = (
  req: Request,
  accessToken: string,
  refreshToken: string | undefined,
  params: unknown,
  profile: Profile,
  done: PassportVerified,
) => void;

export interface KeepTokensOptions {
  /** As the wrapped strategy's own `passReqToCallback`. Default false. */
  passReqToCallback?: boolean;
}

/**
 * Brings any passport-oauth2-based strategy (passport-github2, passport-google-oauth20,
 * your own `OAuth2Strategy` subclass) under the keeper, through public API only: wrap its
 * verify callback, and its logins carry their token set to `keeper.completeLogin()`,
 * which stores it encrypted; `req.oauthToken`, refresh and the proxy then work through
 * the keeper strategy named `name` (an `OAuthKeeperStrategy` of a `defineProvider`
 * definition with the same token endpoint and client).
 *
 * ```js
 * passport.use(new GitHubStrategy({ clientID, clientSecret, callbackURL }, keepTokens('github', verify)));
 * app.get('/auth/github/callback', passport.authenticate('github', { failureRedirect: '/login' }), keeper.completeLogin());
 * ```
 *
 * `verify` keeps its own shape — (accessToken, refreshToken, profile, done) or with `params`,
 * with `req` first under `passReqToCallback` — and its `done(err, user, info)` decides as
 * before; without one, the profile is the user. The token set is read from the token
 * response as oauth-keeper reads any (RFC 6749 token characters only), so a broken answer
 * ends in a typed error, not a stored set.
 */
export function keepTokens(name: string, verify?: OAuth2Verify, options?: { passReqToCallback?: false }): KeptVerify;
export function keepTokens(name: string, verify: OAuth2Verify, options: { passReqToCallback: true }): KeptVerifyWithRequest;
export function keepTokens(name: string, verify?: OAuth2Verify, options: KeepTokensOptions = {}): KeptVerify | KeptVerifyWithRequest {
  const passReq = options.passReqToCallback === true;
  const call = verify as ((...args: unknown[]) => unknown) | undefined;
  const withParams = call !== undefined && call.length === (passReq ? 6 : 5);

  const run = (req: Request | undefined, accessToken: string, refreshToken: string | undefined, params: unknown, profile: Profile, done: VerifyDone<unknown>) => {
    const body = { ...(isRecord(params) ? params : {}), access_token: accessToken, ...(refreshToken ? { refresh_token: refreshToken } : {}) };
    const tokenSet: TokenSet | string = normalizeTokenResponse(body);
    if (typeof tokenSet === 'string') {
      return done(
        new OAuthKeeperError(ErrorCodes.TOKEN_RESPONSE_MALFORMED, `The ${name} token endpoint answered a success, but ${tokenSet}.`, { provider: name }),
      );
    }
    const finish: VerifyDone<unknown> = (err, user, info) => {
      if (err || !user) return done(err, user, info);
      const kept: AuthenticationInfo = { ...info, provider: name, tokenSet, profile, returnTo: '' };
      markLogin(kept, null);
      done(null, user, kept as unknown as Record<string, unknown>);
    };
    if (!call) return finish(null, profile);
    const head: unknown[] = passReq ? [req] : [];
    try {
      const result = withParams
        ? call(...head, accessToken, refreshToken, params, profile, finish)
        : call(...head, accessToken, refreshToken, profile, finish);
      if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).catch((error: unknown) => done(error));
    } catch (error) {
      done(error);
    }
  };
  // passport-oauth2 tells its verify shapes apart by their length: these have params.
  return passReq
    ? (req: Request, accessToken: string, refreshToken: string | undefined, params: unknown, profile: Profile, done: PassportVerified) =>
        run(req, accessToken, refreshToken, params, profile, done as VerifyDone<unknown>)
    : (accessToken: string, refreshToken: string | undefined, params: unknown, profile: Profile, done: PassportVerified) =>
        run(undefined, accessToken, refreshToken, params, profile, done as VerifyDone<unknown>);
}
