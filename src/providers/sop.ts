/**
 * `sop` — SOP open-platform app authorization (应用授权): an Alipay-style, self-hosted
 * gateway. Every deployment has its own URLs, so there are no URL defaults.
 *
 * What makes it unlike RFC 6749, all handled here and nowhere else:
 * - the authorization request carries no `state` and no scope: the login transaction
 *   is bound through redirect_uri's own query, and the returned `app_id` is checked;
 * - there is no token endpoint and no client secret: code exchange and refresh are an
 *   RSA-signed gateway call (`open.auth.token.app`), and the answer is signed too;
 * - failures of the auth service come back inside a `code: "10000"` envelope;
 * - negative lifetimes mean "never expires";
 * - business calls are signed gateway calls carrying `app_auth_token`, and the answer
 *   must be verified over the raw text of its response node before it is used.
 */
import { createPrivateKey, createPublicKey, KeyObject, sign as rsaSign, verify as rsaVerify } from 'node:crypto';
import { configurationError, ErrorCodes, OAuthKeeperError, type ErrorCode } from '../errors.js';
import { httpRequest, isRecord, parseJson, tokenTransportError, TransportError, type HttpResponse } from '../lib/http.js';
import { normalizeTokenResponse, type TokenSet } from '../lib/token-set.js';
import { defineProvider, validateCommonOptions } from '../provider/define.js';
import type {
  ApiRawResponse,
  ApiRequest,
  ApiResponseHead,
  CallbackParams,
  Grant,
  Profile,
  ProviderOptions,
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

/** `RSA2` = SHA256withRSA (the default), `RSA` = SHA1withRSA. */
export type SopSignType = 'RSA2' | 'RSA';

/** An RSA key: a PEM string, the bare Base64 body SOP consoles hand out, or a KeyObject. */
export type SopKey = string | KeyObject;

export interface SopOptions extends ProviderOptions {
  /**
   * The app id (`app_id`) the platform issued. The option is named `clientID` like every
   * other provider's; SOP has no client secret, so `clientSecret` is not used.
   */
  clientID: string;
  /** Base URL of the deployment's auth service; `/oauth2/appToAppAuth` is appended. Required. */
  authURL: string;
  /** The deployment's gateway URL, posted to as is (e.g. `https://open.example.com/`). Required. */
  gatewayURL: string;
  /** The app's RSA private key (PKCS#8 PEM, bare PKCS#8 Base64, or a KeyObject). Required. */
  privateKey: SopKey;
  /** The platform's RSA public key (SPKI PEM, bare Base64, or a KeyObject). Required. */
  platformPublicKey: SopKey;
  /** Default `RSA2` (SHA256withRSA); `RSA` is SHA1withRSA. Must match the app's platform setting. */
  signType?: SopSignType;
}

/** Posts signed parameters to the gateway as a form; transport failures throw TransportError. */
function postToGateway(options: SopOptions, params: Record<string, string>): Promise<HttpResponse> {
  return httpRequest({
    method: 'POST',
    url: options.gatewayURL,
    headers: { 'content-type': FORM_TYPE, accept: 'application/json' },
    body: new URLSearchParams(params).toString(),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
}

/** The parameter of redirect_uri's own query that carries the login transaction's state. */
export const SOP_STATE_PARAMETER = 'oauth_keeper_state';
/** The gateway method that exchanges a code or a refresh token. */
export const SOP_TOKEN_METHOD = 'open.auth.token.app';
/** Gateway `code` of a successful answer (auth-service failures use it too, with `error`). */
const SUCCESS_CODE = '10000';
/** `code` 20001 with one of these `sub_code`s is this provider's "401". */
const TOKEN_REJECTED_SUB_CODES: ReadonlySet<string> = new Set(['aop.invalid-app-auth-token', 'aop.app-auth-token-time-out']);
/** Node fields that describe the gateway answer itself rather than the token set. */
const ENVELOPE_FIELDS: ReadonlySet<string> = new Set([
  'request_id',
  'code',
  'msg',
  'sub_code',
  'sub_msg',
  'app_auth_token',
  'app_refresh_token',
  'expires_in',
  're_expires_in',
]);

// ---------------------------------------------------------------------------
// Signing

/**
 * The platform's server clock runs on China time; the gateway refuses a request whose
 * `timestamp` (`yyyy-MM-dd HH:mm:ss`, no zone) is more than 300 s off. Computed from
 * UTC so the machine's own time zone never matters.
 */
export function chinaTimestamp(date: Date = new Date()): string {
  const china = new Date(date.getTime() + 8 * 3600_000);
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${String(china.getUTCFullYear()).padStart(4, '0')}-${two(china.getUTCMonth() + 1)}-${two(china.getUTCDate())} ` +
    `${two(china.getUTCHours())}:${two(china.getUTCMinutes())}:${two(china.getUTCSeconds())}`
  );
}

/** Code-unit order, which is ASCII order for the gateway's ASCII parameter names. */
function byAscii(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The string a request signature covers: every parameter except `sign`, empty values
 * dropped, sorted by name, `name=value` joined with `&`, values raw (not URL-encoded).
 */
export function sopSignContent(params: Readonly<Record<string, string | undefined | null>>): string {
  return Object.keys(params)
    .filter((key) => key !== 'sign')
    .filter((key) => {
      const value = params[key];
      return typeof value === 'string' && value.length > 0;
    })
    .sort(byAscii)
    .map((key) => `${key}=${params[key] as string}`)
    .join('&');
}

function digestOf(signType: SopSignType): 'sha256' | 'sha1' {
  return signType === 'RSA' ? 'sha1' : 'sha256';
}

/** Signs UTF-8 text the gateway's way: RSA PKCS#1 v1.5, standard Base64. */
export function sopSign(content: string, privateKey: SopKey, signType: SopSignType = 'RSA2'): string {
  return rsaSign(digestOf(signType), Buffer.from(content, 'utf8'), readPrivateKey(privateKey)).toString('base64');
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Verifies a standard-Base64 signature over UTF-8 text; false (never a throw) for anything malformed. */
export function sopVerify(content: string, signature: string, publicKey: SopKey, signType: SopSignType = 'RSA2'): boolean {
  if (typeof signature !== 'string' || signature.length % 4 !== 0 || !BASE64.test(signature)) return false;
  try {
    return rsaVerify(digestOf(signType), Buffer.from(content, 'utf8'), readPublicKey(publicKey), Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * Returns the parameters to send: empty values dropped (the gateway would sign them,
 * SDKs would not: never send any), plus `sign`.
 */
export function signSopParameters(
  params: Readonly<Record<string, string | undefined | null>>,
  privateKey: SopKey,
  signType: SopSignType = 'RSA2',
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (key !== 'sign' && typeof value === 'string' && value.length > 0) out[key] = value;
  }
  out['sign'] = sopSign(sopSignContent(out), privateKey, signType);
  return out;
}

// ---------------------------------------------------------------------------
// Keys

function readPrivateKey(key: SopKey): KeyObject {
  if (key instanceof KeyObject) return key;
  const text = key.trim();
  if (text.startsWith('-----BEGIN')) return createPrivateKey(text);
  return createPrivateKey({ key: Buffer.from(text.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'pkcs8' });
}

function readPublicKey(key: SopKey): KeyObject {
  if (key instanceof KeyObject) return key;
  const text = key.trim();
  if (text.startsWith('-----BEGIN')) return createPublicKey(text);
  return createPublicKey({ key: Buffer.from(text.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' });
}

interface SopKeys {
  privateKey: KeyObject;
  platformPublicKey: KeyObject;
}

/** Parsed once per (frozen) options object: the strategy hands hooks the same object every time. */
const keyCache = new WeakMap<object, SopKeys>();

function keysOf(options: SopOptions): SopKeys {
  let keys = keyCache.get(options);
  if (!keys) {
    keys = { privateKey: readPrivateKey(options.privateKey), platformPublicKey: readPublicKey(options.platformPublicKey) };
    keyCache.set(options, keys);
  }
  return keys;
}

function signTypeOf(options: SopOptions): SopSignType {
  return options.signType ?? 'RSA2';
}

// ---------------------------------------------------------------------------
// Raw response node extraction

function skipWhitespace(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
    i += 1;
  }
  return i;
}

/** `i` is at an opening quote; returns the index after the closing quote, or -1. */
function skipString(text: string, i: number): number {
  if (text[i] !== '"') return -1;
  let j = i + 1;
  while (j < text.length) {
    const c = text.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (c < 0x20) return -1;
    if (c === 0x5c) {
      const next = text[j + 1];
      if (next === 'u') {
        if (!/^[0-9a-fA-F]{4}$/.test(text.slice(j + 2, j + 6))) return -1;
        j += 6;
      } else if (next !== undefined && '"\\/bfnrt'.includes(next)) {
        j += 2;
      } else {
        return -1;
      }
      continue;
    }
    j += 1;
  }
  return -1;
}

/** `i` is at the first character of a JSON value; returns the index after it, or -1. */
function skipValue(text: string, i: number): number {
  const first = text[i];
  if (first === undefined) return -1;
  if (first === '"') return skipString(text, i);
  if (first === '{' || first === '[') {
    const open: string[] = [];
    let j = i;
    while (j < text.length) {
      const c = text[j]!;
      if (c === '"') {
        j = skipString(text, j);
        if (j < 0) return -1;
        continue;
      }
      if (c === '{' || c === '[') open.push(c);
      else if (c === '}' || c === ']') {
        if (open.pop() !== (c === '}' ? '{' : '[')) return -1;
        if (open.length === 0) return j + 1;
      }
      j += 1;
    }
    return -1;
  }
  const literal = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 64));
  return literal ? i + literal[0].length : -1;
}

/**
 * The exact raw text of the top-level member `nodeName` of a JSON object: the characters
 * after `"<nodeName>":` (and any whitespace) up to the end of its value, which in the
 * gateway's compact answers is up to `,"sign"`. It is a string- and nesting-aware scan
 * of the top-level object, so quotes, braces or `,"sign"` inside strings cannot fool it.
 * Returns `undefined` when the text is not one JSON object, the member is absent, or it
 * appears more than once (ambiguous: never guess which copy was signed).
 */
export function extractResponseNode(body: string, nodeName: string): string | undefined {
  let i = skipWhitespace(body, 0);
  if (body[i] !== '{') return undefined;
  i = skipWhitespace(body, i + 1);
  let found: string | undefined;
  let seen = false;
  if (body[i] === '}') return undefined;
  for (;;) {
    const keyEnd = skipString(body, i);
    if (keyEnd < 0) return undefined;
    const key = JSON.parse(body.slice(i, keyEnd)) as string;
    i = skipWhitespace(body, keyEnd);
    if (body[i] !== ':') return undefined;
    i = skipWhitespace(body, i + 1);
    const valueEnd = skipValue(body, i);
    if (valueEnd < 0) return undefined;
    if (key === nodeName) {
      if (seen) return undefined;
      seen = true;
      found = body.slice(i, valueEnd);
    }
    i = skipWhitespace(body, valueEnd);
    if (body[i] === ',') {
      i = skipWhitespace(body, i + 1);
      continue;
    }
    if (body[i] !== '}') return undefined;
    if (skipWhitespace(body, i + 1) !== body.length) return undefined;
    return found;
  }
}

/** `open.auth.token.app` → `open_auth_token_app_response`. */
export function responseNodeName(method: string): string {
  return `${method.replace(/\./g, '_')}_response`;
}

export interface VerifiedSopResponse {
  /** `<method>_response`, or `error_response`. */
  nodeName: string;
  /** The node's raw text, exactly as signed and verified. */
  raw: string;
  /** The node, parsed from the verified raw text. */
  node: Record<string, unknown>;
}

export interface VerifySopResponseOptions {
  signType?: SopSignType;
  /** Provider (strategy) name for error messages. Default `sop`. */
  provider?: string;
  /** Error code for an answer that is not a gateway answer at all. Default TOKEN_RESPONSE_MALFORMED. */
  malformedCode?: ErrorCode;
}

/**
 * Verifies a gateway answer's `sign` over the raw text of its response node with the
 * platform's public key, then parses that same verified text. Never re-serializes.
 * A missing or wrong signature throws RESPONSE_SIGNATURE_INVALID.
 */
export function verifySopResponse(
  body: string,
  method: string,
  platformPublicKey: SopKey,
  options: VerifySopResponseOptions = {},
): VerifiedSopResponse {
  const provider = options.provider ?? 'sop';
  const malformed = (why: string) =>
    new OAuthKeeperError(options.malformedCode ?? ErrorCodes.TOKEN_RESPONSE_MALFORMED, `The ${provider} gateway's answer to ${method} ${why}.`, {
      provider,
      details: { method, length: body.length },
    });
  const parsed = parseJson(body);
  if (!isRecord(parsed)) throw malformed('is not a JSON object');
  let nodeName = responseNodeName(method);
  let raw = extractResponseNode(body, nodeName);
  if (raw === undefined && parsed[nodeName] === undefined) {
    nodeName = 'error_response';
    raw = extractResponseNode(body, nodeName);
  }
  if (raw === undefined) throw malformed(`has no single ${responseNodeName(method)} (or error_response) node`);
  const signature = parsed['sign'];
  const refused = (why: string) =>
    new OAuthKeeperError(
      ErrorCodes.RESPONSE_SIGNATURE_INVALID,
      `The ${provider} gateway's answer to ${method} ${why}, so it was refused. ` +
        'If this persists, check that platformPublicKey is the platform public key of this deployment and that signType matches the app.',
      { provider, details: { method, nodeName } },
    );
  if (typeof signature !== 'string' || signature.length === 0) throw refused('carries no signature');
  if (!sopVerify(raw, signature, platformPublicKey, options.signType ?? 'RSA2')) throw refused('carries a signature that does not verify');
  const node = parseJson(raw);
  if (!isRecord(node)) throw malformed(`has a ${nodeName} that is not a JSON object`);
  return { nodeName, raw, node };
}

// ---------------------------------------------------------------------------
// Gateway calls

/** The signed form parameters of one gateway call. */
export function sopGatewayParameters(
  options: SopOptions,
  method: string,
  bizContent: string,
  extra: { appAuthToken?: string; version?: string; now?: Date } = {},
): Record<string, string> {
  return signSopParameters(
    {
      app_id: options.clientID,
      method,
      format: 'json',
      charset: 'utf-8',
      sign_type: signTypeOf(options),
      timestamp: chinaTimestamp(extra.now ?? new Date()),
      version: extra.version ?? '1.0',
      app_auth_token: extra.appAuthToken,
      biz_content: bizContent,
    },
    keysOf(options).privateKey,
    signTypeOf(options),
  );
}

const FORM_TYPE = 'application/x-www-form-urlencoded;charset=utf-8';

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

/** A readable next step for the gateway's own error sub-codes. */
function gatewayHint(subCode: string | undefined): string {
  switch (subCode) {
    case 'isv.invalid-signature':
      return ' The platform could not verify this app\'s signature: check that privateKey is the key whose public half is registered for clientID (app_id), and that signType matches the app.';
    case 'isv.invalid-timestamp':
      return ' The platform refused the timestamp: check this server\'s clock (it must be within 300 s).';
    case 'isv.invalid-app-id':
    case 'isv.missing-app-id':
      return ' Check clientID: it must be the app_id the platform issued.';
    case 'isv.invalid-method':
      return ' The gateway does not offer this method (and version).';
    default:
      return subCode?.startsWith('isp.') ? ' The platform reported an internal problem; it may work on a later try.' : '';
  }
}

/** Throws the typed error for a gateway-level failure (`code` other than 10000), if it is one. */
function throwIfGatewayError(provider: string, method: string, node: Record<string, unknown>): void {
  const code = text(node['code']);
  const subCode = text(node['sub_code']);
  if (subCode === undefined && (code === undefined || code === SUCCESS_CODE)) return;
  const transient = code === '20000' || (subCode?.startsWith('isp.') ?? false);
  throw new OAuthKeeperError(
    ErrorCodes.TOKEN_ENDPOINT_FAILED,
    `The ${provider} gateway refused ${method} with code ${code ?? '(none)'}${subCode ? ` (${subCode})` : ''}.${gatewayHint(subCode)}`,
    {
      provider,
      transient,
      ...(subCode === undefined ? {} : { oauthError: subCode }),
      details: { method, code, subCode, subMsg: node['sub_msg'], msg: node['msg'], requestId: node['request_id'] },
    },
  );
}

/** The auth service's answers that say the code or refresh token itself is no good; nothing else deletes a stored token. */
const SOP_GRANT_INVALID = new Set(['invalid_grant', 'expired_token']);

/** Maps a verified `open.auth.token.app` node to a token set, or throws the typed failure. */
export function readSopTokenNode(node: Record<string, unknown>, provider = 'sop', now = Date.now()): TokenSet {
  throwIfGatewayError(provider, SOP_TOKEN_METHOD, node);
  const error = text(node['error']);
  if (error !== undefined) {
    throw new OAuthKeeperError(ErrorCodes.TOKEN_ENDPOINT_FAILED, `The ${provider} auth service refused ${SOP_TOKEN_METHOD} with "${error}".`, {
      provider,
      oauthError: error,
      grantInvalid: SOP_GRANT_INVALID.has(error),
      details: { description: node['error_description'], requestId: node['request_id'] },
    });
  }
  const body: Record<string, unknown> = {
    access_token: node['app_auth_token'],
    token_type: 'app_auth_token',
    expires_in: node['expires_in'],
    refresh_token_expires_in: node['re_expires_in'],
  };
  if (node['app_refresh_token'] !== undefined) body['refresh_token'] = node['app_refresh_token'];
  for (const [key, value] of Object.entries(node)) if (!ENVELOPE_FIELDS.has(key)) body[key] = value;
  const set = normalizeTokenResponse(body, { now, nonPositiveLifetimeMeansNever: true });
  if (typeof set === 'string') {
    const why = set.replace('access_token', 'app_auth_token').replace('refresh_token_expires_in', 're_expires_in').replace('refresh_token', 'app_refresh_token');
    throw new OAuthKeeperError(ErrorCodes.TOKEN_RESPONSE_MALFORMED, `The ${provider} answer to ${SOP_TOKEN_METHOD} is a success, but ${why}.`, {
      provider,
      details: { requestId: node['request_id'] },
    });
  }
  return set;
}

async function requestToken(options: SopOptions, grant: Grant): Promise<TokenSet> {
  const provider = 'sop';
  const bizContent = JSON.stringify(
    grant.grantType === 'authorization_code'
      ? { grant_type: 'authorization_code', code: grant.code }
      : { grant_type: 'refresh_token', refresh_token: grant.refreshToken },
  );
  const params = sopGatewayParameters(options, SOP_TOKEN_METHOD, bizContent);
  let response;
  try {
    response = await postToGateway(options, params);
  } catch (cause) {
    if (cause instanceof TransportError) throw tokenTransportError(provider, cause);
    throw cause;
  }
  if (response.status < 200 || response.status >= 300) {
    const transient = response.status >= 500 || response.status === 429;
    throw new OAuthKeeperError(
      ErrorCodes.TOKEN_ENDPOINT_FAILED,
      `The ${provider} gateway answered HTTP ${response.status}` +
        (transient ? '; it may work on a later try.' : '. Check gatewayURL: the gateway answers every call with HTTP 200.'),
      { provider, transient, details: { status: response.status } },
    );
  }
  const { node } = verifySopResponse(response.text, SOP_TOKEN_METHOD, keysOf(options).platformPublicKey, {
    signType: signTypeOf(options),
    provider,
  });
  return readSopTokenNode(node, provider);
}

// ---------------------------------------------------------------------------
// Business calls (ApiBinding)

const METHOD_NAME = /^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*$/;

function apiMethodOf(url: URL): string | undefined {
  const segments = url.pathname.split('/').filter((s) => s.length > 0);
  const last = segments[segments.length - 1];
  if (last === undefined) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    return undefined;
  }
  return METHOD_NAME.test(name) ? name : undefined;
}

