import type { Request } from 'express';
import { Strategy as PassportStrategy } from 'passport-strategy';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { codeChallengeS256, randomToken } from '../lib/pkce.js';
import { safeReturnTo } from '../lib/return-to.js';
import { secretForms, scrubBuffer } from '../lib/api/scrub.js';
import { addTransaction, hasCookie, publicHost, repeatedParameter, requireSession, saveSession, takeTransaction, type TransactionLimits } from './session.js';
import { TokenClient } from '../lib/token-client.js';
import type { TokenSet } from '../lib/token-set.js';
import {
  adaptVerify,
  fallbackProfile,
  type AnyVerifyFunction,
  type AnyVerifyFunctionWithRequest,
  type NoRequest,
  type OAuth2VerifyFunction,
  type OAuth2VerifyFunctionWithParams,
  type OAuth2VerifyFunctionWithRequest,
  type OAuth2VerifyFunctionWithRequestAndParams,
  type Verify,
  type VerifyDone,
  type VerifyFunction,
  type VerifyFunctionWithRequest,
  type WithRequest,
} from './verify.js';
import type { CallbackParams, Profile, ProviderDefinition, ProviderOptions } from '../provider/types.js';
import { markLogin, strategyOptionWarnings, type AuthenticateOptions, type AuthenticationInfo, type FailureInfo, type StrategyOptions } from './options.js';

/** Authorization request parameters the flow sets itself; extra parameters never replace them. */
const RESERVED_AUTHORIZATION_PARAMS = new Set([
  'response_type',
  'client_id',
  'redirect_uri',
  'state',
  'code_challenge',
  'code_challenge_method',
  'nonce',
  'scope',
]);

/** Marks the errors that a user's or browser's doing caused: they end in `fail()`, not `error()`. */
const refusals = new WeakSet<OAuthKeeperError>();

function refusal(error: OAuthKeeperError): OAuthKeeperError {
  refusals.add(error);
  return error;
}

/**
 * The one generic Passport strategy. A provider definition supplies every
 * provider-specific step; this class owns the flow: the login transaction (state,
 * PKCE, nonce), saving the session before redirecting, the callback checks and the
 * code exchange. `authenticate()` ends in exactly one of success, fail, redirect or
 * error, as Passport defines them: what the user or the browser caused (denied, stale or
 * replayed state, a tampered callback, verify said no) is `fail(info, status)`; a fault
 * (network, provider, signatures, configuration) is `error(err)`.
 *
 * Every `authenticate()` call runs on an object of its own (see there), so no request's
 * state ever lives on the strategy; that is also why configuration lives in plain
 * readonly properties, not `#private` fields, which `Object.create` copies cannot read.
 *
 * Like passport-oauth2, a subclass may override `authorizationParams(options)` and
 * `tokenParams(options)` to add request parameters.
 */
export class OAuthKeeperStrategy<O extends ProviderOptions = ProviderOptions, User = Profile> extends PassportStrategy {
  name: string;
  readonly provider: ProviderDefinition<O>;
  readonly options: Readonly<O & StrategyOptions>;
  readonly tokens: TokenClient<O>;
  protected readonly limits: TransactionLimits;
  private readonly verifyUser: Verify<User>;

