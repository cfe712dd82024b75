import type { Request } from 'express';
import { Strategy as PassportStrategy } from 'passport-strategy';
import { configurationError, ErrorCodes, OAuthKeeperError } from './errors.js';
import { codeChallengeS256, randomToken } from './lib/pkce.js';
import { safeReturnTo } from './lib/return-to.js';
import { addTransaction, requireSession, saveSession, takeTransaction, type TransactionLimits } from './lib/session.js';
import { TokenClient } from './lib/token-client.js';
import type { TokenSet } from './lib/token-set.js';
import type { CallbackParams, Profile, ProviderDefinition, ProviderOptions } from './provider/types.js';

export type VerifyDone<User> = (error: unknown, user?: User | false, info?: Record<string, unknown>) => void;
export type VerifyFunction<User> = (tokens: TokenSet, profile: Profile, done: VerifyDone<User>) => void | Promise<void>;
export type VerifyFunctionWithRequest<User> = (
  req: Request,
  tokens: TokenSet,
  profile: Profile,
  done: VerifyDone<User>,
) => void | Promise<void>;

export interface StrategyOptions {
  /** Strategy name; default the provider's name. Also the name in routes and store keys. */
  name?: string;
  /** How long a started login may take, in seconds. Default 600. */
  loginTimeoutSeconds?: number;
  /** Most pending logins kept per session (tabs); the oldest is dropped first. Default 10. */
  maxPendingLogins?: number;
}

/** What `success(user, info)` carries, for the token middleware and custom callbacks. */
export interface AuthenticationInfo {
  provider: string;
  tokenSet: TokenSet;
  returnTo: string;
  profile: Profile;
  claims?: Record<string, unknown>;
}

/** Options of one `authenticate()` call (`passport.authenticate(strategy, options)`). */
export interface AuthenticateOptions {
  /** Where to land after login; default `req.query.returnTo`; only same-origin paths are kept. */
  returnTo?: string;
  /** The session cookie's name, to tell "cookie not sent" from "state mismatch". Default `connect.sid`. */
  sessionCookieName?: string;
}

/**
 * The one generic Passport strategy. A provider definition supplies every
 * provider-specific step; this class owns the flow: the login transaction (state,
 * PKCE, nonce), saving the session before redirecting, the callback checks and the
 * code exchange. `authenticate()` ends in exactly one of success, fail, redirect or error.
 *
 * Every `authenticate()` call runs on an object of its own (see there), so no request's
 * state ever lives on the strategy; that is also why configuration lives in plain
 * readonly properties, not `#private` fields, which `Object.create` copies cannot read.
 */
export class OAuthKeeperStrategy<O extends ProviderOptions = ProviderOptions, User = Profile> extends PassportStrategy {
  name: string;
  readonly provider: ProviderDefinition<O>;
  readonly options: Readonly<O & StrategyOptions>;
  readonly tokens: TokenClient<O>;
  protected readonly limits: TransactionLimits;
  private readonly verifyUser: (req: Request, tokens: TokenSet, profile: Profile, done: VerifyDone<User>) => void;

