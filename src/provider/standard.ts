/**
 * Building blocks for RFC 6749 providers, used by {@link defineProvider} and available
 * to provider authors who need one standard piece inside a custom hook.
 */
import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import { httpOptionsOf, httpRequest, isRecord, parseJson, tokenTransportError, TransportError } from '../lib/http.js';
import { normalizeTokenResponse, type NormalizeOptions, type TokenSet } from '../lib/token-set.js';
import type { ApiRequest, ApiResponseHead, CallbackParams, CallbackRequest, Grant, ProviderOptions } from './types.js';

export type ClientAuthentication = 'client_secret_basic' | 'client_secret_post' | 'none';
export type ParameterPlacement = 'body' | 'query';

function firstString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && typeof value[0] === 'string') return value[0];
  return undefined;
}

/** Reads code/state/error from the query (GET) or the form body (POST, `response_mode=form_post`). */
export function readStandardCallback(request: CallbackRequest): CallbackParams {
  const source: Record<string, unknown> =
    request.method === 'POST' && request.body && typeof request.body === 'object' ? request.body : request.query;
  const all: Record<string, string> = {};
  for (const [key, value] of Object.entries(source ?? {})) {
    const text = firstString(value);
    if (text !== undefined) all[key] = text;
  }
  const params: CallbackParams = { all };
  if (all['code'] !== undefined) params.code = all['code'];
  if (all['state'] !== undefined) params.state = all['state'];
  if (all['error'] !== undefined) params.error = all['error'];
  if (all['error_description'] !== undefined) params.errorDescription = all['error_description'];
  return params;
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding. */
export function basicAuthorization(clientID: string, clientSecret: string): string {
  const encode = (v: string) => encodeURIComponent(v).replace(/%20/g, '+');
  return 'Basic ' + Buffer.from(`${encode(clientID)}:${encode(clientSecret)}`).toString('base64');
}

export interface StandardTokenRequestConfig {
  provider: string;
  url: string;
  clientAuthentication: ClientAuthentication;
  /** Where the grant parameters go; `query` is for platforms that document them there. */
  parameterPlacement: ParameterPlacement;
  /** Unwraps the parsed JSON answer before it is normalized (e.g. `[0]` of an array). */
  unwrap?: (body: unknown) => unknown;
  normalize?: NormalizeOptions;
  extraHeaders?: Record<string, string>;
  /**
   * OAuth error codes by which this provider says the grant itself (code or refresh
   * token) is invalid, expired or revoked: only these make a refresh delete the stored
   * tokens. Default `['invalid_grant']` (RFC 6749 §5.2).
   */
  grantInvalidErrors?: readonly string[];
}

const DEFAULT_GRANT_INVALID = Object.freeze(['invalid_grant']);

/**
 * RFC 9110 §10.2.3 `Retry-After`: delay-seconds or an HTTP-date, as seconds from now;
 * undefined when absent or unreadable.
 */
export function readRetryAfter(headers: Headers | undefined, now = Date.now()): number | undefined {
  const value = headers?.get('retry-after')?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d{1,9}$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

export function grantParameters(grant: Grant): Record<string, string> {
  const extra = grant.extraParams ?? {};
  if (grant.grantType === 'authorization_code') {
    const params: Record<string, string> = {
      ...extra,
      grant_type: 'authorization_code',
      code: grant.code,
      redirect_uri: grant.redirectUri,
    };
    if (grant.codeVerifier !== undefined) params['code_verifier'] = grant.codeVerifier;
    return params;
  }
  return { ...extra, grant_type: 'refresh_token', refresh_token: grant.refreshToken };
}

/** The RFC 6749 §4.1.3 / §6 token request, with the answer checked and normalized. */
export async function standardTokenRequest(
  config: StandardTokenRequestConfig,
  options: ProviderOptions,
  grant: Grant,
): Promise<TokenSet> {
  const params = new URLSearchParams(grantParameters(grant));
  const headers: Record<string, string> = { accept: 'application/json', ...config.extraHeaders };
  if (config.clientAuthentication === 'client_secret_basic') {
    headers['authorization'] = basicAuthorization(options.clientID, options.clientSecret ?? '');
  } else {
    params.set('client_id', options.clientID);
    if (config.clientAuthentication === 'client_secret_post' && options.clientSecret !== undefined) {
      params.set('client_secret', options.clientSecret);
    }
  }
  const url = new URL(config.url);
  let body: string | undefined;
  if (config.parameterPlacement === 'query') {
    for (const [k, v] of params) url.searchParams.set(k, v);
  } else {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = params.toString();
  }
  let response;
  try {
    response = await httpRequest({ method: 'POST', url, headers, ...(body === undefined ? {} : { body }), ...httpOptionsOf(options) });
  } catch (cause) {
    if (cause instanceof TransportError) throw tokenTransportError(config.provider, cause);
    throw cause;
  }
  return readTokenResponse(config, response.status, response.text, response.headers);
}

/** Turns a token endpoint's answer into a token set or a typed error; never echoes the body. */
export function readTokenResponse(
  config: Pick<StandardTokenRequestConfig, 'provider' | 'unwrap' | 'normalize' | 'grantInvalidErrors'>,
  status: number,
  text: string,
  headers?: Headers,
): TokenSet {
  const provider = config.provider;
  const parsed = parseJson(text);
  const raw = { status, body: text };
  const grantInvalid = (oauthError: string | undefined) =>
    oauthError !== undefined && (config.grantInvalidErrors ?? DEFAULT_GRANT_INVALID).includes(oauthError);
  if (status < 200 || status >= 300) {
    const oauthError = isRecord(parsed) && typeof parsed['error'] === 'string' ? parsed['error'] : undefined;
    const invalid = status < 500 && grantInvalid(oauthError);
    const transient = !invalid && (status >= 500 || status === 429);
    const retryAfter = transient ? readRetryAfter(headers) : undefined;
    throw new OAuthKeeperError(
      ErrorCodes.TOKEN_ENDPOINT_FAILED,
      `The ${provider} token endpoint answered HTTP ${status}` +
        (oauthError ? ` with "${oauthError}"` : '') +
        (invalid
          ? ': the grant is invalid, expired or revoked; the user must authorize again.'
          : transient
            ? '; it may work on a later try.'
            : '. Check the client id, secret and redirect URI registered with the provider.'),
      {
        provider,
        status: 502,
        transient,
        grantInvalid: invalid,
        details: raw,
        ...(oauthError ? { oauthError } : {}),
        ...(retryAfter === undefined ? {} : { retryAfter }),
      },
    );
  }
  const malformed = (why: string) =>
    new OAuthKeeperError(
      ErrorCodes.TOKEN_RESPONSE_MALFORMED,
      `The ${provider} token endpoint answered HTTP ${status}, but ${why}. The provider's answer is kept on error.details for debugging.`,
      { provider, details: raw },
    );
  if (parsed === undefined) throw malformed('the body is not JSON');
  const body = config.unwrap ? config.unwrap(parsed) : parsed;
  if (!isRecord(body)) throw malformed('the body is not a JSON object');
  if (typeof body['error'] === 'string') {
    throw new OAuthKeeperError(
      ErrorCodes.TOKEN_ENDPOINT_FAILED,
      `The ${provider} token endpoint answered "${body['error']}".`,
      { provider, oauthError: body['error'], grantInvalid: grantInvalid(body['error']), details: raw },
    );
  }
  const normalized = normalizeTokenResponse(body, config.normalize);
  if (typeof normalized === 'string') throw malformed(normalized);
  return normalized;
}

/** RFC 7009 token revocation. Failures are reported, not thrown past logout. */
export async function standardRevoke(
  config: { provider: string; url: string; clientAuthentication: ClientAuthentication },
  options: ProviderOptions,
  tokenSet: TokenSet,
): Promise<void> {
  const token = tokenSet.refreshToken ?? tokenSet.accessToken;
  const params = new URLSearchParams({
    token,
    token_type_hint: tokenSet.refreshToken !== undefined ? 'refresh_token' : 'access_token',
  });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (config.clientAuthentication === 'client_secret_basic') {
    headers['authorization'] = basicAuthorization(options.clientID, options.clientSecret ?? '');
  } else {
    params.set('client_id', options.clientID);
    if (config.clientAuthentication === 'client_secret_post' && options.clientSecret !== undefined) {
      params.set('client_secret', options.clientSecret);
    }
  }
  let response;
  try {
    response = await httpRequest({ method: 'POST', url: config.url, headers, body: params.toString(), ...httpOptionsOf(options) });
  } catch (cause) {
    if (cause instanceof TransportError) throw tokenTransportError(config.provider, cause);
    throw cause;
  }
  if (response.status !== 200) {
    throw new OAuthKeeperError(
      ErrorCodes.TOKEN_ENDPOINT_FAILED,
      `The ${config.provider} revocation endpoint answered HTTP ${response.status}.`,
      { provider: config.provider, transient: response.status >= 500, details: { status: response.status } },
    );
  }
}

/** `Authorization: <type> <token>`; the type is sent as `Bearer` whatever case the provider used (RFC 6750). */
export function attachBearer(request: ApiRequest, token: TokenSet): ApiRequest {
  const headers = new Headers(request.headers);
  headers.set('authorization', `Bearer ${token.accessToken}`);
  return { ...request, headers };
}

export function isHttp401(response: ApiResponseHead): boolean {
  return response.status === 401;
}