  // One overload per verify shape, so that an unannotated verify is typed (passport-oauth2's shapes too).
  constructor(provider: ProviderDefinition<O>, options: O & StrategyOptions & NoRequest, verify?: VerifyFunction<User>);
  constructor(provider: ProviderDefinition<O>, options: O & StrategyOptions & NoRequest, verify: OAuth2VerifyFunction<User>);
  constructor(provider: ProviderDefinition<O>, options: O & StrategyOptions & NoRequest, verify: OAuth2VerifyFunctionWithParams<User>);
  constructor(provider: ProviderDefinition<O>, options: O & StrategyOptions & WithRequest, verify: VerifyFunctionWithRequest<User>);
  constructor(provider: ProviderDefinition<O>, options: O & StrategyOptions & WithRequest, verify: OAuth2VerifyFunctionWithRequest<User>);
  constructor(provider: ProviderDefinition<O>, options: O & StrategyOptions & WithRequest, verify: OAuth2VerifyFunctionWithRequestAndParams<User>);
  constructor(
    provider: ProviderDefinition<O>,
    options: O & StrategyOptions & { passReqToCallback?: boolean },
    verify?: AnyVerifyFunction<User> | AnyVerifyFunctionWithRequest<User>,
  );
  constructor(
    provider: ProviderDefinition<O>,
    options: O & StrategyOptions & { passReqToCallback?: boolean },
    verify?: AnyVerifyFunction<User> | AnyVerifyFunctionWithRequest<User>,
  ) {
    super();
    if (!provider || typeof provider.requestToken !== 'function') {
      throw configurationError('OAuthKeeperStrategy needs a provider definition: pass one made by defineProvider().');
    }
    provider.validateOptions(options);
    for (const warning of strategyOptionWarnings(provider as ProviderDefinition<never>, options)) {
      process.emitWarning(warning, { type: 'OAuthKeeperWarning', code: 'OAUTH_KEEPER_UNKNOWN_OPTION' });
    }
    this.name = options.name ?? provider.name;
    this.provider = provider;
    // Hooks get the strategy's name with the options, to name it in their errors.
    this.options = Object.freeze({ ...options, name: this.name });
    this.tokens = new TokenClient(
      this.name,
      provider,
      this.options,
      (grant) => this.tokenParams(grant),
      (error) => this.parseErrorResponse(error),
    );
    this.limits = {
      ttlMs: (options.loginTimeoutSeconds ?? 600) * 1000,
      max: options.maxPendingLogins ?? 10,
    };
    if (!(this.limits.ttlMs > 0) || !(this.limits.max >= 1)) {
      throw configurationError(`The ${this.name} strategy needs loginTimeoutSeconds > 0 and maxPendingLogins >= 1.`);
    }
    if (verify !== undefined && typeof verify !== 'function') {
      throw configurationError(`The ${this.name} strategy's verify callback must be a function (or omitted).`);
    }
    this.verifyUser = adaptVerify(verify, options.passReqToCallback === true);
  }

  /**
   * Extra authorization request parameters of one login, from `authenticate()`'s options
   * (as passport-oauth2's hook of the same name). Default: `prompt`, `login_hint`, the
   * strategy's and the call's `authorizationParams`.
   */
  authorizationParams(options: AuthenticateOptions): Record<string, string> {
    return {
      ...this.options.authorizationParams,
      ...(options.prompt === undefined ? {} : { prompt: options.prompt }),
      ...(options.loginHint === undefined ? {} : { login_hint: options.loginHint }),
      ...options.authorizationParams,
    };
  }

  /**
   * Rewrites the typed error of a refused token request (as passport-oauth2's
   * `parseErrorResponse`); the provider's raw answer is on `error.details`. Keep
   * `grantInvalid` true only for answers that say the grant is invalid: only those delete
   * stored tokens. Default: the error as it is.
   */
  parseErrorResponse(error: OAuthKeeperError): OAuthKeeperError {
    return error;
  }

  /** Extra token request parameters (as passport-oauth2's hook of the same name). Default none. */
  tokenParams(_grant: { grantType: 'authorization_code' | 'refresh_token' }): Record<string, string> {
    return {};
  }

  override authenticate(req: Request, options: AuthenticateOptions = {}): void {
    // Passport assigns this request's success/fail/redirect/pass/error onto the object it
    // calls. Given a strategy by name it calls a fresh Object.create(strategy); given an
    // instance it calls the instance itself, shared by every request. Either way, bind
    // this request's actions to an object of its own before the first await, so that a
    // later request cannot swap them while this one waits for the provider.
    const own = Object.create(this, {
      success: { value: this.success },
      fail: { value: this.fail },
      redirect: { value: this.redirect },
      pass: { value: this.pass },
      error: { value: this.error },
    }) as this;
    own.run(req, options);
  }

  private run(req: Request, options: AuthenticateOptions): void {
    const run = (async () => {
      const repeated = repeatedParameter(req.query) ?? (req.method === 'POST' ? repeatedParameter(req.body) : undefined);
      if (repeated !== undefined) {
        // state=genuine&state=forged: whichever copy a parser keeps, refuse to guess.
        throw refusal(
          new OAuthKeeperError(
            ErrorCodes.CALLBACK_INVALID,
            `The ${this.name} request carries the parameter "${repeated}" more than once (or as a nested value); a provider sends each once. Start the login again.`,
            { provider: this.name },
          ),
        );
      }
      const params = this.provider.readCallback({
        method: req.method,
        query: (req.query ?? {}) as Record<string, unknown>,
        body: req.body as Record<string, unknown> | undefined,
      });
      const isCallback = params.code !== undefined || params.error !== undefined || this.stateOf(req, params) !== undefined;
      return isCallback ? this.handleCallback(req, params, options) : this.startLogin(req, options);
    })();
    run.catch((err: unknown) => {
      if (err instanceof OAuthKeeperError && refusals.has(err)) {
        const info: FailureInfo = { message: err.message, error: err };
        return this.fail(info, err.status);
      }
      this.error(err instanceof Error ? err : new Error(String(err)));
    });
  }

