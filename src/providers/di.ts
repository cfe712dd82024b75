/**
 * DI开放平台 (IPPH, 知识产权出版社): patent, trademark and copyright data behind a
 * Spring Security OAuth2 2.x authorization server. Same platform as the
 * "Cnipr-OAuth2.0" document at open.zldsj.com; not the separate open.cnipr.com protocol.
 *
 * Every quirk of the platform is declared here, as data and hooks of the definition:
 * token parameters in the query string, a token answer that may be wrapped in an array
 * with a string lifetime, and API credentials sent as parameters (`client_id`,
 * `access_token`, `scope`) instead of an Authorization header.
 */
import { configurationError } from '../errors.js';
import { isRecord } from '../lib/http.js';
import type { TokenSet } from '../lib/token-set.js';
import { defineProvider, validateCommonOptions } from '../provider/define.js';
import type { ApiRequest, ApiResponseHead, Profile, ProviderOptions } from '../provider/types.js';
import { bindProvider } from '../passport/bind.js';
import type { OAuthKeeperStrategy } from '../passport/strategy.js';

/** The platform's own address; it serves plain HTTP. */
export const DI_DEFAULT_BASE_URL = 'http://114.251.8.193';

/** Scope `read_cn` (Chinese patent data); others seen: `read_ep`, `read_jp`, `read_tw` (the scope selects the data region). */
export const DI_DEFAULT_SCOPE = 'read_cn';

export interface DiOptions extends ProviderOptions {
  /**
   * The platform's base URL, without a trailing path: `{baseURL}/oauth/authorize`,
   * `{baseURL}/oauth/token` and `{baseURL}/api/...` are derived from it.
   * Default `http://114.251.8.193`.
   */
  baseURL?: string;
}

/** The base URL in use, without a trailing slash. */
export function diBaseURL(options: DiOptions): string {
  return (options.baseURL ?? DI_DEFAULT_BASE_URL).replace(/\/+$/, '');
}

/**
 * The documented token answer is an array holding the token object (`[{...}]`),
 * the real one a bare object: take `[0]` of an array, keep anything else as is.
 * A lifetime sent as a string (`"604800"`) is read by the normalizer.
 */
export function unwrapDiTokenResponse(body: unknown): unknown {
  return Array.isArray(body) ? (body[0] as unknown) : body;
}

/**
 * "Token rejected" is Spring's resource-server answer `{"error":"invalid_token",...}`
 * (HTTP 401), whatever the status. A business failure is an `errorCode` envelope with
 * HTTP 200 and passes through. A 401 whose body could not be inspected counts as rejected.
 */
export function isDiTokenRejected(response: ApiResponseHead): boolean {
  const body = response.body;
  if (isRecord(body)) return body['error'] === 'invalid_token';
  return response.status === 401;
}