/**
 * A business call `POST <api base>/<method>` with the JSON business parameters as its
 * body becomes the signed gateway form: `method` from the last path segment, the body as
 * `biz_content` (`{}` when empty), `version` from the `version` query parameter (default
 * 1.0), and the user's token as `app_auth_token`.
 */
function attach(request: ApiRequest, token: TokenSet, options: SopOptions): ApiRequest {
  const method = apiMethodOf(request.url);
  if (method === undefined) {
    throw new OAuthKeeperError(
      ErrorCodes.API_REQUEST_INVALID,
      'A sop API call names its gateway method as the last path segment, e.g. POST /api/sop/goods.get.',
      { provider: 'sop' },
    );
  }
  const bodyText = request.body && request.body.length > 0 ? request.body.toString('utf8') : '{}';
  if (!isRecord(parseJson(bodyText))) {
    throw new OAuthKeeperError(
      ErrorCodes.API_REQUEST_INVALID,
      `The body of a sop API call is its biz_content and must be a JSON object (${method}).`,
      { provider: 'sop' },
    );
  }
  const version = request.url.searchParams.get('version') ?? undefined;
  const params = sopGatewayParameters(options, method, bodyText, {
    appAuthToken: token.accessToken,
    ...(version ? { version } : {}),
  });
  const headers = new Headers({ 'content-type': FORM_TYPE, accept: 'application/json' });
  return { method: 'POST', url: new URL(options.gatewayURL), headers, body: Buffer.from(new URLSearchParams(params).toString(), 'utf8') };
}