  /**
   * The absolute redirect URI for this request, without any state binding: a path is
   * resolved against the public origin, as Express's `trust proxy` gives it — or, with the
   * passport-oauth2 option `proxy: true`, as `X-Forwarded-Proto` / `-Host` say.
   */
  callbackURLFor(req: Request, configured: string = this.options.callbackURL): string {
    if (/^https?:\/\//.test(configured)) return configured;
    if (this.options.proxy === true) {
      const proto = req.get('x-forwarded-proto')?.split(',')[0]?.trim();
      const host = req.get('x-forwarded-host')?.split(',')[0]?.trim();
      return `${proto === 'https' || proto === 'http' ? proto : req.protocol}://${host || publicHost(req)}${configured}`;
    }
    return `${req.protocol}://${publicHost(req)}${configured}`;
  }

  private stateOf(req: Request, params: CallbackParams): string | undefined {
    const transport = this.provider.stateTransport;
    if (transport.kind === 'parameter') return params.state;
    const value = (req.query as Record<string, unknown> | undefined)?.[transport.parameter];
    return typeof value === 'string' ? value : undefined;
  }

  private async startLogin(req: Request, options: AuthenticateOptions): Promise<void> {
    requireSession(req, `The ${this.name} strategy`);
    const state = randomToken();
    if (options.callbackURL !== undefined && !(typeof options.callbackURL === 'string' && /^(https?:\/\/|\/)/.test(options.callbackURL))) {
      throw configurationError(`The ${this.name} authenticate() callbackURL option must be an absolute http(s) URL or a path.`);
    }
    let redirectUri = this.callbackURLFor(req, options.callbackURL);
    const transport = this.provider.stateTransport;
    if (transport.kind === 'redirect_uri') {
      const bound = new URL(redirectUri);
      bound.searchParams.set(transport.parameter, state);
      redirectUri = bound.toString();
    }
    const codeVerifier = this.provider.pkce ? randomToken() : undefined;
    const nonce = this.provider.nonce ? randomToken() : undefined;
    const requested = options.scope ?? this.options.scope ?? this.provider.defaultScope;
    const scope = typeof requested === 'string' ? requested : requested.join(this.provider.scopeSeparator);
    const url = await this.provider.authorizationURL(this.options, {
      redirectUri,
      state,
      scope,
      ...(codeVerifier === undefined ? {} : { codeChallenge: codeChallengeS256(codeVerifier) }),
      ...(nonce === undefined ? {} : { nonce }),
    });
    for (const [name, value] of Object.entries(this.authorizationParams(options))) {
      if (!RESERVED_AUTHORIZATION_PARAMS.has(name) && typeof value === 'string') url.searchParams.set(name, value);
    }
    addTransaction(
      req,
      state,
      {
        provider: this.name,
        redirectUri,
        returnTo: safeReturnTo(options.returnTo ?? (req.query as Record<string, unknown> | undefined)?.['returnTo']),
        createdAt: Date.now(),
        ...(codeVerifier === undefined ? {} : { codeVerifier }),
        ...(nonce === undefined ? {} : { nonce }),
        ...(options.state === undefined ? {} : { appState: options.state }),
      },
      this.limits,
    );
    // express-session writes from res.end; a redirect can outrun that write. Save first.
    await saveSession(req);
    this.redirect(url.toString());
  }

  private async handleCallback(req: Request, params: CallbackParams, options: AuthenticateOptions): Promise<void> {
    const provider = this.name;
    const state = this.stateOf(req, params);
    if (state === undefined) {
      if (params.error !== undefined) throw refusal(this.providerError(params));
      throw refusal(
        new OAuthKeeperError(
          ErrorCodes.STATE_MISSING,
          `The ${provider} callback carries no state, so it cannot be matched to a login started here. ` +
            `Start the login from this app's login route instead of a bookmarked or provider-initiated link.`,
          { provider },
        ),
      );
    }
    requireSession(req, `The ${provider} strategy`);
    const taken = takeTransaction(req, state, this.limits);
    if (!('found' in taken)) {
      const cookieName = typeof options.sessionCookieName === 'string' ? options.sessionCookieName : 'connect.sid';
      if ('missing' in taken && !hasCookie(req, cookieName)) {
        throw refusal(
          new OAuthKeeperError(
            ErrorCodes.SESSION_COOKIE_MISSING,
            `The ${provider} callback arrived without the session cookie "${cookieName}", so the login it belongs to cannot be found. ` +
              'Likely causes: the callback URL uses a different host than the login (localhost vs 127.0.0.1, www vs apex), ' +
              'the cookie is SameSite=Strict, or it is Secure on plain http. Use the same host for both and SameSite=Lax.',
            { provider },
          ),
        );
      }
      throw refusal(
        new OAuthKeeperError(
          ErrorCodes.STATE_MISMATCH,
          'expired' in taken
            ? `The ${provider} login took longer than loginTimeoutSeconds; start it again.`
            : `The ${provider} callback's state matches no login pending in this session (already used, or started in another browser). Start the login again.`,
          { provider },
        ),
      );
    }
    const tx = taken.found;
    if (tx.provider !== provider) {
      throw refusal(new OAuthKeeperError(ErrorCodes.STATE_MISMATCH, `The callback's state belongs to a ${tx.provider} login, not ${provider}.`, { provider }));
    }
    if (params.error !== undefined) throw refusal(this.providerError(params));
    const facts = { state, redirectUri: tx.redirectUri, ...(tx.nonce === undefined ? {} : { nonce: tx.nonce }) };
    await this.provider.checkCallback?.(this.options, params, facts);
    if (params.code === undefined || params.code.length === 0) {
      throw refusal(new OAuthKeeperError(ErrorCodes.CALLBACK_INVALID, `The ${provider} callback carries neither a code nor an error.`, { provider }));
    }
    const tokenSet = await this.tokens.exchangeCode({
      code: params.code,
      redirectUri: tx.redirectUri,
      callback: params,
      ...(tx.codeVerifier === undefined ? {} : { codeVerifier: tx.codeVerifier }),
    });
    const claims = await this.provider.validateTokenSet?.(this.options, tokenSet, facts, params);
    const profile = (await this.skipsProfile(tokenSet))
      ? fallbackProfile(provider, tokenSet, claims)
      : this.provider.userProfile
        ? await this.provider.userProfile(this.options, tokenSet, claims)
        : fallbackProfile(provider, tokenSet, claims);
    const { user, info } = await this.verified(req, tokenSet, profile);
    if (!user) {
      // As passport-oauth2: the verify's info goes to fail() as it is.
      this.fail(info ?? { message: `The ${provider} account was not accepted by this app.` }, 403);
      return;
    }
    const authInfo: AuthenticationInfo = {
      ...info,
      provider,
      tokenSet,
      returnTo: typeof info?.['returnTo'] === 'string' ? safeReturnTo(info['returnTo']) : tx.returnTo,
      profile,
      ...(claims ? { claims } : {}),
      ...(tx.appState === undefined ? {} : { state: tx.appState }),
    };
    markLogin(authInfo, req.sessionID);
    this.success(user, authInfo as unknown as Record<string, unknown>);
  }

  private async skipsProfile(tokenSet: TokenSet): Promise<boolean> {
    const skip = this.options.skipUserProfile;
    return typeof skip === 'function' ? (await skip(tokenSet)) === true : skip === true;
  }

  /** Runs verify in whatever shape it was written; a throw or rejection becomes a typed, token-free error. */
  private async verified(req: Request, tokenSet: TokenSet, profile: Profile): Promise<{ user: User | false | undefined; info: Record<string, unknown> | undefined }> {
    try {
      return await new Promise((resolve, reject) => {
        const done: VerifyDone<User> = (err, user, info) => (err ? reject(err) : resolve({ user, info }));
        const result = this.verifyUser(req, tokenSet, profile, done);
        if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).catch(reject);
      });
    } catch (cause) {
      if (cause instanceof OAuthKeeperError) throw cause;
      const forms = secretForms([tokenSet.accessToken, tokenSet.refreshToken, tokenSet.idToken, this.options.clientSecret]);
      const said = scrubBuffer(Buffer.from(cause instanceof Error ? cause.message : String(cause)), forms).toString();
      throw new OAuthKeeperError(ErrorCodes.VERIFY_FAILED, `The ${this.name} verify callback failed: ${said}`, { provider: this.name, cause });
    }
  }

  private providerError(params: CallbackParams): OAuthKeeperError {
    const denied = params.error === 'access_denied';
    // The provider's hint: which option to change (its own words; never the browser's).
    const hint =
      denied || params.error === undefined ? undefined : this.provider.describeAuthorizationError?.(this.options, params.error, params.errorDescription);
    return new OAuthKeeperError(
      ErrorCodes.PROVIDER_ERROR,
      denied
        ? `The user declined the ${this.name} authorization (access_denied).`
        : `The ${this.name} provider answered the authorization with "${params.error}".${hint ? ` ${hint}` : ''}`,
      {
        provider: this.name,
        status: denied ? 403 : 502,
        ...(params.error === undefined ? {} : { oauthError: params.error }),
        details: { description: params.errorDescription },
      },
    );
  }
}
