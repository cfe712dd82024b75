/**
 * 博客园 OpenAPI (cnblogs): an IdentityServer OpenID Connect provider.
 *
 * Every quirk is declared here, as data and hooks of the definition: endpoints come
 * from discovery (fetched once per issuer), id_tokens are checked with jose against the
 * provider's JWKS, the documented hybrid `code id_token` answer may arrive in the URL
 * fragment or as a cross-site form POST (both reach the server through the keeper's
 * relay page, hence `formPostCallback: true`), and revocation uses HTTP Basic while the
 * token endpoint takes the client secret in the form body.
 */
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { configurationError, ErrorCodes, OAuthKeeperError, type ErrorCode } from '../errors.js';
import { httpRequest, isRecord, parseJson, TransportError } from '../lib/http.js';
import type { TokenSet } from '../lib/token-set.js';
import { defineProvider, fetchUserInfo, validateCommonOptions } from '../provider/define.js';
import { standardRevoke, standardTokenRequest } from '../provider/standard.js';
import type {
  AuthorizationContext,
  CallbackParams,
  Grant,
  Profile,
  ProviderDefinition,
  ProviderOptions,
  TransactionFacts,
} from '../provider/types.js';
import {
  OAuthKeeperStrategy,
  type StrategyOptions,
  type AnyVerifyFunction,
  type AnyVerifyFunctionWithRequest,
  type NoRequest,
  type OAuth2VerifyFunction,
  type OAuth2VerifyFunctionWithParams,
  type OAuth2VerifyFunctionWithRequest,
  type OAuth2VerifyFunctionWithRequestAndParams,
  type VerifyFunction,
  type VerifyFunctionWithRequest,
  type WithRequest,
} from '../strategy.js';

const PROVIDER = 'cnblogs';

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
   * `code` (default): the code comes back in the query string, bound to the login by PKCE S256.
   * `code id_token`: the documented hybrid flow; a front-channel id_token (with `c_hash`) comes with the code.
   */
  responseType?: CnblogsResponseType;
  /**
   * How the authorization answer is delivered. Default `query` for `code`, `fragment` for
   * `code id_token` (the provider's own default). `query` cannot be used with `code id_token`.
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

/** The parts of the discovery document this provider uses. */
export interface CnblogsMetadata {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  userinfoEndpoint: string;
  revocationEndpoint: string;
  jwksUri: string;
  /** Asymmetric algorithms the provider signs id_tokens with (`RS256`). */
  idTokenSigningAlgs: string[];
}

const RESPONSE_TYPES: readonly CnblogsResponseType[] = ['code', 'code id_token'];
const RESPONSE_MODES: readonly CnblogsResponseMode[] = ['query', 'form_post', 'fragment'];
const ASYMMETRIC_ALG = /^(?:(?:RS|PS|ES)(?:256|384|512)|EdDSA)$/;

/** The issuer in use, without a trailing slash. */
export function cnblogsIssuer(options: CnblogsOptions): string {
  return (options.issuer ?? CNBLOGS_DEFAULT_ISSUER).replace(/\/+$/, '');
}

export function cnblogsResponseType(options: CnblogsOptions): CnblogsResponseType {
  return options.responseType ?? 'code';
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
    throw configurationError(`The cnblogs responseType option must be "code" (default, with PKCE) or "code id_token" (hybrid), not "${String(options.responseType)}".`);
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

function discoveryError(issuer: string, message: string, extra: { cause?: unknown; transient?: boolean; details?: Record<string, unknown> } = {}): OAuthKeeperError {
  return new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, `The cnblogs discovery document at ${issuer}/.well-known/openid-configuration ${message}`, {
    provider: PROVIDER,
    status: 502,
    ...extra,
  });
}

function endpoint(issuer: string, doc: Record<string, unknown>, key: string, fallback?: string): string {
  const value = doc[key] ?? fallback;
  if (typeof value !== 'string' || !/^https?:\/\//.test(value)) {
    throw discoveryError(issuer, `has no usable "${key}". Check the issuer option.`);
  }
  return value;
}