/**
 * One signed business call, for code that calls the gateway itself rather than through
 * the API proxy: signs the request, posts it, verifies the answer and returns its
 * response node. Gateway refusals (`code` other than 10000, e.g. `20001` for a rejected
 * token) are answers and come back as the node; an unverifiable answer throws
 * RESPONSE_SIGNATURE_INVALID, an unreachable gateway API_UPSTREAM_FAILED / _TIMEOUT.
 */
export async function callSopGateway(
  options: SopOptions,
  method: string,
  bizContent: Readonly<Record<string, unknown>> | string,
  call: { appAuthToken?: string; version?: string } = {},
): Promise<Record<string, unknown>> {
  const provider = 'sop';
  if (!METHOD_NAME.test(method)) {
    throw new OAuthKeeperError(ErrorCodes.API_REQUEST_INVALID, 'A sop gateway method is a dotted name such as "goods.get".', { provider });
  }
  const params = sopGatewayParameters(options, method, typeof bizContent === 'string' ? bizContent : JSON.stringify(bizContent), call);
  let response;
  try {
    response = await postToGateway(options, params);
  } catch (cause) {
    if (!(cause instanceof TransportError)) throw cause;
    throw new OAuthKeeperError(
      cause.timedOut ? ErrorCodes.API_UPSTREAM_TIMEOUT : ErrorCodes.API_UPSTREAM_FAILED,
      `The ${provider} gateway could not be reached for ${method}: ${cause.message}.`,
      { provider, cause, transient: true },
    );
  }
  if (response.status < 200 || response.status >= 300) {
    throw new OAuthKeeperError(
      ErrorCodes.API_UPSTREAM_FAILED,
      `The ${provider} gateway answered ${method} with HTTP ${response.status}; its answers are always HTTP 200, so check gatewayURL.`,
      { provider, transient: response.status >= 500, details: { status: response.status, method } },
    );
  }
  return verifySopResponse(response.text, method, keysOf(options).platformPublicKey, {
    signType: signTypeOf(options),
    provider,
    malformedCode: ErrorCodes.API_UPSTREAM_FAILED,
  }).node;
}

