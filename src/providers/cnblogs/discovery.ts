/**
 * The discovery document and the signing keys, read once per issuer. openid-client reads and
 * checks the document (OpenID Connect Discovery 1.0, issuer included); every byte travels
 * through the keeper's HTTP layer ({@link httpRequest}: the strategy's `fetch`, its timeout,
 * a size cap).
 */
import type * as OpenidClient from 'openid-client';
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import { findCause, httpOptionsOf, httpRequest, isRecord, parseJson, TransportError, type FetchLike, type HttpOptions } from '../../lib/http.js';
import { openidClient } from './openid-client.js';
import { cnblogsIssuer, PROVIDER, type CnblogsOptions } from './options.js';

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

const ASYMMETRIC_ALG = /^(?:(?:RS|PS|ES)(?:256|384|512)|EdDSA)$/;

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

/** @internal A `fetch` for openid-client that goes through the keeper's HTTP layer and reports what it saw. */
export type KeeperFetch = OpenidClient.CustomFetch;

/** The request body openid-client hands its fetch, as the text our HTTP layer sends. */
function bodyText(body: unknown): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  throw new TypeError('oauth-keeper: unexpected request body type for a cnblogs call');
}

/** @internal What a caller of {@link keeperFetch} may watch, and refuse, of each request. */
export interface FetchObserver {
  request?(request: { url: string; method: string }): void;
  /** The error to throw instead of a transport failure. */
  failure?(request: { url: string; method: string }, error: TransportError): Error;
  /** Reads (and may refuse, by throwing) an answer before openid-client does; gets the raw text. */
  response?(request: { url: string; method: string }, response: { status: number; text: string; headers: Headers }): void;
}

/** @internal openid-client's `customFetch`, over {@link httpRequest}. */
export function keeperFetch(http: HttpOptions, observer: FetchObserver = {}): KeeperFetch {
  return async (url, init) => {
    const request = { url, method: init.method === 'POST' ? 'POST' : 'GET' } as const;
    const body = bodyText(init.body);
    observer.request?.(request);
    let response;
    try {
      response = await httpRequest({ method: request.method, url, headers: { ...init.headers }, ...(body === undefined ? {} : { body }), ...http });
    } catch (error) {
      if (error instanceof TransportError && observer.failure) throw observer.failure(request, error);
      throw error;
    }
    observer.response?.(request, response);
    const empty = response.status === 204 || response.status === 304 || response.text.length === 0;
    return new Response(empty ? null : response.text, { status: response.status, headers: response.headers });
  };
}

/** @internal What one discovery yields: the checked metadata, and the server metadata openid-client works from. */
export interface Discovered {
  metadata: CnblogsMetadata;
  server: OpenidClient.ServerMetadata;
  /** Plain http (a loopback sandbox): openid-client must be told to allow it. */
  insecure: boolean;
}

