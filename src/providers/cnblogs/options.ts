/** The cnblogs options: defaults, validation, and the issuer and scope they resolve to. */
import { configurationError } from '../../errors.js';
import { validateCommonOptions } from '../../provider/define.js';
import type { ProviderOptions } from '../../provider/types.js';

/** The provider's name: the strategy's default name and the `provider` of its errors and profiles. */
export const PROVIDER = 'cnblogs';

/** The issuer every cnblogs id_token names (`iss`). */
export const CNBLOGS_DEFAULT_ISSUER = 'https://oauth.cnblogs.com';
/** Base of the OpenAPI (`/users`, `/blogs/{blogApp}/posts`, ...). */
export const CNBLOGS_DEFAULT_API_URL = 'https://api.cnblogs.com/api';
/** `offline_access` is what makes the provider issue a refresh token. */
export const CNBLOGS_DEFAULT_SCOPE = Object.freeze(['openid', 'profile', 'CnBlogsApi', 'offline_access'] as const);

export type CnblogsResponseType = 'code' | 'code id_token';
export type CnblogsResponseMode = 'query' | 'form_post' | 'fragment';

export interface CnblogsOptions extends ProviderOptions {
  /**
   * The OpenID Connect issuer; discovery is read from `{issuer}/.well-known/openid-configuration`.
   * Must be https (plain http only on a loopback host, for a local sandbox). Default `https://oauth.cnblogs.com`.
   */
  issuer?: string;
  /** Base URL of the OpenAPI the `api` binding targets. Default `https://api.cnblogs.com/api`. */
  apiURL?: string;
  /**
   * `code id_token` (default): the documented hybrid flow; a front-channel id_token (with
   * `c_hash`, checked before the code is spent) comes with the code, and PKCE S256 binds the
   * code to the login. Use it with a client registered as the cnblogs document shows.
   * `code`: the code alone, in the query string by default, bound by PKCE S256; for a client
   * registered for the authorization code flow only.
   */
  responseType?: CnblogsResponseType;
  /**
   * How the authorization answer is delivered. Default `fragment` for `code id_token` (the
   * provider's own default; the keeper's relay page posts it to the callback), `query` for
   * `code`. `form_post` works with both. `query` cannot be used with `code id_token`.
   */
  responseMode?: CnblogsResponseMode;
  /** Allowed clock difference when checking id_token `exp`/`nbf`, in seconds. Default 60. */
  clockToleranceSeconds?: number;
  /**
   * Least time between two JWKS downloads caused by an id_token whose `kid` is not in the
   * cached key set (key rotation), in seconds. Guards against forged tokens forcing
   * downloads. Default 30.
   */
  jwksCooldownSeconds?: number;
}

const RESPONSE_TYPES: readonly CnblogsResponseType[] = ['code', 'code id_token'];
const RESPONSE_MODES: readonly CnblogsResponseMode[] = ['query', 'form_post', 'fragment'];

/** The issuer in use, without a trailing slash. */
export function cnblogsIssuer(options: CnblogsOptions): string {
  return (options.issuer ?? CNBLOGS_DEFAULT_ISSUER).replace(/\/+$/, '');
}

export function cnblogsResponseType(options: CnblogsOptions): CnblogsResponseType {
  return options.responseType ?? 'code id_token';
}

export function cnblogsResponseMode(options: CnblogsOptions): CnblogsResponseMode {
  return options.responseMode ?? (cnblogsResponseType(options) === 'code' ? 'query' : 'fragment');
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(hostname);
}

function configuredScope(options: CnblogsOptions): string[] {
  const scope = options.scope ?? CNBLOGS_DEFAULT_SCOPE;
  return (typeof scope === 'string' ? scope.split(/\s+/) : [...scope]).filter((s) => s.length > 0);
}

/** Checks the options once, at construction; every message names the fix. */
export function validateCnblogsOptions(options: CnblogsOptions): void {
  validateCommonOptions(PROVIDER, options, true);
  if (options.issuer !== undefined) {
    let url: URL | undefined;
    try {
      url = typeof options.issuer === 'string' ? new URL(options.issuer) : undefined;
    } catch {
      url = undefined;
    }
    if (!url || url.search !== '' || url.hash !== '') {
      throw configurationError(`The cnblogs issuer option must be an absolute URL without query or fragment, such as "${CNBLOGS_DEFAULT_ISSUER}".`);
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
      throw configurationError(
        `The cnblogs issuer option must use https ("${CNBLOGS_DEFAULT_ISSUER}"); plain http is accepted only for a loopback host (a local sandbox).`,
      );
    }
  }
  if (options.apiURL !== undefined && (typeof options.apiURL !== 'string' || !/^https?:\/\/[^/]/.test(options.apiURL))) {
    throw configurationError(`The cnblogs apiURL option must be an absolute http(s) URL, such as "${CNBLOGS_DEFAULT_API_URL}".`);
  }
  if (options.responseType !== undefined && !RESPONSE_TYPES.includes(options.responseType)) {
    throw configurationError(`The cnblogs responseType option must be "code id_token" (default: the documented hybrid flow) or "code" (the code flow), not "${String(options.responseType)}".`);
  }
  if (options.responseMode !== undefined && !RESPONSE_MODES.includes(options.responseMode)) {
    throw configurationError(`The cnblogs responseMode option must be "query", "form_post" or "fragment", not "${String(options.responseMode)}".`);
  }
  if (cnblogsResponseType(options) === 'code id_token' && cnblogsResponseMode(options) === 'query') {
    throw configurationError(
      'The cnblogs responseMode "query" cannot carry the id_token of responseType "code id_token" (OpenID Connect forbids it). ' +
        'Use responseMode "fragment" (the default for "code id_token") or "form_post", or use responseType "code".',
    );
  }
  if (!configuredScope(options).includes('openid')) {
    throw configurationError(
      `The cnblogs scope option must include "openid": the login is checked through the id_token. Default: "${CNBLOGS_DEFAULT_SCOPE.join(' ')}".`,
    );
  }
  for (const key of ['clockToleranceSeconds', 'jwksCooldownSeconds'] as const) {
    const value = options[key];
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
      throw configurationError(`The cnblogs ${key} option must be a number of seconds >= 0.`);
    }
  }
}