/** Reads and checks an issuer's discovery document (OpenID Connect Discovery 1.0 §4). */
export async function fetchCnblogsMetadata(issuer: string, timeoutMs?: number): Promise<CnblogsMetadata> {
  let response;
  try {
    response = await httpRequest({
      method: 'GET',
      url: `${issuer}/.well-known/openid-configuration`,
      headers: { accept: 'application/json' },
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  } catch (cause) {
    if (!(cause instanceof TransportError)) throw cause;
    throw discoveryError(issuer, `could not be fetched: ${cause.message}. Check the issuer option and the network.`, { cause, transient: true });
  }
  const doc = parseJson(response.text);
  if (response.status !== 200 || !isRecord(doc)) {
    throw discoveryError(issuer, `answered HTTP ${response.status}${isRecord(doc) ? '' : ' without a JSON object'}. Check the issuer option.`, {
      transient: response.status >= 500 || response.status === 429,
      details: { status: response.status, body: response.text },
    });
  }
  // §4.3: the document must name the very issuer it was fetched for; id_tokens are checked against it.
  if (typeof doc['issuer'] !== 'string' || doc['issuer'].replace(/\/+$/, '') !== issuer) {
    throw discoveryError(
      issuer,
      `names the issuer "${String(doc['issuer'])}". Set the issuer option to exactly the provider's issuer (scheme, host, port).`,
    );
  }
  const algs = Array.isArray(doc['id_token_signing_alg_values_supported'])
    ? doc['id_token_signing_alg_values_supported'].filter((a): a is string => typeof a === 'string' && ASYMMETRIC_ALG.test(a))
    : [];
  return Object.freeze({
    issuer: doc['issuer'],
    authorizationEndpoint: endpoint(issuer, doc, 'authorization_endpoint'),
    tokenEndpoint: endpoint(issuer, doc, 'token_endpoint'),
    // IdentityServer always advertises these two; the documented paths are the fallback.
    userinfoEndpoint: endpoint(issuer, doc, 'userinfo_endpoint', `${issuer}/connect/userinfo`),
    revocationEndpoint: endpoint(issuer, doc, 'revocation_endpoint', `${issuer}/connect/revocation`),
    jwksUri: endpoint(issuer, doc, 'jwks_uri'),
    idTokenSigningAlgs: algs.length > 0 ? algs : ['RS256'],
  });
}

type RemoteKeys = ReturnType<typeof createRemoteJWKSet>;

/**
 * Discovery and JWKS, cached per issuer. The discovery fetch is cached as its in-flight
 * promise (concurrent logins share one request) and evicted when it fails. jose's remote
 * key set caches the keys and downloads them again when an unknown `kid` shows up.
 */
class CnblogsMetadataCache {
  readonly #discovery = new Map<string, Promise<CnblogsMetadata>>();
  readonly #keys = new Map<string, RemoteKeys>();

  metadata(options: CnblogsOptions): Promise<CnblogsMetadata> {
    const issuer = cnblogsIssuer(options);
    let pending = this.#discovery.get(issuer);
    if (!pending) {
      const created = fetchCnblogsMetadata(issuer, options.timeoutMs);
      pending = created;
      this.#discovery.set(issuer, created);
      created.catch(() => {
        if (this.#discovery.get(issuer) === created) this.#discovery.delete(issuer);
      });
    }
    return pending;
  }

  keys(metadata: CnblogsMetadata, options: CnblogsOptions): RemoteKeys {
    const cooldownMs = (options.jwksCooldownSeconds ?? 30) * 1000;
    const key = `${metadata.jwksUri}\u0000${cooldownMs}`;
    let keys = this.#keys.get(key);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(metadata.jwksUri), {
        cooldownDuration: cooldownMs,
        timeoutDuration: options.timeoutMs ?? 10_000,
      });
      this.#keys.set(key, keys);
    }
    return keys;
  }

  clear(): void {
    this.#discovery.clear();
    this.#keys.clear();
  }
}

/**
 * OpenID Connect §3.3.2.11: the base64url of the left half of the hash of `value`, the
 * hash being the one of the id_token's signing algorithm (SHA-256 for RS256).
 */