function decodeName(pair: string): string {
  const raw = pair.split('=', 1)[0] ?? '';
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/**
 * Adds the parameters to an urlencoded string, keeping the caller's other pairs byte
 * for byte and dropping any pair that would shadow a credential (servlet containers
 * read the first value of a repeated name).
 */
function withParameters(encoded: string, params: Record<string, string>): string {
  const names = new Set(Object.keys(params));
  const kept = encoded
    .split('&')
    .filter((pair) => pair.length > 0 && !names.has(decodeName(pair)));
  return [...kept, new URLSearchParams(params).toString()].join('&');
}

/**
 * A POST whose declared type is a form, or that declares no type and has no buffered body
 * (an empty POST), takes the credentials in its body. A body of another declared type —
 * including one too large to buffer, which the proxy streams — takes them in the query.
 */
function isFormBody(request: ApiRequest): boolean {
  const type = request.headers.get('content-type');
  if (type === null) return request.body === undefined || request.body.length === 0;
  return /^application\/x-www-form-urlencoded\b/i.test(type);
}

function configuredScope(options: DiOptions): string {
  const scope = options.scope ?? [DI_DEFAULT_SCOPE];
  return typeof scope === 'string' ? scope : scope.join(' ');
}

/**
 * Attaches `client_id`, `access_token` and `scope` the platform's way: the query string
 * of a GET (and of any non-POST), the urlencoded body of a POST. A POST whose body is not
 * a form (JSON, multipart) gets them in the query string, which Spring reads as well.
 */
export function attachDiCredentials(request: ApiRequest, token: TokenSet, options: DiOptions): ApiRequest {
  const params: Record<string, string> = {
    client_id: options.clientID,
    access_token: token.accessToken,
    scope: token.scope ?? configuredScope(options),
  };
  const method = request.method.toUpperCase();
  if (method === 'POST' && isFormBody(request)) {
    const existing = request.body === undefined ? '' : request.body.toString('utf8');
    const headers = new Headers(request.headers);
    headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    headers.delete('content-length');
    return { ...request, headers, body: Buffer.from(withParameters(existing, params), 'utf8') };
  }
  const url = new URL(request.url);
  url.search = withParameters(url.search.replace(/^\?/, ''), params);
  return { ...request, url };
}

function validateDiOptions(options: DiOptions): void {
  validateCommonOptions('di', options, true);
  if (options.baseURL !== undefined) {
    let url: URL | undefined;
    try {
      url = typeof options.baseURL === 'string' ? new URL(options.baseURL) : undefined;
    } catch {
      url = undefined;
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.search !== '' || url.hash !== '') {
      throw configurationError(
        `The di strategy's baseURL must be an absolute http(s) URL without query or fragment, such as "${DI_DEFAULT_BASE_URL}" (the default); ` +
          '/oauth/authorize, /oauth/token and /api are added to it.',
      );
    }
  }
  const scope = options.scope;
  if (scope !== undefined) {
    const values = typeof scope === 'string' ? scope.trim().split(/\s+/) : Array.isArray(scope) ? scope : [];
    if (values.length === 0 || values.some((v) => typeof v !== 'string' || v.trim().length === 0)) {
      throw configurationError(
        `The di strategy's scope must be a non-empty string or array of scopes, such as "${DI_DEFAULT_SCOPE}" (the default; read_ep, read_jp and read_tw select other data regions).`,
      );
    }
  }
}

/** A loopback base URL (a local sandbox) crosses no network: plain HTTP is no concern there. */
function isLoopback(baseURL: string): boolean {
  const host = new URL(baseURL).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\./.test(host);
}

/**
 * The di provider definition. Authorization code flow with `state`; no PKCE (the
 * platform's Spring Security OAuth2 2.x server predates it); no revocation endpoint;
 * no user-info endpoint, so the profile carries no user id.
 */
export const diProvider = defineProvider<DiOptions>({
  name: 'di',
  optionNames: ['baseURL'],
  authorizationURL: (o) => `${diBaseURL(o)}/oauth/authorize`,
  tokenURL: (o) => `${diBaseURL(o)}/oauth/token`,
  scope: [DI_DEFAULT_SCOPE],
  scopeSeparator: ' ',
  pkce: false,
  clientAuthentication: 'client_secret_post',
  // The platform documents every token parameter, the secret included, in the query string with an empty body.
  tokenParameters: 'query',
  unwrapTokenResponse: unwrapDiTokenResponse,
  // Spring answers an expired refresh token with 401 invalid_token ("Invalid refresh token (expired)").
  grantInvalidErrors: ['invalid_grant', 'invalid_token'],
  api: {
    baseURL: (o) => `${diBaseURL(o)}/api`,
    attach: attachDiCredentials,
    isTokenRejected: isDiTokenRejected,
  },
  hooks: {
    validateOptions: validateDiOptions,
    startupWarnings: (options) =>
      diBaseURL(options).startsWith('http://') && !isLoopback(diBaseURL(options))
        ? [
            `The di platform is reached over plain HTTP (baseURL ${diBaseURL(options)}), as it serves no HTTPS: tokens and the client secret ` +
              'cross the network unencrypted. Keep that path on a network you trust, or set baseURL to an https:// address if one is offered.',
          ]
        : [],
  },
});

/**
 * Passport strategy for DI开放平台, named `di` unless `name` is given.
 *
 * ```ts
 * passport.use(new DiStrategy({ clientID, clientSecret, callbackURL: '/auth/di/callback' }));
 * ```
 */
export const DiStrategy = bindProvider('DiStrategy', () => diProvider);
export type DiStrategy<User = Profile> = OAuthKeeperStrategy<DiOptions, User>;
