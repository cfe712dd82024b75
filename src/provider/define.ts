import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { httpOptionsOf, httpRequest, isRecord, parseJson, TransportError, type FetchLike } from '../lib/http.js';
import type { NormalizeOptions, TokenSet } from '../lib/token-set.js';
import {
  attachBearer,
  isHttp401,
  readStandardCallback,
  standardRevoke,
  standardTokenRequest,
  type ClientAuthentication,
  type ParameterPlacement,
} from './standard.js';
import type {
  ApiBinding,
  ApiRequest,
  ApiResponseHead,
  Profile,
  ProviderDefinition,
  ProviderOptions,
  StateTransport,
} from './types.js';

type PerOptions<O, T> = T | ((options: O) => T);

/** Hooks a provider may replace wholesale; everything else is derived from the spec's data. */
export type ProviderHooks<O extends ProviderOptions> = Partial<
  Pick<
    ProviderDefinition<O>,
    | 'validateOptions'
    | 'startupWarnings'
    | 'authorizationURL'
    | 'readCallback'
    | 'checkCallback'
    | 'describeAuthorizationError'
    | 'requestToken'
    | 'validateTokenSet'
    | 'userProfile'
    | 'revoke'
  >
>;

export interface ApiSpec<O extends ProviderOptions> {
  baseURL: PerOptions<O, string>;
  /** How credentials are attached. Default: `Authorization: Bearer`. */
  attach?: (request: ApiRequest, token: TokenSet, options: O) => ApiRequest | Promise<ApiRequest>;
  /** Which answers mean "token rejected". Default: HTTP 401. */
  isTokenRejected?: (response: ApiResponseHead) => boolean;
  /** Rewrites a buffered answer (see ApiBinding.readResponse). */
  readResponse?: ApiBinding<O>['readResponse'];
  /** Parameters `attach` sends whose values never come back to the caller (see ApiBinding.secretParameters). */
  secretParameters?: readonly string[];
}

/** The description of a standard RFC 6749 provider; see {@link defineProvider}. */
export interface ProviderSpec<O extends ProviderOptions = ProviderOptions> {
  name: string;
  authorizationURL: PerOptions<O, string>;
  tokenURL: PerOptions<O, string>;
  revocationURL?: PerOptions<O, string>;
  /** A userinfo endpoint called with the access token to build the profile. */
  userInfoURL?: PerOptions<O, string>;
  scope?: readonly string[];
  scopeSeparator?: string;
  /** PKCE S256. Default true: harmless where unsupported, required by OAuth 2.1 and RFC 9700. */
  pkce?: boolean;
  /** Default `client_secret_post`. */
  clientAuthentication?: ClientAuthentication;
  /** Where token request parameters go. Default `body`. */
  tokenParameters?: ParameterPlacement;
  /** Extra authorization request parameters (`access_type`, `prompt`, ...). */
  authorizationParams?: (options: O) => Record<string, string>;
  /** Unwraps a token response before it is normalized. */
  unwrapTokenResponse?: (body: unknown) => unknown;
  tokenResponse?: Pick<NormalizeOptions, 'nonPositiveLifetimeMeansNever'>;
  /**
   * OAuth error codes by which the token endpoint says the grant (code or refresh token)
   * is invalid, expired or revoked; only these make a refresh delete the stored tokens.
   * Default `['invalid_grant']`.
   */
  grantInvalidErrors?: readonly string[];
  /** Maps the userinfo JSON to a profile. Default: `sub` or `id`, and `name`. */
  profile?: (userInfo: Record<string, unknown>) => Omit<Profile, 'provider'>;
  api?: ApiSpec<O>;
  nonce?: boolean;
  stateTransport?: StateTransport;
  formPostCallback?: boolean;
  /**
   * This provider's own option names beyond the common ones (`baseURL`, ...). When given,
   * a strategy warns about any other option key it is handed, naming the nearest valid one.
   */
  optionNames?: readonly string[];
  hooks?: ProviderHooks<O>;
}

function resolve<O, T>(value: PerOptions<O, T>, options: O): T {
  return typeof value === 'function' ? (value as (o: O) => T)(options) : value;
}