export function oidcHalfHash(value: string, alg = 'RS256'): string {
  const bits = alg === 'EdDSA' ? '512' : (/(256|384|512)$/.exec(alg)?.[1] ?? '256');
  const digest = createHash(`sha${bits}`).update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** Where an id_token came from: the callback (front channel) or the token response. */
export type IdTokenChannel = 'callback' | 'token response' | 'refresh response';

export interface IdTokenExpectations {
  channel: IdTokenChannel;
  /** The login's nonce; `undefined` skips the nonce check (refresh answers carry none). */
  nonce?: string;
  /** The authorization code, to check `c_hash` against. */
  code?: string;
  /** `c_hash` must be present (the hybrid front-channel id_token). */
  requireCodeHash?: boolean;
  /** The access token, to check `at_hash` against when present. */
  accessToken?: string;
}

const FAILURE_TEXT: Record<string, string> = {
  [ErrorCodes.ID_TOKEN_SIGNATURE_INVALID]: 'its signature does not verify with the provider\'s published keys',
  [ErrorCodes.ID_TOKEN_ISSUER_MISMATCH]: 'it was issued by another issuer (iss) than the configured one',
  [ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH]: 'it was issued to another client (aud) than clientID',
  [ErrorCodes.ID_TOKEN_EXPIRED]: 'it has expired (exp); check this server\'s clock, or start the login again',
  [ErrorCodes.ID_TOKEN_NONCE_MISMATCH]: 'its nonce is not the one of the login started in this browser; start the login again',
  [ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH]: 'its c_hash does not match the authorization code it came with',
};

function idTokenError(code: ErrorCode, channel: IdTokenChannel, why?: string, cause?: unknown): OAuthKeeperError {
  const reason = why ?? FAILURE_TEXT[code] ?? 'it is not a valid id_token';
  // A bad callback is the request's fault (400); a bad answer from the token endpoint is the provider's (502).
  return new OAuthKeeperError(code, `The cnblogs id_token from the ${channel} was refused: ${reason}.`, {
    provider: PROVIDER,
    status: channel === 'callback' ? 400 : 502,
    ...(cause === undefined ? {} : { cause }),
  });
}

function mapJoseError(error: unknown, channel: IdTokenChannel): OAuthKeeperError {
  if (error instanceof joseErrors.JWTExpired) return idTokenError(ErrorCodes.ID_TOKEN_EXPIRED, channel, undefined, error);
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return idTokenError(ErrorCodes.ID_TOKEN_ISSUER_MISMATCH, channel, undefined, error);
    if (error.claim === 'aud') return idTokenError(ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH, channel, undefined, error);
    return idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, `its "${error.claim}" claim is ${error.reason === 'missing' ? 'missing' : 'not acceptable'}`, error);
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, undefined, error);
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, 'it is signed with a key (kid) the provider\'s JWKS does not hold', error);
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, 'it is signed with an algorithm the provider does not use', error);
  }
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid || !(error instanceof joseErrors.JOSEError) || /JSON Web Key Set/.test(error.message)) {
    return new OAuthKeeperError(
      ErrorCodes.PROVIDER_ERROR,
      'The cnblogs signing keys (JWKS) could not be loaded to check the id_token; it may work on a later try.',
      { provider: PROVIDER, status: 502, transient: true, cause: error },
    );
  }
  return idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'it is not a well-formed signed JWT', error);
}

/**
 * Checks one id_token with jose: signature against the provider's JWKS, `iss`, `aud`
 * (and `azp` with several audiences), `exp`, then `nonce`, `c_hash` and `at_hash`.
 * Returns its claims. Every failure has its own error code; no message carries the token.
 */
export async function verifyCnblogsIdToken(
  options: CnblogsOptions,
  metadata: CnblogsMetadata,
  keys: RemoteKeys,
  idToken: string,
  expect: IdTokenExpectations,
): Promise<JWTPayload> {
  const channel = expect.channel;
  let payload: JWTPayload;
  let alg: string;
  try {
    const verified = await jwtVerify(idToken, keys, {
      issuer: metadata.issuer,
      audience: options.clientID,
      algorithms: metadata.idTokenSigningAlgs,
      clockTolerance: options.clockToleranceSeconds ?? 60,
      requiredClaims: ['sub', 'exp', 'iat'],
    });
    payload = verified.payload;
    alg = verified.protectedHeader.alg;
  } catch (error) {
    throw mapJoseError(error, channel);
  }
  // jose checks exp and nbf but not iat: an id_token issued in the future is refused with the same tolerance.
  if (typeof payload.iat !== 'number' || payload.iat > Date.now() / 1000 + (options.clockToleranceSeconds ?? 60)) {
    throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'its iat (issued at) lies in the future beyond clockToleranceSeconds; check the clocks of this server and the provider');
  }
  if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload['azp'] !== options.clientID) {
    throw idTokenError(ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH, channel, 'it names several audiences and its azp is not clientID');
  }
  if (expect.nonce !== undefined && payload['nonce'] !== expect.nonce) {
    throw idTokenError(ErrorCodes.ID_TOKEN_NONCE_MISMATCH, channel);
  }
  const cHash = payload['c_hash'];
  if (cHash === undefined) {
    if (expect.requireCodeHash) throw idTokenError(ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH, channel, 'it has no c_hash, which a hybrid answer must carry');
  } else if (expect.code !== undefined && cHash !== oidcHalfHash(expect.code, alg)) {
    throw idTokenError(ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH, channel);
  }
  const atHash = payload['at_hash'];
  if (atHash !== undefined && expect.accessToken !== undefined && atHash !== oidcHalfHash(expect.accessToken, alg)) {
    throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'its at_hash does not match the access token it came with');
  }
  return payload;
}

