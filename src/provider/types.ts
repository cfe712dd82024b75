import type { FetchLike } from '../lib/http.js';
import type { TokenSet } from '../lib/token-set.js';

/** Options every provider takes. Providers extend this with their own (base URLs, keys...). */
export interface ProviderOptions {
  /**
   * The strategy's name (its `name` option, or the provider's). The strategy always sets
   * it on the options its provider's hooks receive, so that errors name the strategy.
   */
  name?: string;
  clientID: string;
  clientSecret?: string;
  /** Absolute URL, or a path resolved against the request's own origin. */
  callbackURL: string;
  /** Overrides the provider's default scope. */
  scope?: string | readonly string[];
  /** Timeout for each call to the provider, in ms. Default 10000. */
  timeoutMs?: number;
  /**
   * The `fetch` every call to the provider is made with — token, revocation, userinfo,
   * discovery, the signing keys (JWKS), the sop gateway — instead of the global one: a proxy
   * agent, tracing, a test double. (API calls go through the keeper's undici `api.dispatcher` instead.)
   */
  fetch?: FetchLike;
}

/** What the strategy hands a provider to build the authorization redirect. */
export interface AuthorizationContext {
  /** Absolute redirect URI, already carrying the state when the provider binds it there. */
  redirectUri: string;
  state: string;
  scope: string;
  /** PKCE S256 challenge, when the provider uses PKCE. */
  codeChallenge?: string;
  /** OpenID Connect nonce, when the provider uses one. */
  nonce?: string;
}

/** The parameters a callback request carried, read from its query or form body. */
export interface CallbackParams {
  code?: string;
  state?: string;
  error?: string;
  errorDescription?: string;
  /** Every parameter as received (single values). */
  all: Readonly<Record<string, string>>;
}

export interface CallbackRequest {
  method: string;
  query: Record<string, unknown>;
  body: Record<string, unknown> | undefined;
}

export type Grant = (
  | {
      grantType: 'authorization_code';
      code: string;
      redirectUri: string;
      codeVerifier?: string;
      callback: CallbackParams;
    }
  | { grantType: 'refresh_token'; refreshToken: string; previous: TokenSet }
) & {
  /** Extra token request parameters (a strategy's `tokenParams`); never replace the grant's own. */
  extraParams?: Readonly<Record<string, string>>;
};

/** What a login transaction remembered, handed to post-exchange checks (id_token, ...). */
export interface TransactionFacts {
  state: string;
  nonce?: string;
  redirectUri: string;
}

/** A provider-independent view of the user the verify callback receives. */
export interface Profile {
  provider: string;
  id: string;
  displayName?: string;
  emails?: Array<{ value: string }>;
  photos?: Array<{ value: string }>;
  /** The provider's own answer, as parsed. */
  raw?: unknown;
}

/** A downstream API request, before and after credentials are attached. */
export interface ApiRequest {
  method: string;
  url: URL;
  headers: Headers;
  body?: Buffer;
}

export interface ApiResponseHead {
  status: number;
  headers: Headers;
  /** The body when it was small enough to inspect (JSON parsed when possible). */
  body?: unknown;
}

/** A complete, buffered API answer. */
export interface ApiRawResponse {
  status: number;
  headers: Headers;
  /** The raw body bytes as received. */
  body: Buffer;
}

/** How a provider's downstream API is called. */
export interface ApiBinding<O extends ProviderOptions = ProviderOptions> {
  baseURL(options: O): string;
  /** Attaches the user's credentials the provider's way. */
  attach(request: ApiRequest, token: TokenSet, options: O): ApiRequest | Promise<ApiRequest>;
  /**
   * Whether an answer means "this access token was rejected" (refresh once, retry once).
   * `body` is given (parsed when JSON) for answers small enough to buffer.
   */
  isTokenRejected(response: ApiResponseHead): boolean;
  /**
   * Optional: rewrites a buffered answer before it reaches the caller and before
   * `isTokenRejected` sees it (sop: verify the response signature, unwrap the
   * response node). When present, answers are buffered rather than streamed.
   * Throws an OAuthKeeperError (e.g. RESPONSE_SIGNATURE_INVALID) to refuse an answer.
   */
  readResponse?(response: ApiRawResponse, request: ApiRequest, options: O): ApiRawResponse | Promise<ApiRawResponse>;
  /**
   * Names of query or form parameters `attach` sends whose values must never come back
   * to the caller (sop: `sign`). The access and refresh tokens, the client secret and an
   * Authorization header the binding sets are always kept out of answers.
   */
  readonly secretParameters?: readonly string[];
}

/** How the login transaction's state travels: the `state` parameter, or inside redirect_uri. */
export type StateTransport = { kind: 'parameter' } | { kind: 'redirect_uri'; parameter: string };

/**
 * A provider: frozen, typed data plus small hooks. One generic strategy, token
 * client, refresh coordinator and proxy drive every provider through this shape;
 * a provider's quirks live here and nowhere else.
 */
export interface ProviderDefinition<O extends ProviderOptions = ProviderOptions> {
  /** Default strategy name. */
  readonly name: string;
  readonly defaultScope: readonly string[];
  readonly scopeSeparator: string;
  readonly pkce: boolean;
  readonly nonce: boolean;
  readonly stateTransport: StateTransport;
  /** Whether the provider may answer the callback with a cross-site form POST. */
  readonly formPostCallback: boolean;
  /**
   * The provider's own option names beyond {@link ProviderOptions} (`baseURL`, `issuer`, ...).
   * When given, a strategy warns about any other key it is handed (a typo names the nearest one).
   */
  readonly optionNames?: readonly string[];
  /** Throws a configuration error that names the fix. */
  validateOptions(options: O): void;
  /**
   * Optional: what the app should know about these options, said once at start-up through
   * the keeper's logger (`warn`) — e.g. a platform reached over plain HTTP.
   */
  startupWarnings?(options: O): readonly string[];
  authorizationURL(options: O, context: AuthorizationContext): URL | Promise<URL>;
  readCallback(request: CallbackRequest): CallbackParams;
  /**
   * Extra callback checks before the code is spent (the returned app id, a front-channel
   * id_token and its nonce); throws an OAuthKeeperError.
   */
  checkCallback?(options: O, params: CallbackParams, facts: TransactionFacts): void | Promise<void>;
  /**
   * Optional: a hint for the message of an authorization the provider refused (`?error=`,
   * not `access_denied`) — which option to change, e.g. a client registered for another
   * flow. `error` and `description` came through the browser: compare, never echo them.
   */
  describeAuthorizationError?(options: O, error: string, description: string | undefined): string | undefined;
  /** Exchanges a code or a refresh token for a normalized token set. */
  requestToken(options: O, grant: Grant): Promise<TokenSet>;
  /** Post-exchange checks of the token set (id_token signature, nonce, c_hash...); returns claims. */
  validateTokenSet?(options: O, tokenSet: TokenSet, facts: TransactionFacts, callback: CallbackParams): Promise<Record<string, unknown> | undefined>;
  userProfile?(options: O, tokenSet: TokenSet, claims: Record<string, unknown> | undefined): Promise<Profile>;
  revoke?(options: O, tokenSet: TokenSet): Promise<void>;
  readonly api?: ApiBinding<O>;
}