/** The gateway method a (possibly already attached) request calls. */
function calledMethod(request: ApiRequest): string | undefined {
  const type = request.headers.get('content-type') ?? '';
  if (/x-www-form-urlencoded/i.test(type) && request.body) {
    const form = new URLSearchParams(request.body.toString('utf8'));
    const method = form.get('method');
    if (method !== null && form.has('sign')) return method;
  }
  return apiMethodOf(request.url);
}

/**
 * Verifies a business answer over the raw text of its response node and hands the caller
 * that node (unwrapped) as JSON; the HTTP status is kept. Anything unverifiable is refused.
 */
function readResponse(response: ApiRawResponse, request: ApiRequest, options: SopOptions): ApiRawResponse {
  const provider = 'sop';
  const method = calledMethod(request);
  if (method === undefined) {
    throw new OAuthKeeperError(ErrorCodes.API_REQUEST_INVALID, 'The sop API answer cannot be read: the request names no gateway method.', { provider });
  }
  if (response.status < 200 || response.status >= 300) {
    throw new OAuthKeeperError(
      ErrorCodes.API_UPSTREAM_FAILED,
      `The ${provider} gateway answered ${method} with HTTP ${response.status}; its answers are always HTTP 200, so check gatewayURL.`,
      { provider, transient: response.status >= 500, details: { status: response.status, method } },
    );
  }
  const { raw } = verifySopResponse(response.body.toString('utf8'), method, keysOf(options).platformPublicKey, {
    signType: signTypeOf(options),
    provider,
    malformedCode: ErrorCodes.API_UPSTREAM_FAILED,
  });
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  headers.set('content-type', 'application/json; charset=utf-8');
  return { status: response.status, headers, body: Buffer.from(raw, 'utf8') };
}