function subjectOf(idToken: string | undefined): string | undefined {
  if (idToken === undefined) return undefined;
  try {
    const sub = decodeJwt(idToken).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

/** Maps the userinfo claims (`sub`, `name`, `picture`, `website`, ...) to a profile. */
export function cnblogsProfile(info: Record<string, unknown>): Profile {
  const profile: Profile = { provider: PROVIDER, id: typeof info['sub'] === 'string' ? info['sub'] : String(info['sub'] ?? ''), raw: info };
  if (typeof info['name'] === 'string') profile.displayName = info['name'];
  if (typeof info['email'] === 'string') profile.emails = [{ value: info['email'] }];
  if (typeof info['picture'] === 'string' && info['picture'].length > 0) profile.photos = [{ value: info['picture'] }];
  return profile;
}

/**
 * A cnblogs provider definition with its own discovery and JWKS caches.
 * {@link cnblogsProvider} is one shared instance; {@link CnblogsStrategy} makes its own.
 */
export function createCnblogsProvider(): ProviderDefinition<CnblogsOptions> {
  const cache = new CnblogsMetadataCache();
  // The front-channel id_token, nonce included, is checked before the code is spent (checkCallback).
  const frontChannelClaims = new WeakMap<CallbackParams, JWTPayload>();

  const verify = async (options: CnblogsOptions, idToken: string, expect: IdTokenExpectations): Promise<JWTPayload> => {
    const metadata = await cache.metadata(options);
    return verifyCnblogsIdToken(options, metadata, cache.keys(metadata, options), idToken, expect);
  };

  const verifyFrontChannel = async (options: CnblogsOptions, params: CallbackParams): Promise<JWTPayload> => {
    const idToken = params.all['id_token'];
    if (idToken === undefined || idToken.length === 0) {
      throw idTokenError(
        ErrorCodes.ID_TOKEN_INVALID,
        'callback',
        'the callback carries no id_token although responseType is "code id_token"; check that responseMode matches how the callback is delivered',
      );
    }
    return verify(options, idToken, { channel: 'callback', ...(params.code === undefined ? {} : { code: params.code }), requireCodeHash: true });
  };

  const definition = defineProvider<CnblogsOptions>({
    name: PROVIDER,
    // The documented IdentityServer paths; the hooks below use the discovered endpoints.
    authorizationURL: (o) => `${cnblogsIssuer(o)}/connect/authorize`,
    tokenURL: (o) => `${cnblogsIssuer(o)}/connect/token`,
    scope: CNBLOGS_DEFAULT_SCOPE,
    pkce: true,
    nonce: true,
    formPostCallback: true,
    clientAuthentication: 'client_secret_post',
    api: { baseURL: (o) => (o.apiURL ?? CNBLOGS_DEFAULT_API_URL).replace(/\/+$/, '') },
    hooks: {
      validateOptions: validateCnblogsOptions,

      async authorizationURL(options: CnblogsOptions, context: AuthorizationContext): Promise<URL> {
        const metadata = await cache.metadata(options);
        const url = new URL(metadata.authorizationEndpoint);
        const mode = cnblogsResponseMode(options);
        const params: Record<string, string> = {
          client_id: options.clientID,
          response_type: cnblogsResponseType(options),
          scope: context.scope,
          redirect_uri: context.redirectUri,
          state: context.state,
        };
        if (mode !== 'query') params['response_mode'] = mode;
        if (context.nonce !== undefined) params['nonce'] = context.nonce;
        if (context.codeChallenge !== undefined) {
          params['code_challenge'] = context.codeChallenge;
          params['code_challenge_method'] = 'S256';
        }
        for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
        return url;
      },

      async checkCallback(options: CnblogsOptions, params: CallbackParams, facts: TransactionFacts): Promise<void> {
        if (cnblogsResponseType(options) !== 'code id_token' || params.code === undefined) return;
        const claims = await verifyFrontChannel(options, params);
        if (facts.nonce !== undefined && claims['nonce'] !== facts.nonce) throw idTokenError(ErrorCodes.ID_TOKEN_NONCE_MISMATCH, 'callback');
        frontChannelClaims.set(params, claims);
      },

      async requestToken(options: CnblogsOptions, grant: Grant): Promise<TokenSet> {
        const metadata = await cache.metadata(options);
        const tokenSet = await standardTokenRequest(
          { provider: PROVIDER, url: metadata.tokenEndpoint, clientAuthentication: 'client_secret_post', parameterPlacement: 'body' },
          options,
          grant,
        );
        if (grant.grantType === 'refresh_token' && tokenSet.idToken !== undefined) {
          // OpenID Connect §12.2: a refreshed id_token must be valid and about the same user.
          const claims = await verify(options, tokenSet.idToken, { channel: 'refresh response', accessToken: tokenSet.accessToken });
          const before = subjectOf(grant.previous.idToken);
          if (before !== undefined && claims.sub !== before) {
            throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'refresh response', 'it is about another user (sub) than the one who logged in');
          }
        }
        return tokenSet;
      },

      async validateTokenSet(
        options: CnblogsOptions,
        tokenSet: TokenSet,
        facts: TransactionFacts,
        callback: CallbackParams,
      ): Promise<Record<string, unknown>> {
        let front: JWTPayload | undefined;
        if (cnblogsResponseType(options) === 'code id_token') {
          front = frontChannelClaims.get(callback) ?? (await verifyFrontChannel(options, callback));
          frontChannelClaims.delete(callback);
          if (facts.nonce !== undefined && front['nonce'] !== facts.nonce) throw idTokenError(ErrorCodes.ID_TOKEN_NONCE_MISMATCH, 'callback');
        }
        if (tokenSet.idToken === undefined) {
          throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'token response', 'the token response carries no id_token although the scope includes openid');
        }
        const claims = await verify(options, tokenSet.idToken, {
          channel: 'token response',
          ...(facts.nonce === undefined ? {} : { nonce: facts.nonce }),
          ...(callback.code === undefined ? {} : { code: callback.code }),
          accessToken: tokenSet.accessToken,
        });
        if (front && (front.sub !== claims.sub || front.iss !== claims.iss)) {
          throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'token response', 'it is about another user (sub) than the id_token of the callback');
        }
        return { ...claims };
      },

      async userProfile(options: CnblogsOptions, tokenSet: TokenSet, claims: Record<string, unknown> | undefined): Promise<Profile> {
        const metadata = await cache.metadata(options);
        const info = await fetchUserInfo(PROVIDER, metadata.userinfoEndpoint, tokenSet, options.timeoutMs);
        // OpenID Connect §5.3.2: userinfo must be about the user the id_token names.
        if (claims?.['sub'] !== undefined && info['sub'] !== claims['sub']) {
          throw new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, 'The cnblogs userinfo answer is about another user (sub) than the id_token.', {
            provider: PROVIDER,
          });
        }
        return cnblogsProfile(info);
      },

      async revoke(options: CnblogsOptions, tokenSet: TokenSet): Promise<void> {
        const metadata = await cache.metadata(options);
        await standardRevoke({ provider: PROVIDER, url: metadata.revocationEndpoint, clientAuthentication: 'client_secret_basic' }, options, tokenSet);
      },
    },
  });
  return definition;
}