/** @internal Reads and checks an issuer's discovery document with openid-client. */
export async function discover(issuer: string, clientID: string, transport: HttpOptions): Promise<Discovered> {
  const insecure = issuer.startsWith('http:');
  const oidc = await openidClient();
  let server: OpenidClient.ServerMetadata;
  try {
    const config = await oidc.discovery(new URL(issuer), clientID, undefined, undefined, {
      [oidc.customFetch]: keeperFetch(transport),
      ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    server = config.serverMetadata();
  } catch (error) {
    const transportError = findCause(error, TransportError);
    if (transportError) {
      throw discoveryError(issuer, `could not be fetched: ${transportError.message}. Check the issuer option and the network.`, { cause: error, transient: true });
    }
    const code = error instanceof oidc.ClientError ? error.code : undefined;
    if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
      const named = isRecord((error as Error).cause) ? ((error as Error).cause as { body?: { issuer?: unknown } }).body?.issuer : undefined;
      throw discoveryError(issuer, `names the issuer "${String(named)}". Set the issuer option to exactly the provider's issuer (scheme, host, port).`, { cause: error });
    }
    const response = (error as { cause?: unknown }).cause;
    if (response instanceof Response) {
      throw discoveryError(issuer, `answered HTTP ${response.status}. Check the issuer option.`, {
        cause: error,
        transient: response.status >= 500 || response.status === 429,
        details: { status: response.status },
      });
    }
    throw discoveryError(issuer, `is not a usable OpenID Connect discovery document (${(error as Error).message}). Check the issuer option.`, { cause: error });
  }
  const doc = server as unknown as Record<string, unknown>;
  const algs = Array.isArray(doc['id_token_signing_alg_values_supported'])
    ? doc['id_token_signing_alg_values_supported'].filter((a): a is string => typeof a === 'string' && ASYMMETRIC_ALG.test(a))
    : [];
  const metadata: CnblogsMetadata = Object.freeze({
    issuer: server.issuer,
    authorizationEndpoint: endpoint(issuer, doc, 'authorization_endpoint'),
    tokenEndpoint: endpoint(issuer, doc, 'token_endpoint'),
    // IdentityServer always advertises these two; the documented paths are the fallback.
    userinfoEndpoint: endpoint(issuer, doc, 'userinfo_endpoint', `${issuer}/connect/userinfo`),
    revocationEndpoint: endpoint(issuer, doc, 'revocation_endpoint', `${issuer}/connect/revocation`),
    jwksUri: endpoint(issuer, doc, 'jwks_uri'),
    idTokenSigningAlgs: algs.length > 0 ? algs : ['RS256'],
  });
  // Only asymmetric signatures are accepted, whatever else the document lists.
  return { metadata, server: { ...server, id_token_signing_alg_values_supported: metadata.idTokenSigningAlgs }, insecure };
}

/** Reads and checks an issuer's discovery document (OpenID Connect Discovery 1.0 §4). */
export async function fetchCnblogsMetadata(
  issuer: string,
  transport?: { timeoutMs?: number | undefined; fetch?: FetchLike | undefined } | number,
): Promise<CnblogsMetadata> {
  return (await discover(issuer.replace(/\/+$/, ''), 'oauth-keeper', httpOptionsOf(transport))).metadata;
}

/** openid-client's exported JWKS cache shape: the key set and when it was downloaded (epoch seconds). */
type JwksCache = { jwks: { keys: Record<string, unknown>[] }; uat: number };

/** openid-client downloads the key set again once it is 300 s old, or when a `kid` is unknown and it is 60 s old. */
const JWKS_MAX_AGE_S = 300;
const JWKS_UNKNOWN_KID_AGE_S = 60;

/**
 * @internal
 * The issuer's key set, shared by every openid-client operation of this definition. The
 * first download is ours (one request for concurrent logins); openid-client downloads again
 * for an unknown `kid` (key rotation) only when `jwksCooldownSeconds` allows it, which we
 * tell it through the documented `uat` (updated-at) of the cache we hand it.
 */
export class JwksMemo {
  #cache: JwksCache | undefined;
  #pending: Promise<void> | undefined;

  constructor(private readonly uri: string) {}

  /** Downloads the key set when there is none younger than openid-client's maximum age. */
  async ensure(transport: HttpOptions): Promise<void> {
    if (this.#cache && this.#age() < JWKS_MAX_AGE_S) return;
    this.#pending ??= this.#download(transport).finally(() => {
      this.#pending = undefined;
    });
    await this.#pending;
  }

  /** The cache to hand one operation, its `uat` set so that an unknown kid downloads again only after the cooldown. */
  forOperation(cooldownSeconds: number): JwksCache | undefined {
    const cache = this.#cache;
    if (!cache || this.#age() >= JWKS_MAX_AGE_S) return undefined;
    const now = Math.floor(Date.now() / 1000);
    const uat = this.#age() >= cooldownSeconds ? Math.min(cache.uat, now - JWKS_UNKNOWN_KID_AGE_S) : now;
    return { jwks: cache.jwks, uat };
  }

  /** Takes over a key set openid-client downloaded during an operation. */
  adopt(cache: { jwks?: unknown; uat?: unknown } | undefined, handedUat: number | undefined): void {
    if (!cache || typeof cache.uat !== 'number' || cache.uat === handedUat || !isRecord(cache.jwks)) return;
    const keys = cache.jwks['keys'];
    if (Array.isArray(keys)) this.#cache = { jwks: { keys: keys.filter(isRecord) }, uat: cache.uat };
  }

  #age(): number {
    return this.#cache ? Math.floor(Date.now() / 1000) - this.#cache.uat : Number.POSITIVE_INFINITY;
  }

  async #download(transport: HttpOptions): Promise<void> {
    let response;
    try {
      response = await httpRequest({ method: 'GET', url: this.uri, headers: { accept: 'application/json, application/jwk-set+json' }, ...transport });
    } catch (error) {
      throw jwksUnavailable(error);
    }
    const doc = parseJson(response.text);
    const keys = isRecord(doc) ? doc['keys'] : undefined;
    if (response.status !== 200 || !Array.isArray(keys)) throw jwksUnavailable(undefined, response.status);
    this.#cache = { jwks: { keys: keys.filter(isRecord) }, uat: Math.floor(Date.now() / 1000) };
  }
}

/** @internal */
export function jwksUnavailable(cause: unknown, status?: number): OAuthKeeperError {
  return new OAuthKeeperError(
    ErrorCodes.PROVIDER_ERROR,
    `The cnblogs signing keys (JWKS) could not be loaded to check the id_token${status === undefined ? '' : ` (HTTP ${status})`}; it may work on a later try.`,
    { provider: PROVIDER, status: 502, transient: true, ...(cause === undefined ? {} : { cause }) },
  );
}

/**
 * @internal
 * Discovery and keys, cached per issuer. The discovery is cached as its in-flight promise
 * (concurrent logins share one request) and evicted when it fails.
 */
export class CnblogsMetadataCache {
  readonly #discovery = new Map<string, Promise<Discovered & { jwks: JwksMemo }>>();

  discovered(options: CnblogsOptions): Promise<Discovered & { jwks: JwksMemo }> {
    const issuer = cnblogsIssuer(options);
    let pending = this.#discovery.get(issuer);
    if (!pending) {
      const created = discover(issuer, options.clientID, httpOptionsOf(options)).then((d) => ({ ...d, jwks: new JwksMemo(d.metadata.jwksUri) }));
      pending = created;
      this.#discovery.set(issuer, created);
      created.catch(() => {
        if (this.#discovery.get(issuer) === created) this.#discovery.delete(issuer);
      });
    }
    return pending;
  }

  async metadata(options: CnblogsOptions): Promise<CnblogsMetadata> {
    return (await this.discovered(options)).metadata;
  }

  clear(): void {
    this.#discovery.clear();
  }
}
