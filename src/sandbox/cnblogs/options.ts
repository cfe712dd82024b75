/** The cnblogs sandbox's options, users and public types, and the state its endpoints share. */
import type { Fault, SandboxClient, SandboxEngine, SandboxSettings, SandboxUser } from '../engine.js';
import type { RunningSandbox, SandboxServerOptions } from '../server.js';
// Node's own key types, so that these declarations need nothing from jose (an ES-module-only package).
import type { JsonWebKey, KeyObject, webcrypto } from 'node:crypto';

/** One of the sandbox's id_token signing keys, with the JWK it publishes. */
export interface SigningKey {
  kid: string;
  privateKey: webcrypto.CryptoKey | KeyObject;
  publicJwk: JsonWebKey;
}

/** How the sandbox spoils the id_tokens it issues, to test that a client refuses them. */
export type IdTokenTamper = 'signature' | 'nonce' | 'aud' | 'iss' | 'expired' | 'c_hash' | 'iat_future';

/** A cnblogs user: a GUID `id` (the `sub`) plus the blog fields the API answers with. */
export interface CnblogsSandboxUser extends SandboxUser {
  blogApp: string;
  blogId: number;
  spaceUserId: number;
  avatar: string;
}

/** A response type the sandbox's authorize endpoint knows: IdentityServer's `Code` and `Hybrid` grant types. */
export type CnblogsSandboxResponseType = 'code' | 'code id_token';

/**
 * A registered client. As an IdentityServer client's `AllowedGrantTypes`, `allowedResponseTypes`
 * says which flows it may use (default: both); asking for another is refused with
 * `unauthorized_client` ("Invalid grant type for client").
 */
export interface CnblogsSandboxClient extends SandboxClient {
  allowedResponseTypes?: readonly CnblogsSandboxResponseType[];
}

export interface CnblogsSandboxOptions extends Partial<SandboxSettings>, SandboxServerOptions {
  users?: CnblogsSandboxUser[];
  /** Default: `sandbox-client` / `sandbox-secret`, allowed every flow. */
  clients?: CnblogsSandboxClient[];
  /**
   * How a request for a flow the client is not registered for is answered. `'error_page'`
   * (default), as IdentityServer does: the browser stays on the provider's own error page
   * ("Sorry, there was an error : unauthorized_client", "Invalid grant type for client") and
   * the app never hears of it. `'redirect'`: the error goes back to the redirect_uri in the
   * response mode asked for, as an error page that follows IdentityServer's
   * `ErrorMessage.RedirectUri` back to the client would.
   */
  unauthorizedClient?: 'error_page' | 'redirect';
  /** Spoils every id_token issued (front channel and token endpoint). Default null. */
  idTokenTamper?: IdTokenTamper | null;
  /** id_token lifetime in seconds. Default 300, as the provider's. */
  idTokenTtlSeconds?: number;
  /** See {@link CnblogsSandbox.mutateTokenAnswer}. Default null. */
  mutateTokenAnswer?: ((body: Record<string, unknown>) => unknown) | null;
  /** Display name on the login page. Default "博客园 (cnblogs) sandbox". */
  title?: string;
}

export type CnblogsSandboxFaultTarget = 'discovery' | 'jwks';

export interface CnblogsSandboxCounters {
  discovery: number;
  jwks: number;
}

/** One token response or front-channel answer the sandbox gave, for leak checks in tests. */
export interface CnblogsIssued {
  channel: 'callback' | 'token';
  code?: string;
  idToken?: string;
  accessToken?: string;
  refreshToken?: string;
}