/** The shared cnblogs definition, for `new OAuthKeeperStrategy(cnblogsProvider, options)`. */
export const cnblogsProvider: ProviderDefinition<CnblogsOptions> = createCnblogsProvider();

/**
 * Passport strategy for 博客园 (cnblogs) OpenID Connect. Default name `cnblogs`.
 *
 * ```ts
 * passport.use(new CnblogsStrategy({ clientID, clientSecret, callbackURL: '/auth/cnblogs/callback' }));
 * ```
 */
export class CnblogsStrategy<User = Profile> extends OAuthKeeperStrategy<CnblogsOptions, User> {
  constructor(options: CnblogsOptions & StrategyOptions & NoRequest, verify?: VerifyFunction<User>);
  constructor(options: CnblogsOptions & StrategyOptions & NoRequest, verify: OAuth2VerifyFunction<User>);
  constructor(options: CnblogsOptions & StrategyOptions & NoRequest, verify: OAuth2VerifyFunctionWithParams<User>);
  constructor(options: CnblogsOptions & StrategyOptions & WithRequest, verify: VerifyFunctionWithRequest<User>);
  constructor(options: CnblogsOptions & StrategyOptions & WithRequest, verify: OAuth2VerifyFunctionWithRequest<User>);
  constructor(options: CnblogsOptions & StrategyOptions & WithRequest, verify: OAuth2VerifyFunctionWithRequestAndParams<User>);
  constructor(
    options: CnblogsOptions & StrategyOptions & { passReqToCallback?: boolean },
    verify?: AnyVerifyFunction<User> | AnyVerifyFunctionWithRequest<User>,
  ) {
    // Each strategy gets its own discovery and JWKS caches.
    super(createCnblogsProvider(), options, verify as AnyVerifyFunction<User>);
  }
}