  constructor(provider: ProviderDefinition<O>, options: O & StrategyOptions, verify?: VerifyFunction<User>);
  constructor(
    provider: ProviderDefinition<O>,
    options: O & StrategyOptions & { passReqToCallback: true },
    verify: VerifyFunctionWithRequest<User>,
  );
  constructor(
    provider: ProviderDefinition<O>,
    options: O & StrategyOptions & { passReqToCallback?: boolean },
    verify?: VerifyFunction<User> | VerifyFunctionWithRequest<User>,
  ) {
    super();
    if (!provider || typeof provider.requestToken !== 'function') {
      throw configurationError('OAuthKeeperStrategy needs a provider definition: pass one made by defineProvider().');
    }
    provider.validateOptions(options);
    this.name = options.name ?? provider.name;
    this.provider = provider;
    this.options = Object.freeze({ ...options });
    this.tokens = new TokenClient(this.name, provider, this.options);
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
    const passReq = options.passReqToCallback === true;
    this.verifyUser = (req, tokens, profile, done) => {
      if (!verify) return done(null, profile as unknown as User);
      const result = passReq
        ? (verify as VerifyFunctionWithRequest<User>)(req, tokens, profile, done)
        : (verify as VerifyFunction<User>)(tokens, profile, done);
      if (result && typeof (result as Promise<void>).then === 'function') (result as Promise<void>).catch(done);
    };
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
    const repeated = repeatedParameter(req.query) ?? (req.method === 'POST' ? repeatedParameter(req.body) : undefined);
    if (repeated !== undefined) {
      // state=genuine&state=forged: whichever copy a parser keeps, refuse to guess.
      this.error(
        new OAuthKeeperError(
          ErrorCodes.CALLBACK_INVALID,
          `The ${this.name} request carries the parameter "${repeated}" more than once (or as a nested value); a provider sends each once. Start the login again.`,
          { provider: this.name },
        ),
      );
      return;
    }
    const params = this.provider.readCallback({
      method: req.method,
      query: (req.query ?? {}) as Record<string, unknown>,
      body: req.body as Record<string, unknown> | undefined,
    });
    const isCallback = params.code !== undefined || params.error !== undefined || this.stateOf(req, params) !== undefined;
    const run = isCallback ? this.handleCallback(req, params, options) : this.startLogin(req, options);
    run.catch((err: unknown) => this.error(err instanceof Error ? err : new Error(String(err))));
  }

  /** The absolute redirect URI for this request, without any state binding. */
  callbackURLFor(req: Request): string {
    const configured = this.options.callbackURL;
    if (/^https?:\/\//.test(configured)) return configured;
    return `${req.protocol}://${req.get('host')}${configured}`;
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
    let redirectUri = this.callbackURLFor(req);
    const transport = this.provider.stateTransport;
    if (transport.kind === 'redirect_uri') {
      const bound = new URL(redirectUri);
      bound.searchParams.set(transport.parameter, state);
      redirectUri = bound.toString();
    }
    const codeVerifier = this.provider.pkce ? randomToken() : undefined;
    const nonce = this.provider.nonce ? randomToken() : undefined;
    const scope = this.options.scope ?? this.provider.defaultScope;
    const url = await this.provider.authorizationURL(this.options, {
      redirectUri,
      state,
      scope: typeof scope === 'string' ? scope : scope.join(this.provider.scopeSeparator),
      ...(codeVerifier === undefined ? {} : { codeChallenge: codeChallengeS256(codeVerifier) }),
      ...(nonce === undefined ? {} : { nonce }),
    });
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
      if (params.error !== undefined) throw this.providerError(params);
      throw new OAuthKeeperError(
        ErrorCodes.STATE_MISSING,
        `The ${provider} callback carries no state, so it cannot be matched to a login started here. ` +
          `Start the login from this app's login route instead of a bookmarked or provider-initiated link.`,
        { provider },
      );
    }
    requireSession(req, `The ${provider} strategy`);
    const taken = takeTransaction(req, state, this.limits);
    if (!('found' in taken)) {
      const cookieName = options.sessionCookieName ?? 'connect.sid';
      if ('missing' in taken && !hasCookie(req, cookieName)) {
        throw new OAuthKeeperError(
          ErrorCodes.SESSION_COOKIE_MISSING,
          `The ${provider} callback arrived without the session cookie "${cookieName}", so the login it belongs to cannot be found. ` +
            'Likely causes: the callback URL uses a different host than the login (localhost vs 127.0.0.1, www vs apex), ' +
            'the cookie is SameSite=Strict, or it is Secure on plain http. Use the same host for both and SameSite=Lax.',
          { provider },
        );
      }
      throw new OAuthKeeperError(
        ErrorCodes.STATE_MISMATCH,
        'expired' in taken
          ? `The ${provider} login took longer than loginTimeoutSeconds; start it again.`
          : `The ${provider} callback's state matches no login pending in this session (already used, or started in another browser). Start the login again.`,
        { provider },
      );
    }
    const tx = taken.found;
    if (tx.provider !== provider) {
      throw new OAuthKeeperError(ErrorCodes.STATE_MISMATCH, `The callback's state belongs to a ${tx.provider} login, not ${provider}.`, { provider });
    }
    if (params.error !== undefined) throw this.providerError(params);
    const facts = { state, redirectUri: tx.redirectUri, ...(tx.nonce === undefined ? {} : { nonce: tx.nonce }) };
    await this.provider.checkCallback?.(this.options, params, facts);
    if (params.code === undefined || params.code.length === 0) {
      throw new OAuthKeeperError(ErrorCodes.CALLBACK_INVALID, `The ${provider} callback carries neither a code nor an error.`, { provider });
    }
    const tokenSet = await this.tokens.exchangeCode({
      code: params.code,
      redirectUri: tx.redirectUri,
      callback: params,
      ...(tx.codeVerifier === undefined ? {} : { codeVerifier: tx.codeVerifier }),
    });
    const claims = await this.provider.validateTokenSet?.(this.options, tokenSet, facts, params);
    const profile = this.provider.userProfile
      ? await this.provider.userProfile(this.options, tokenSet, claims)
      : fallbackProfile(provider, tokenSet, claims);
    const user = await new Promise<User | false | undefined>((resolve, reject) =>
      this.verifyUser(req, tokenSet, profile, (err, u) => (err ? reject(err) : resolve(u))),
    );
    if (!user) {
      this.fail({ message: `The ${provider} account was not accepted by this app.` }, 403);
      return;
    }
    const info: AuthenticationInfo = { provider, tokenSet, returnTo: tx.returnTo, profile, ...(claims ? { claims } : {}) };
    callbackSessions.set(info, req.sessionID);
    this.success(user, info as unknown as Record<string, unknown>);
  }

