/** The discovery document, and the discovery and JWKS cache each definition holds. */
import { createRemoteJWKSet } from 'jose';
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import { httpOptionsOf, httpRequest, isRecord, parseJson, TransportError, type FetchLike } from '../../lib/http.js';
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

/** Reads and checks an issuer's discovery document (OpenID Connect Discovery 1.0 §4). */
export async function fetchCnblogsMetadata(
  issuer: string,
  transport?: { timeoutMs?: number | undefined; fetch?: FetchLike | undefined } | number,
): Promise<CnblogsMetadata> {
  let response;
  try {
    response = await httpRequest({
      method: 'GET',
      url: `${issuer}/.well-known/openid-configuration`,
      headers: { accept: 'application/json' },
      ...httpOptionsOf(transport),
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

export type RemoteKeys = ReturnType<typeof createRemoteJWKSet>;

/**
 * Discovery and JWKS, cached per issuer. The discovery fetch is cached as its in-flight
 * promise (concurrent logins share one request) and evicted when it fails. jose's remote
 * key set caches the keys and downloads them again when an unknown `kid` shows up.
 */
export class CnblogsMetadataCache {
  readonly #discovery = new Map<string, Promise<CnblogsMetadata>>();
  readonly #keys = new Map<string, RemoteKeys>();

  metadata(options: CnblogsOptions): Promise<CnblogsMetadata> {
    const issuer = cnblogsIssuer(options);
    let pending = this.#discovery.get(issuer);
    if (!pending) {
      const created = fetchCnblogsMetadata(issuer, options);
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