/** A running cnblogs sandbox: an IdentityServer-like OpenID Connect provider plus the OpenAPI. */
export interface CnblogsSandbox extends RunningSandbox {
  /** Its own base URL, as `iss` of its id_tokens and in its discovery document. */
  readonly issuer: string;
  /** The `kid` id_tokens are signed with now. */
  readonly signingKeyId: string;
  /** Spoils every id_token issued from now on; `null` issues good ones. */
  idTokenTamper: IdTokenTamper | null;
  idTokenTtlSeconds: number;
  /** Test aid: rewrites each successful token answer; returns what to send instead (a string as is, anything else as JSON). */
  mutateTokenAnswer: ((body: Record<string, unknown>) => unknown) | null;
  /** Downloads of the discovery document and of the JWKS (the engine counts the rest). */
  readonly oidcCounters: CnblogsSandboxCounters;
  /** Everything issued so far, newest last. */
  readonly issued: readonly CnblogsIssued[];
  /**
   * Signs with a new key from now on; the JWKS publishes it next to the previous one
   * (a rollover), so a client holding the old key set must download it again. Returns the new kid.
   */
  rotateSigningKey(): Promise<string>;
  /** Queues a fault for the discovery document or the JWKS (see `engine.injectFault` for the rest). */
  injectOidcFault(target: CnblogsSandboxFaultTarget, fault: Fault): void;
}

export const SCOPES = ['openid', 'profile', 'CnBlogsApi', 'offline_access'];
export const RESPONSE_TYPES: readonly CnblogsSandboxResponseType[] = ['code', 'code id_token'];
export const RESPONSE_MODES = ['query', 'fragment', 'form_post'];

export const DEFAULT_USERS: CnblogsSandboxUser[] = [
  {
    username: 'alice',
    password: 'wonderland',
    id: '5f0c7c1e-8d3a-4b1f-9c2e-3a6d1b7e9f42',
    name: 'Alice 博客',
    blogApp: 'alice-sandbox',
    blogId: 612345,
    spaceUserId: 1654321,
    avatar: 'https://pic.cnblogs.com/avatar/1654321/20240101000000.png',
  },
];

/** What the endpoints of one running sandbox share; `knobs` are the settings its {@link CnblogsSandbox} changes. */
export interface CnblogsSandboxState {
  readonly engine: SandboxEngine;
  readonly title: string;
  readonly unauthorizedClient: 'error_page' | 'redirect';
  readonly knobs: Pick<CnblogsSandbox, 'idTokenTamper' | 'idTokenTtlSeconds' | 'mutateTokenAnswer'>;
  readonly oidcCounters: CnblogsSandboxCounters;
  readonly issued: CnblogsIssued[];
  readonly oidcFaults: Map<CnblogsSandboxFaultTarget, Fault[]>;
  /** The signing keys the JWKS publishes; id_tokens are signed with the last. */
  keys: SigningKey[];
  /** The sandbox's own base URL, set once it listens. */
  issuer: string;
}

export function takeOidcFault(state: CnblogsSandboxState, target: CnblogsSandboxFaultTarget): Fault | undefined {
  const list = state.oidcFaults.get(target);
  const fault = list?.[0];
  if (!list || !fault) return undefined;
  fault.times = (fault.times ?? 1) - 1;
  if (fault.times <= 0) list.shift();
  return fault;
}

export function splitScope(scope: string | undefined): string[] {
  return (scope ?? '').split(/\s+/).filter((s) => s.length > 0);
}

/** A response type as a set: `id_token code` is `code id_token`. */
export function normalizeResponseType(responseType: string | undefined): string {
  return splitScope(responseType).sort().join(' ');
}

/** The flows `client` may use; throws on a value the sandbox does not know (a mistyped test). */
export function allowedResponseTypes(client: CnblogsSandboxClient): readonly string[] {
  const allowed = (client.allowedResponseTypes ?? RESPONSE_TYPES).map(normalizeResponseType);
  const unknown = allowed.filter((type) => !(RESPONSE_TYPES as readonly string[]).includes(type));
  if (unknown.length > 0) throw new Error(`cnblogs sandbox client ${client.clientId}: unknown allowedResponseTypes ${unknown.join(', ')}`);
  return allowed;
}