/** `code` 20001 with `aop.invalid-app-auth-token` or `aop.app-auth-token-time-out`. */
function isTokenRejected(response: ApiResponseHead): boolean {
  const body = response.body;
  if (!isRecord(body)) return false;
  let node: unknown = body;
  if (body['code'] === undefined) {
    const key = Object.keys(body).find((k) => k.endsWith('_response'));
    node = key === undefined ? undefined : body[key];
  }
  if (!isRecord(node)) return false;
  const subCode = text(node['sub_code']);
  return text(node['code']) === '20001' && subCode !== undefined && TOKEN_REJECTED_SUB_CODES.has(subCode);
}

// ---------------------------------------------------------------------------
// Definition

function absoluteHttpURL(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function isPrivatePem(value: SopKey): boolean {
  return value instanceof KeyObject ? value.type === 'private' : /PRIVATE KEY-----/.test(value);
}

function validateOptions(options: SopOptions): void {
  validateCommonOptions('sop', options, false);
  for (const [option, what, example] of [
    ['authURL', 'the base URL of your SOP deployment\'s auth service (the one serving /oauth2/appToAppAuth)', 'https://openauth.example.com'],
    ['gatewayURL', 'the URL of your SOP deployment\'s gateway, posted to as is', 'https://open.example.com/'],
  ] as const) {
    if (!absoluteHttpURL(options[option])) {
      throw configurationError(`The sop strategy needs ${option}: ${what}, an absolute http(s) URL such as "${example}". SOP is self-hosted, so there is no default.`);
    }
  }
  if (options.signType !== undefined && options.signType !== 'RSA2' && options.signType !== 'RSA') {
    throw configurationError('The sop strategy\'s signType must be "RSA2" (SHA256withRSA, the default) or "RSA" (SHA1withRSA).');
  }
  if (options.privateKey === undefined || options.privateKey === null || options.privateKey === '') {
    throw configurationError(
      "The sop strategy needs privateKey: the app's RSA private key, e.g. fs.readFileSync('app-private-key.pem', 'utf8') (PKCS#8 PEM), " +
        'the bare Base64 key from the SOP console, or a KeyObject.',
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = readPrivateKey(options.privateKey);
  } catch {
    throw configurationError('The sop strategy\'s privateKey could not be read as a private key: pass a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), its bare Base64 body, or a KeyObject.');
  }
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') {
    throw configurationError('The sop strategy\'s privateKey must be an RSA private key (the gateway signs with SHA256withRSA or SHA1withRSA).');
  }
  if (options.platformPublicKey === undefined || options.platformPublicKey === null || options.platformPublicKey === '') {
    throw configurationError(
      "The sop strategy needs platformPublicKey: the platform's RSA public key from the SOP console, e.g. fs.readFileSync('platform-public-key.pem', 'utf8'), " +
        'used to verify every gateway answer.',
    );
  }
  if (isPrivatePem(options.platformPublicKey)) {
    throw configurationError("The sop strategy's platformPublicKey is a private key: pass the platform's public key, not a private one.");
  }
  let publicKey: KeyObject;
  try {
    publicKey = readPublicKey(options.platformPublicKey);
  } catch {
    throw configurationError('The sop strategy\'s platformPublicKey could not be read as a public key: pass an SPKI PEM ("-----BEGIN PUBLIC KEY-----"), its bare Base64 body, or a KeyObject.');
  }
  if (publicKey.asymmetricKeyType !== 'rsa') {
    throw configurationError("The sop strategy's platformPublicKey must be an RSA public key.");
  }
}

/** Checks the `app_id` the platform sent back with the code: it must be this app's. */
function checkCallback(options: SopOptions, params: CallbackParams): void {
  const appId = params.all['app_id'];
  if (appId === undefined) {
    throw new OAuthKeeperError(ErrorCodes.CALLBACK_INVALID, 'The sop callback carries no app_id; the platform always sends it with the code.', {
      provider: 'sop',
    });
  }
  if (appId !== options.clientID) {
    throw new OAuthKeeperError(
      ErrorCodes.CALLBACK_INVALID,
      'The sop callback carries an app_id other than this app\'s clientID: the code was issued to another app. Start the login again.',
      { provider: 'sop' },
    );
  }
}

/** `{authURL}/oauth2/appToAppAuth?app_id=...&redirect_uri=...` (no state, no scope: the state rides in redirect_uri). */
function authorizationURL(options: SopOptions, context: { redirectUri: string }): URL {
  const url = new URL(`${options.authURL.replace(/\/+$/, '')}/oauth2/appToAppAuth`);
  url.searchParams.set('app_id', options.clientID);
  url.searchParams.set('redirect_uri', context.redirectUri);
  return url;
}

/** The `sop` provider definition: data plus the hooks above. */
export const sopProvider = defineProvider<SopOptions>({
  name: 'sop',
  authorizationURL: (options) => `${options.authURL.replace(/\/+$/, '')}/oauth2/appToAppAuth`,
  tokenURL: (options) => options.gatewayURL,
  scope: [],
  pkce: false,
  nonce: false,
  clientAuthentication: 'none',
  stateTransport: { kind: 'redirect_uri', parameter: SOP_STATE_PARAMETER },
  formPostCallback: false,
  api: {
    baseURL: (options) => options.gatewayURL,
    attach,
    isTokenRejected,
    readResponse,
    // The signature over the user's call is not the caller's to see; app_auth_token is the access token.
    secretParameters: ['sign', 'app_auth_token'],
  },
  hooks: {
    validateOptions,
    authorizationURL,
    checkCallback,
    requestToken,
  },
});

/**
 * Passport strategy for SOP app authorization. `clientID` is the app's `app_id`.
 *
 * ```ts
 * passport.use(new SopStrategy({
 *   clientID: '2019032617262200001',
 *   callbackURL: '/auth/sop/callback',
 *   authURL: 'https://openauth.example.com',
 *   gatewayURL: 'https://open.example.com/',
 *   privateKey: readFileSync('app-private-key.pem', 'utf8'),
 *   platformPublicKey: readFileSync('platform-public-key.pem', 'utf8'),
 * }));
 * ```
 */
export class SopStrategy<User = Profile> extends OAuthKeeperStrategy<SopOptions, User> {
  constructor(options: SopOptions & StrategyOptions & NoRequest, verify?: VerifyFunction<User>);
  constructor(options: SopOptions & StrategyOptions & NoRequest, verify: OAuth2VerifyFunction<User>);
  constructor(options: SopOptions & StrategyOptions & NoRequest, verify: OAuth2VerifyFunctionWithParams<User>);
  constructor(options: SopOptions & StrategyOptions & WithRequest, verify: VerifyFunctionWithRequest<User>);
  constructor(options: SopOptions & StrategyOptions & WithRequest, verify: OAuth2VerifyFunctionWithRequest<User>);
  constructor(options: SopOptions & StrategyOptions & WithRequest, verify: OAuth2VerifyFunctionWithRequestAndParams<User>);
  constructor(
    options: SopOptions & StrategyOptions & { passReqToCallback?: boolean },
    verify?: AnyVerifyFunction<User> | AnyVerifyFunctionWithRequest<User>,
  ) {
    super(sopProvider, options, verify as AnyVerifyFunction<User> | undefined);
  }
}