  private providerError(params: CallbackParams): OAuthKeeperError {
    const denied = params.error === 'access_denied';
    return new OAuthKeeperError(
      ErrorCodes.PROVIDER_ERROR,
      denied
        ? `The user declined the ${this.name} authorization (access_denied).`
        : `The ${this.name} provider answered the authorization with "${params.error}".`,
      {
        provider: this.name,
        status: denied ? 403 : 502,
        ...(params.error === undefined ? {} : { oauthError: params.error }),
        details: { description: params.errorDescription },
      },
    );
  }
}

const callbackSessions = new WeakMap<AuthenticationInfo, string>();

/**
 * The session id a login's callback arrived with, for the session-fixation check of
 * `keeper.completeLogin()`; undefined for anything but a strategy's own `info`.
 * @internal
 */
export function sessionIdAtCallback(info: AuthenticationInfo): string | undefined {
  return callbackSessions.get(info);
}

function fallbackProfile(provider: string, tokenSet: TokenSet, claims: Record<string, unknown> | undefined): Profile {
  const id = claims?.['sub'] ?? tokenSet.extras['user_id'] ?? tokenSet.extras['uid'] ?? tokenSet.extras['openid'];
  return { provider, id: id === undefined ? '' : String(id) };
}

/** The first parameter that is not a single string: repeated (`a=1&a=2`) or nested (`a[b]=1`). */
function repeatedParameter(source: unknown): string | undefined {
  if (source === null || typeof source !== 'object') return undefined;
  for (const [key, value] of Object.entries(source as Record<string, unknown>)) if (typeof value !== 'string') return key;
  return undefined;
}

function hasCookie(req: Request, name: string): boolean {
  const header = req.headers.cookie;
  if (!header) return false;
  return header.split(';').some((part) => part.trim().startsWith(`${name}=`));
}