function defaultProfile(info: Record<string, unknown>): Omit<Profile, 'provider'> {
  const id = info['sub'] ?? info['id'] ?? info['user_id'];
  const profile: Omit<Profile, 'provider'> = { id: id === undefined ? '' : String(id), raw: info };
  if (typeof info['name'] === 'string') profile.displayName = info['name'];
  if (typeof info['email'] === 'string') profile.emails = [{ value: info['email'] }];
  if (typeof info['picture'] === 'string') profile.photos = [{ value: info['picture'] }];
  return profile;
}

/** Checks the options every provider needs; provider-specific checks run after it. */
export function validateCommonOptions(name: string, options: ProviderOptions, needsSecret: boolean): void {
  if (!options || typeof options !== 'object') throw configurationError(`The ${name} strategy needs an options object.`);
  if (typeof options.clientID !== 'string' || options.clientID.length === 0) {
    throw configurationError(`The ${name} strategy needs clientID: the client (app) id the provider issued you.`);
  }
  if (needsSecret && (typeof options.clientSecret !== 'string' || options.clientSecret.length === 0)) {
    throw configurationError(`The ${name} strategy needs clientSecret: the client secret the provider issued with clientID.`);
  }
  if (typeof options.callbackURL !== 'string' || !(options.callbackURL.startsWith('/') || /^https?:\/\//.test(options.callbackURL))) {
    throw configurationError(
      `The ${name} strategy needs callbackURL: an absolute http(s) URL or a path such as "/auth/${name}/callback", registered with the provider.`,
    );
  }
}

/**
 * Describes an OAuth 2.0 provider as data, with standard RFC 6749 behaviour for
 * everything not overridden. Returns a frozen definition to hand to `OAuthKeeperStrategy`.
 *
 * ```ts
 * const acme = defineProvider({
 *   name: 'acme',
 *   authorizationURL: 'https://id.acme.example/authorize',
 *   tokenURL: 'https://id.acme.example/token',
 *   scope: ['read'],
 *   api: { baseURL: 'https://api.acme.example' },
 * });
 * ```
 */
export function defineProvider<O extends ProviderOptions = ProviderOptions>(spec: ProviderSpec<O>): ProviderDefinition<O> {
  if (!spec || typeof spec.name !== 'string' || !/^[a-z0-9][a-z0-9_-]*$/i.test(spec.name)) {
    throw configurationError('defineProvider needs a name made of letters, digits, "-" or "_" (it appears in routes and store keys).');
  }
  const name = spec.name;
  if (spec.authorizationURL === undefined || spec.tokenURL === undefined) {
    if (!spec.hooks?.authorizationURL || !spec.hooks?.requestToken) {
      throw configurationError(`defineProvider("${name}") needs authorizationURL and tokenURL (or hooks that replace them).`);
    }
  }
  const clientAuthentication = spec.clientAuthentication ?? 'client_secret_post';
  const hooks = spec.hooks ?? {};

  const api: ApiBinding<O> | undefined = spec.api
    ? Object.freeze({
        baseURL: (options: O) => resolve(spec.api!.baseURL, options),
        attach: spec.api.attach ?? ((request: ApiRequest, token: TokenSet) => attachBearer(request, token)),
        isTokenRejected: spec.api.isTokenRejected ?? isHttp401,
        ...(spec.api.readResponse ? { readResponse: spec.api.readResponse } : {}),
        ...(spec.api.secretParameters ? { secretParameters: Object.freeze([...spec.api.secretParameters]) } : {}),
      })
    : undefined;

  const definition: ProviderDefinition<O> = {
    name,
    defaultScope: Object.freeze([...(spec.scope ?? [])]),
    scopeSeparator: spec.scopeSeparator ?? ' ',
    pkce: spec.pkce ?? true,
    nonce: spec.nonce ?? false,
    stateTransport: Object.freeze(spec.stateTransport ?? { kind: 'parameter' }),
    formPostCallback: spec.formPostCallback ?? false,

    ...(hooks.startupWarnings ? { startupWarnings: hooks.startupWarnings } : {}),
    validateOptions:
      hooks.validateOptions ?? ((options: O) => validateCommonOptions(name, options, clientAuthentication !== 'none')),

    authorizationURL:
      hooks.authorizationURL ??
      ((options, context) => {
        const url = new URL(resolve(spec.authorizationURL, options));
        // The provider's extra parameters first: they never replace the flow's own.
        const params: Record<string, string> = {
          ...spec.authorizationParams?.(options),
          response_type: 'code',
          client_id: options.clientID,
          redirect_uri: context.redirectUri,
          state: context.state,
        };
        if (context.scope) params['scope'] = context.scope;
        if (context.codeChallenge !== undefined) {
          params['code_challenge'] = context.codeChallenge;
          params['code_challenge_method'] = 'S256';
        }
        if (context.nonce !== undefined) params['nonce'] = context.nonce;
        for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
        return url;
      }),

    readCallback: hooks.readCallback ?? readStandardCallback,

    requestToken:
      hooks.requestToken ??
      ((options, grant) =>
        standardTokenRequest(
          {
            provider: name,
            url: resolve(spec.tokenURL, options),
            clientAuthentication,
            parameterPlacement: spec.tokenParameters ?? 'body',
            ...(spec.unwrapTokenResponse ? { unwrap: spec.unwrapTokenResponse } : {}),
            ...(spec.tokenResponse ? { normalize: spec.tokenResponse } : {}),
            ...(spec.grantInvalidErrors ? { grantInvalidErrors: spec.grantInvalidErrors } : {}),
          },
          options,
          grant,
        )),

    userProfile:
      hooks.userProfile ??
      (spec.userInfoURL !== undefined
        ? async (options, tokenSet) => {
            const info = await fetchUserInfo(name, resolve(spec.userInfoURL!, options), tokenSet, options);
            return { provider: name, ...(spec.profile ?? defaultProfile)(info) };
          }
        : undefined),
  } as ProviderDefinition<O>;

  if (hooks.checkCallback) Object.assign(definition, { checkCallback: hooks.checkCallback });
  if (hooks.describeAuthorizationError) Object.assign(definition, { describeAuthorizationError: hooks.describeAuthorizationError });
  if (hooks.validateTokenSet) Object.assign(definition, { validateTokenSet: hooks.validateTokenSet });
  if (hooks.revoke) {
    Object.assign(definition, { revoke: hooks.revoke });
  } else if (spec.revocationURL !== undefined) {
    const revocationURL = spec.revocationURL;
    Object.assign(definition, {
      revoke: (options: O, tokenSet: TokenSet) =>
        standardRevoke({ provider: name, url: resolve(revocationURL, options), clientAuthentication }, options, tokenSet),
    });
  }
  if (definition.userProfile === undefined) delete (definition as { userProfile?: unknown }).userProfile;
  if (api) Object.assign(definition, { api });
  if (spec.optionNames) Object.assign(definition, { optionNames: Object.freeze([...spec.optionNames]) });
  return Object.freeze(definition);
}

/** GET a userinfo endpoint with the access token (OpenID Connect §5.3); the JSON object it answers. */
export async function fetchUserInfo(
  provider: string,
  url: string,
  tokenSet: TokenSet,
  transport: { timeoutMs?: number | undefined; fetch?: FetchLike | undefined } | number | undefined,
): Promise<Record<string, unknown>> {
  let response;
  try {
    response = await httpRequest({
      method: 'GET',
      url,
      headers: { authorization: `Bearer ${tokenSet.accessToken}`, accept: 'application/json' },
      ...httpOptionsOf(transport),
    });
  } catch (cause) {
    if (!(cause instanceof TransportError)) throw cause;
    throw new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, `The ${provider} userinfo endpoint could not be reached: ${cause.message}.`, {
      provider,
      cause,
      transient: true,
    });
  }
  const body = parseJson(response.text);
  if (response.status !== 200 || !isRecord(body)) {
    throw new OAuthKeeperError(
      ErrorCodes.PROVIDER_ERROR,
      `The ${provider} userinfo endpoint answered HTTP ${response.status}${isRecord(body) ? '' : ' without a JSON object'}.`,
      { provider, details: { status: response.status, body: response.text } },
    );
  }
  return body;
}
