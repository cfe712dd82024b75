import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { PassThrough, Readable } from 'node:stream';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, createInflate, gunzipSync, inflateSync } from 'node:zlib';
import type { Request } from 'express';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import type { Keeper } from '../middleware/keeper.js';
import type { ApiBinding, ApiRequest, ApiResponseHead, ProviderOptions } from '../provider/types.js';
import { ownerOf } from './session.js';
import type { TokenSet } from './token-set.js';
import { holdsSecret, ScrubStream, scrubBuffer, secretForms } from './scrub.js';

/**
 * Calls a provider's downstream API for the user of one session: the token is
 * refreshed first when it is about to expire, attached the provider's way, and when
 * the provider rejects it the token is refreshed once and the call retried once.
 * Shared by the proxy middleware and the fetch-like helper; knows nothing of Express
 * beyond reading the session's token owner from the request.
 */

/** The part of the keeper an API call needs. */
export type ApiKeeper = Pick<Keeper, 'strategy' | 'refresher'>;

export interface ApiClientOptions {
  /**
   * Per attempt: how long to wait for the answer's status and headers (and, when the
   * answer is buffered, its whole body). A streamed body is not limited. Default 30000.
   */
  timeoutMs?: number;
  /**
   * Request bodies up to this size are buffered so the call can be retried after a
   * refresh; larger bodies are streamed and never retried. Default 1 MiB.
   */
  maxBufferedBodyBytes?: number;
  /** Largest answer read when the provider's binding must see it whole (`readResponse`). Default 8 MiB. */
  maxBufferedResponseBytes?: number;
}

export const API_DEFAULTS = Object.freeze({
  timeoutMs: 30_000,
  maxBufferedBodyBytes: 1024 * 1024,
  maxBufferedResponseBytes: 8 * 1024 * 1024,
});

/** Error answers up to this size are read to let `isTokenRejected` see their body. */
const INSPECT_LIMIT = 64 * 1024;

/** Headers that are never sent upstream, whoever set them: the transport owns them. */
export const TRANSPORT_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'expect',
  'http2-settings',
]);

/** One API call, before credentials are attached. */
export interface ApiCall {
  method: string;
  /** The target, already resolved under the API base (see {@link ApiClient.resolve}). */
  url: URL;
  headers: Headers;
  /** A Buffer is always replayable; a stream is buffered up to `maxBufferedBodyBytes`. */
  body?: Buffer | Readable;
  /** Length of a streamed body, when known (its `Content-Length`). */
  bodyLength?: number;
  /** Aborts the call (and a streamed answer): e.g. the client went away. */
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number;
}

/** The provider's answer. Never carries the request as sent: it holds the user's credentials. */
export interface ApiCallResult {
  status: number;
  statusText: string;
  headers: Headers;
  /**
   * `null` for answers without a body (HEAD, 204, 304); a Buffer when the answer was
   * read whole (the binding's `readResponse`, or a small inspected error answer); else a
   * stream to consume or destroy.
   */
  body: Buffer | Readable | null;
  /** True when the first answer rejected the token and this is the answer to the retry. */
  retried: boolean;
}

type PreparedBody =
  | { kind: 'none' }
  | { kind: 'buffer'; buffer: Buffer }
  | { kind: 'stream'; stream: Readable; length: number | undefined };

function apiRequestInvalid(provider: string, message: string, status = 400): OAuthKeeperError {
  return new OAuthKeeperError(ErrorCodes.API_REQUEST_INVALID, message, { provider, status });
}

function authorizationRequired(provider: string): OAuthKeeperError {
  return new OAuthKeeperError(
    ErrorCodes.AUTHORIZATION_REQUIRED,
    `This call needs a ${provider} authorization for the session; log in with ${provider} first.`,
    { provider },
  );
}

// ---------------------------------------------------------------------------
// Keeping requests on the API host and under its base path
// ---------------------------------------------------------------------------

const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Why a path (the part after the API base, raw as received) is refused, or undefined
 * when it is safe. Checked raw and after each layer of percent-decoding (and its NFKC
 * form, for servers that fold look-alike characters), so `%2e%2e`, `%252e%252e` and
 * `..%2f` are seen as the `..` they become upstream.
 */
export function unsafePathReason(path: string): string | undefined {
  if (path.length > 8192) return 'the path is too long';
  const forms = [path];
  let current = path;
  for (let layer = 0; ; layer += 1) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      return 'the path has a malformed percent-encoding';
    }
    if (next === current) break;
    if (layer === 4) return 'the path is percent-encoded too many times';
    forms.push(next);
    current = next;
  }
  for (const form of forms) {
    for (const text of form.normalize('NFKC') === form ? [form] : [form, form.normalize('NFKC')]) {
      if (CONTROL.test(text)) return 'the path contains control characters';
      if (text.includes('\\')) return 'the path contains a backslash';
      if (text.includes('@')) return 'the path contains "@"';
      if (text.includes('//')) return 'the path contains an empty segment ("//"), which could name another host';
      for (const segment of text.split('/')) {
        // `..;x` is `..` to servlet containers.
        const name = segment.split(';', 1)[0];
        if (name === '..' || name === '.') return 'the path contains a "." or ".." segment';
      }
    }
  }
  return undefined;
}

function basePrefix(base: URL): string {
  return base.pathname.replace(/\/+$/, '');
}

/** Whether `url` is on the base's origin and at or under its path. */
export function isUnderBase(base: URL, url: URL): boolean {
  if (url.origin !== base.origin || url.username !== '' || url.password !== '') return false;
  const prefix = basePrefix(base);
  return prefix === '' || url.pathname === prefix || url.pathname.startsWith(`${prefix}/`);
}

/**
 * Resolves `relative` (a path such as `/users/1?x=y`, as `req.url` inside a mount)
 * under the API base. Throws API_REQUEST_INVALID (400) for anything that could leave
 * the base's host or path.
 */
export function resolveApiPath(base: URL, relative: string, provider = 'the provider'): URL {
  const refuse = (why: string) => apiRequestInvalid(provider, `The ${provider} API request was refused: ${why}.`);
  if (!relative.startsWith('/')) throw refuse('only a path under the API base is accepted, not an absolute URL');
  const hashAt = relative.indexOf('#');
  const withoutHash = hashAt === -1 ? relative : relative.slice(0, hashAt);
  const queryAt = withoutHash.indexOf('?');
  const path = queryAt === -1 ? withoutHash : withoutHash.slice(0, queryAt);
  const query = queryAt === -1 ? '' : withoutHash.slice(queryAt);
  if (CONTROL.test(query)) throw refuse('the query contains control characters');
  const why = unsafePathReason(path);
  if (why !== undefined) throw refuse(why);
  const joined = basePrefix(base) + path;
  let url: URL;
  try {
    url = new URL(joined + query, base.origin);
  } catch {
    throw refuse('the path is not a valid URL path');
  }
  if (!isUnderBase(base, url)) throw refuse('the target is not under the API base URL');
  return url;
}

/**
 * Resolves fetch-style input: a path (`/users`, `users?x=1`) is taken under the API
 * base; an absolute URL is accepted only when it is already under the API base.
 */
export function resolveApiInput(base: URL, input: string | URL, provider = 'the provider'): URL {
  const refuse = (why: string) => apiRequestInvalid(provider, `The ${provider} API request was refused: ${why}.`);
  const text = input instanceof URL ? input.href : input;
  if (typeof text !== 'string') throw refuse('the input must be a path or a URL');
  // URL parsing silently drops tabs and newlines and reads "\" as "/": refuse them up front.
  if (CONTROL.test(text)) throw refuse('the URL contains control characters');
  if (text.includes('\\')) throw refuse('the URL contains a backslash');
  if (text.startsWith('//')) throw refuse('a scheme-relative URL ("//host") is not accepted');
  if (!/^[a-z][a-z0-9+.-]*:/i.test(text)) {
    return resolveApiPath(base, text.startsWith('/') ? text : `/${text}`, provider);
  }
  const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(text);
  if (!authority) throw refuse('the URL is not an absolute http(s) URL');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw refuse('the URL is not valid');
  }
  if (!isUnderBase(base, url)) throw refuse('the URL is not under the API base URL');
  const rawPath = authority[1] ?? '';
  const why = unsafePathReason(rawPath === '' ? '/' : rawPath) ?? unsafePathReason(url.pathname);
  if (why !== undefined) throw refuse(why);
  url.hash = '';
  return url;
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

function noop(): void {}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error('The API call was aborted.', { cause: value });
}

type ReadUpTo = { complete: true; buffer: Buffer } | { complete: false; rest: Readable };

/**
 * Reads a stream until it ends or holds more than `limit` bytes. When the limit is
 * passed, the bytes read so far and the unread remainder come back as one stream.
 */
export function readUpTo(stream: Readable, limit: number): Promise<ReadUpTo> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      chunks.push(bytes);
      size += bytes.length;
      if (size <= limit) return;
      stream.pause();
      cleanup();
      const rest = new PassThrough();
      rest.on('error', noop);
      for (const c of chunks) rest.write(c);
      stream.on('error', (error) => rest.destroy(error));
      stream.pipe(rest);
      resolve({ complete: false, rest });
    };
    const onEnd = () => {
      cleanup();
      resolve({ complete: true, buffer: Buffer.concat(chunks) });
    };
    const onError = (error: unknown) => {
      cleanup();
      reject(error);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('the stream closed before its end'));
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/** Most bytes a buffered answer may inflate to: a small compressed body must not grow without bound. */
const MAX_DECODED_BYTES = 8 * 1024 * 1024;

function decodeForInspection(buffer: Buffer, encoding: string | null): Buffer | undefined {
  const limit = { maxOutputLength: MAX_DECODED_BYTES };
  try {
    switch ((encoding ?? 'identity').trim().toLowerCase()) {
      case 'identity':
      case '':
        return buffer;
      case 'gzip':
      case 'x-gzip':
        return gunzipSync(buffer, limit);
      case 'deflate':
        return inflateSync(buffer, limit);
      case 'br':
        return brotliDecompressSync(buffer, limit);
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/** What `isTokenRejected` sees of a buffered body: JSON when it parses, else the text. */
function inspectBody(buffer: Buffer, headers: Headers): unknown {
  const decoded = decodeForInspection(buffer, headers.get('content-encoding'));
  if (decoded === undefined || decoded.length === 0) return undefined;
  const text = decoded.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function headersOf(response: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = response.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    try {
      headers.append(raw[i]!, raw[i + 1]!);
    } catch {
      // A header value fetch's Headers refuses is dropped rather than failing the call.
    }
  }
  return headers;
}

/**
 * An upstream answer must never hand the user's credentials back to the caller. A redirect that
 * repeats the request's query (servlet-style trailing-slash redirects do) would carry whatever
 * the binding put there: drop the query parameters the binding added, then drop any header that
 * still holds the access token.
 */
function scrubCredentials(headers: Headers, sent: ApiRequest, unattached: ApiRequest, forms: readonly Buffer[]): void {
  const added = [...sent.url.searchParams.keys()].filter((key) => !unattached.url.searchParams.has(key));
  for (const name of ['location', 'content-location']) {
    const value = headers.get(name);
    if (value === null || added.length === 0) continue;
    try {
      const url = new URL(value, sent.url);
      for (const key of added) url.searchParams.delete(key);
      headers.set(name, /^[a-z][a-z0-9+.-]*:/i.test(value) ? url.toString() : url.pathname + url.search + url.hash);
    } catch {
      headers.delete(name);
    }
  }
  const names: string[] = [];
  headers.forEach((_value, name) => names.push(name));
  for (const name of names) {
    const value = headers.get(name) ?? '';
    if (holdsSecret(value, forms)) headers.delete(name);
  }
}

/**
 * Everything the binding attached that must never come back: the access and refresh
 * tokens, the client secret, the credentials of an Authorization header it set, and the
 * values of the parameters it declares secret (sop's `sign`).
 */
function attachedSecrets(sent: ApiRequest, unattached: ApiRequest, tokenSet: TokenSet, options: ProviderOptions, names: readonly string[]): Buffer[] {
  const secrets: Array<string | undefined> = [tokenSet.accessToken, tokenSet.refreshToken, options.clientSecret];
  const authorization = sent.headers.get('authorization');
  if (authorization !== null && authorization !== unattached.headers.get('authorization')) {
    secrets.push(authorization, authorization.slice(authorization.indexOf(' ') + 1));
  }
  if (names.length > 0) {
    const form = /x-www-form-urlencoded/i.test(sent.headers.get('content-type') ?? '') && sent.body ? new URLSearchParams(sent.body.toString('utf8')) : undefined;
    for (const name of names) secrets.push(...sent.url.searchParams.getAll(name), ...(form?.getAll(name) ?? []));
  }
  return secretForms(secrets);
}

/**
 * The answer with every attached secret masked (see scrub.ts). A compressed answer is
 * decoded first, as the caller would; one in an encoding that cannot be checked is refused.
 */
function scrubResult(result: ApiCallResult, forms: readonly Buffer[], provider: string): ApiCallResult {
  if (forms.length === 0 || result.body === null) return result;
  const encoding = (result.headers.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (Buffer.isBuffer(result.body)) {
    const decoded = decodeForInspection(result.body, encoding);
    if (decoded === undefined) throw uncheckable(provider, result.body);
    if (decoded !== result.body) {
      result.headers.delete('content-encoding');
      result.headers.delete('content-length');
    }
    return { ...result, body: scrubBuffer(decoded, forms) };
  }
  if (!['identity', '', 'gzip', 'x-gzip', 'deflate', 'br'].includes(encoding)) throw uncheckable(provider, result.body);
  const plain = decodedStream(result.body, result.headers);
  const scrubbed = new ScrubStream(forms);
  plain.on('error', (error) => scrubbed.destroy(error));
  scrubbed.on('close', () => plain.destroy());
  return { ...result, body: plain.pipe(scrubbed) };
}

function uncheckable(provider: string, body: Buffer | Readable): OAuthKeeperError {
  if (body instanceof Readable) body.destroy();
  return new OAuthKeeperError(
    ErrorCodes.API_UPSTREAM_FAILED,
    `The ${provider} API answered in a content encoding that cannot be decoded here, so it cannot be checked for the credentials it was sent.`,
    { provider },
  );
}

function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

// ---------------------------------------------------------------------------
// One HTTP exchange: timeout, caller abort, error mapping
// ---------------------------------------------------------------------------

class Exchange {
  readonly #provider: string;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #abortedBy: 'timeout' | 'caller' | undefined;
  #outgoing: ClientRequest | undefined;
  #response: IncomingMessage | undefined;
  readonly #onCallerAbort = () => this.#abort('caller');

  constructor(provider: string, timeoutMs: number, signal: AbortSignal | undefined) {
    this.#provider = provider;
    this.#timeoutMs = timeoutMs;
    this.#signal = signal;
    this.#timer = setTimeout(() => this.#abort('timeout'), timeoutMs);
    this.#timer.unref?.();
    signal?.addEventListener('abort', this.#onCallerAbort, { once: true });
  }

  /** Throws at once when the caller has already given up. */
  checkCaller(): void {
    if (this.#signal?.aborted) throw this.translate(undefined);
  }

  start(outgoing: ClientRequest): void {
    this.#outgoing = outgoing;
    if (this.#abortedBy || this.#signal?.aborted) outgoing.destroy(asError(this.translate(undefined)));
  }

  track(response: IncomingMessage): void {
    this.#response = response;
    response.on('error', noop);
    response.once('close', () => this.dispose());
  }

  stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  dispose(): void {
    this.stopTimer();
    this.#signal?.removeEventListener('abort', this.#onCallerAbort);
  }

  #abort(kind: 'timeout' | 'caller'): void {
    if (this.#abortedBy) return;
    this.#abortedBy = kind;
    const error = asError(this.translate(undefined));
    this.#outgoing?.destroy(error);
    this.#response?.destroy(error);
  }

  /** The error to raise for a transport failure, by what caused it. */
  translate(cause: unknown): unknown {
    if (this.#abortedBy === 'timeout') {
      return new OAuthKeeperError(
        ErrorCodes.API_UPSTREAM_TIMEOUT,
        `The ${this.#provider} API did not answer within ${this.#timeoutMs} ms.`,
        { provider: this.#provider, transient: true },
      );
    }
    if (this.#abortedBy === 'caller' || this.#signal?.aborted) {
      return this.#signal?.reason ?? new DOMException('The API call was aborted.', 'AbortError');
    }
    if (cause instanceof OAuthKeeperError) return cause;
    const code = (cause as { code?: unknown } | undefined)?.code;
    return new OAuthKeeperError(
      ErrorCodes.API_UPSTREAM_FAILED,
      `The ${this.#provider} API could not be reached or broke off its answer${typeof code === 'string' && /^[A-Z_]+$/.test(code) ? ` (${code})` : ''}; try again later.`,
      { provider: this.#provider, transient: true, ...(cause === undefined ? {} : { cause }) },
    );
  }
}

function send(request: ApiRequest, body: PreparedBody, exchange: Exchange): Promise<IncomingMessage> {
  const url = request.url;
  const transport = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
  if (!transport) return Promise.reject(configurationError('An API binding produced a request that is not http(s).'));
  const headers: OutgoingHttpHeaders = {};
  request.headers.forEach((value, name) => {
    if (!TRANSPORT_HEADERS.has(name)) headers[name] = value;
  });
  if (request.body !== undefined) {
    if (request.body.length > 0 || !['GET', 'HEAD'].includes(request.method)) headers['content-length'] = String(request.body.length);
  } else if (body.kind === 'stream' && body.length !== undefined) {
    headers['content-length'] = String(body.length);
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    let outgoing: ClientRequest;
    try {
      outgoing = transport.request(url, { method: request.method, headers });
    } catch (cause) {
      reject(exchange.translate(cause));
      return;
    }
    exchange.start(outgoing);
    outgoing.on('response', (response) => {
      settled = true;
      exchange.track(response);
      resolve(response);
    });
    outgoing.on('error', (cause) => {
      if (settled) return;
      settled = true;
      reject(exchange.translate(cause));
    });
    if (body.kind === 'stream' && request.body === undefined) {
      body.stream.on('error', (cause) => outgoing.destroy(cause));
      body.stream.pipe(outgoing);
    } else {
      outgoing.end(request.body);
    }
  });
}

async function readBuffered(response: IncomingMessage, limit: number, exchange: Exchange, provider: string): Promise<Buffer> {
  let read: ReadUpTo;
  try {
    read = await readUpTo(response, limit);
  } catch (cause) {
    throw exchange.translate(cause);
  }
  if (!read.complete) {
    read.rest.destroy();
    throw new OAuthKeeperError(ErrorCodes.API_UPSTREAM_FAILED, `The ${provider} API answer is larger than ${limit} bytes.`, { provider });
  }
  return read.buffer;
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

interface Attempt {
  rejected: boolean;
  result: ApiCallResult;
}

function positiveNumber(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw configurationError(`${name} must be a positive number of ${name.endsWith('Ms') ? 'milliseconds' : 'bytes'}; the default is ${fallback}.`);
  }
  return value;
}

/**
 * The API of one provider of a keeper: where it lives, how a target is resolved under
 * it, and {@link ApiClient.call}. Construct once (checks the configuration), call per request.
 */
export class ApiClient {
  readonly provider: string;
  /** The provider's API base URL (`provider.api.baseURL(options)`). */
  readonly baseURL: URL;
  readonly timeoutMs: number;
  readonly maxBufferedBodyBytes: number;
  readonly maxBufferedResponseBytes: number;
  readonly #keeper: ApiKeeper;
  readonly #binding: ApiBinding<ProviderOptions>;

  constructor(keeper: ApiKeeper, provider: string, options: ApiClientOptions = {}) {
    const strategy = keeper.strategy(provider);
    const binding = strategy.provider.api as ApiBinding<ProviderOptions> | undefined;
    if (!binding) {
      throw configurationError(
        `The ${provider} provider has no API binding: give its definition api: { baseURL } (defineProvider) to call its API through oauth-keeper.`,
      );
    }
    let base: URL;
    try {
      base = new URL(binding.baseURL(strategy.options as ProviderOptions));
    } catch {
      throw configurationError(`The ${provider} API base URL is not an absolute URL; check the provider's API URL option.`);
    }
    if ((base.protocol !== 'http:' && base.protocol !== 'https:') || base.search !== '' || base.hash !== '' || base.username !== '' || base.password !== '') {
      throw configurationError(`The ${provider} API base URL must be an http(s) URL without credentials, query or fragment; check the provider's API URL option.`);
    }
    this.provider = provider;
    this.baseURL = base;
    this.timeoutMs = positiveNumber('timeoutMs', options.timeoutMs, API_DEFAULTS.timeoutMs);
    this.maxBufferedBodyBytes = positiveNumber('maxBufferedBodyBytes', options.maxBufferedBodyBytes, API_DEFAULTS.maxBufferedBodyBytes);
    this.maxBufferedResponseBytes = positiveNumber(
      'maxBufferedResponseBytes',
      options.maxBufferedResponseBytes,
      API_DEFAULTS.maxBufferedResponseBytes,
    );
    this.#keeper = keeper;
    this.#binding = binding;
  }

  /** A path or URL under the API base; throws API_REQUEST_INVALID for anything else. */
  resolve(input: string | URL): URL {
    return resolveApiInput(this.baseURL, input, this.provider);
  }

  /** A path relative to the API base, such as `req.url` inside a mount. */
  resolvePath(relative: string): URL {
    return resolveApiPath(this.baseURL, relative, this.provider);
  }

  /**
   * Performs the call for the session of `req`. Throws OAuthKeeperError:
   * AUTHORIZATION_REQUIRED / REAUTHORIZATION_REQUIRED (401), REFRESH_UNAVAILABLE (503),
   * API_UPSTREAM_FAILED (502), API_UPSTREAM_TIMEOUT (504), API_REQUEST_INVALID, or what
   * the provider's binding throws; rejects with the signal's reason when aborted.
   */
  async call(req: Request, call: ApiCall): Promise<ApiCallResult> {
    const provider = this.provider;
    const strategy = this.#keeper.strategy(provider);
    const refresher = this.#keeper.refresher;
    const owner = ownerOf(req, false);
    if (!owner) throw authorizationRequired(provider);
    const tokenSet = await refresher.forRequest(req, owner, strategy.tokens);
    if (!tokenSet) throw authorizationRequired(provider);
    const body = await this.#prepareBody(call);

    const first = await this.#attempt(call, body, tokenSet, true);
    if (!first.rejected) return first.result;

    let next: TokenSet | null;
    try {
      next = await refresher.replaceRejected(req, owner, strategy.tokens, tokenSet.accessToken);
    } catch (error) {
      discard(first.result);
      throw error;
    }
    if (!next) {
      discard(first.result);
      throw authorizationRequired(provider);
    }
    // A streamed body cannot be sent twice; the refresh still helps the next call.
    // The same token back means the refresh could not be done: nothing to retry with.
    if (body.kind === 'stream' || next.accessToken === tokenSet.accessToken) return first.result;
    discard(first.result);
    const second = await this.#attempt(call, body, next, false);
    return { ...second.result, retried: true };
  }

  async #prepareBody(call: ApiCall): Promise<PreparedBody> {
    const body = call.body;
    if (body === undefined) return { kind: 'none' };
    if (Buffer.isBuffer(body)) return { kind: 'buffer', buffer: body };
    let read: ReadUpTo;
    try {
      read = await readUpTo(body, this.maxBufferedBodyBytes);
    } catch (cause) {
      throw new OAuthKeeperError(ErrorCodes.API_REQUEST_INVALID, `The request body for the ${this.provider} API could not be read.`, {
        provider: this.provider,
        cause,
      });
    }
    if (read.complete) return { kind: 'buffer', buffer: read.buffer };
    return { kind: 'stream', stream: read.rest, length: call.bodyLength };
  }

  async #attempt(call: ApiCall, body: PreparedBody, tokenSet: TokenSet, inspect: boolean): Promise<Attempt> {
    const provider = this.provider;
    const binding = this.#binding;
    const options = this.#keeper.strategy(provider).options as ProviderOptions;
    const method = call.method.toUpperCase();
    const unattached: ApiRequest = {
      method,
      url: new URL(call.url),
      headers: new Headers(call.headers),
      ...(body.kind === 'buffer' ? { body: body.buffer } : {}),
    };
    let request: ApiRequest;
    try {
      request = await binding.attach(unattached, tokenSet, options);
    } catch (cause) {
      if (cause instanceof OAuthKeeperError) throw cause;
      throw new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, `The ${provider} API binding could not attach the credentials; see error.cause.`, {
        provider,
        status: 500,
        cause,
      });
    }
    if (body.kind === 'stream' && request.body !== undefined) {
      body.stream.destroy();
      throw apiRequestInvalid(
        provider,
        `The ${provider} API needs the whole request body to attach credentials, and this one is larger than maxBufferedBodyBytes (${this.maxBufferedBodyBytes}).`,
        413,
      );
    }
    if (binding.readResponse) {
      // readResponse checks the raw bytes (signatures): ask for them uncompressed.
      request = { ...request, headers: new Headers(request.headers) };
      request.headers.set('accept-encoding', 'identity');
    }

    const exchange = new Exchange(provider, call.timeoutMs ?? this.timeoutMs, call.signal);
    try {
      exchange.checkCaller();
      const response = await send(request, body, exchange);
      const status = response.statusCode ?? 502;
      const statusText = response.statusMessage ?? '';
      const headers = headersOf(response);
      const forms = attachedSecrets(request, unattached, tokenSet, options, binding.secretParameters ?? []);
      scrubCredentials(headers, request, unattached, forms);

      if (binding.readResponse) {
        const raw = await readBuffered(response, this.maxBufferedResponseBytes, exchange, provider);
        exchange.dispose();
        let read;
        try {
          read = await binding.readResponse({ status, headers, body: raw }, request, options);
        } catch (cause) {
          if (cause instanceof OAuthKeeperError) throw cause;
          throw new OAuthKeeperError(ErrorCodes.API_UPSTREAM_FAILED, `The ${provider} API answer could not be read; see error.cause.`, {
            provider,
            cause,
          });
        }
        scrubCredentials(read.headers, request, unattached, forms);
        const rejected = inspect && binding.isTokenRejected({ status: read.status, headers: read.headers, body: inspectBody(read.body, read.headers) });
        const noBody = hasNoBody(method, read.status);
        const result = { status: read.status, statusText, headers: read.headers, body: noBody ? null : read.body, retried: false };
        return { rejected, result: scrubResult(result, forms, provider) };
      }

      if (hasNoBody(method, status)) {
        response.resume();
        exchange.dispose();
        const rejected = inspect && binding.isTokenRejected({ status, headers });
        return { rejected, result: { status, statusText, headers, body: null, retried: false } };
      }

      const head: ApiResponseHead = { status, headers };
      let responseBody: Buffer | Readable = response;
      const declared = Number(headers.get('content-length') ?? NaN);
      if (inspect && status >= 400 && !(declared > INSPECT_LIMIT)) {
        let peek: ReadUpTo;
        try {
          peek = await readUpTo(response, INSPECT_LIMIT);
        } catch (cause) {
          throw exchange.translate(cause);
        }
        if (peek.complete) {
          exchange.dispose();
          responseBody = peek.buffer;
          head.body = inspectBody(peek.buffer, headers);
        } else {
          responseBody = peek.rest;
        }
      }
      // From here the answer streams for as long as it takes; only the caller can stop it.
      exchange.stopTimer();
      const rejected = inspect && binding.isTokenRejected(head);
      return { rejected, result: scrubResult({ status, statusText, headers, body: responseBody, retried: false }, forms, provider) };
    } catch (error) {
      exchange.dispose();
      throw error;
    }
  }
}

function discard(result: ApiCallResult): void {
  if (result.body instanceof Readable) result.body.destroy();
}

/**
 * One call of `provider`'s API for the session of `req` (see {@link ApiClient.call}).
 * Handy for one-off calls; build an {@link ApiClient} once to make many.
 */
export function callProviderApi(
  keeper: ApiKeeper,
  req: Request,
  provider: string,
  call: ApiCall,
  options: ApiClientOptions = {},
): Promise<ApiCallResult> {
  return new ApiClient(keeper, provider, options).call(req, call);
}

// ---------------------------------------------------------------------------
// fetch-like helper for handler code
// ---------------------------------------------------------------------------

/** What `oauthFetch` accepts as a body: anything fetch accepts, plus Node streams and Buffers. */
// Written with RequestInit's own member types: BodyInit and HeadersInit are DOM-only names.
export type OAuthFetchBody = RequestInit['body'] | Buffer | Readable | AsyncIterable<Uint8Array>;

/** `RequestInit`, narrowed to what applies to a provider API call. */
export interface OAuthFetchInit {
  method?: string;
  headers?: RequestInit['headers'];
  body?: OAuthFetchBody;
  signal?: AbortSignal | null;
  /** Overrides the helper's `timeoutMs` for this call. */
  timeoutMs?: number;
}

/**
 * `oauthFetch(provider, input, init)`: a path (resolved under the provider's API base)
 * or an absolute URL under that base. Resolves to a standard `Response` for every HTTP
 * answer; rejects with an OAuthKeeperError when the call could not be made.
 */
export type OAuthFetch = (provider: string, input: string | URL, init?: OAuthFetchInit) => Promise<Response>;

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

async function fetchBody(
  provider: string,
  body: OAuthFetchBody | undefined,
  headers: Headers,
): Promise<{ body?: Buffer | Readable; length?: number }> {
  const defaultType = (type: string | null) => {
    if (type && !headers.has('content-type')) headers.set('content-type', type);
  };
  if (body === undefined || body === null) return {};
  if (typeof body === 'string') {
    defaultType('text/plain;charset=UTF-8');
    return { body: Buffer.from(body, 'utf8') };
  }
  if (Buffer.isBuffer(body)) return { body };
  if (body instanceof ArrayBuffer) return { body: Buffer.from(body) };
  if (ArrayBuffer.isView(body)) return { body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
  if (body instanceof URLSearchParams) {
    defaultType('application/x-www-form-urlencoded;charset=UTF-8');
    return { body: Buffer.from(body.toString(), 'utf8') };
  }
  if (body instanceof Readable) return { body };
  if (typeof Blob !== 'undefined' && body instanceof Blob) {
    defaultType(body.type || null);
    return { body: Buffer.from(await body.arrayBuffer()) };
  }
  if (typeof FormData !== 'undefined' && body instanceof FormData) {
    // Response serializes multipart with its boundary, as fetch would.
    const encoded = new Response(body);
    defaultType(encoded.headers.get('content-type'));
    return { body: Buffer.from(await encoded.arrayBuffer()) };
  }
  if (typeof ReadableStream !== 'undefined' && body instanceof ReadableStream) {
    return { body: Readable.fromWeb(body as unknown as import('node:stream/web').ReadableStream<Uint8Array>) };
  }
  if (typeof (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') {
    return { body: Readable.from(body as AsyncIterable<Uint8Array>, { objectMode: false }) };
  }
  throw apiRequestInvalid(provider, `The body given to oauthFetch for the ${provider} API is of a type it cannot send.`);
}

function decodedStream(stream: Readable, headers: Headers): Readable {
  // As fetch does: hand over the decoded body, without the encoding headers.
  const encoding = (headers.get('content-encoding') ?? '').trim().toLowerCase();
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : encoding === 'br'
          ? createBrotliDecompress()
          : undefined;
  if (!decoder) return stream;
  headers.delete('content-encoding');
  headers.delete('content-length');
  stream.on('error', (error) => decoder.destroy(error));
  decoder.on('close', () => stream.destroy());
  return stream.pipe(decoder);
}

function toResponse(result: ApiCallResult, method: string, url: URL): Response {
  const headers = new Headers(result.headers);
  let body: BodyInit | null = null;
  if (method === 'HEAD' || NULL_BODY_STATUS.has(result.status) || result.body === null) {
    if (result.body instanceof Readable) result.body.destroy();
  } else if (Buffer.isBuffer(result.body)) {
    const decoded = headers.has('content-encoding') ? decodeForInspection(result.body, headers.get('content-encoding')) : result.body;
    if (decoded !== result.body && decoded !== undefined) {
      headers.delete('content-encoding');
      headers.delete('content-length');
    }
    body = new Uint8Array(decoded ?? result.body);
  } else {
    body = Readable.toWeb(decodedStream(result.body, headers)) as unknown as ReadableStream<Uint8Array>;
  }
  const response = new Response(body, {
    status: result.status < 200 || result.status > 599 ? 502 : result.status,
    statusText: result.statusText,
    headers,
  });
  // As on a fetch Response; the URL as asked for, before credentials were attached.
  Object.defineProperty(response, 'url', { value: url.href, enumerable: true });
  return response;
}

/**
 * A fetch-like function for handler code, bound to one request's session:
 *
 * ```ts
 * const oauthFetch = createOAuthFetch(keeper, req);
 * const res = await oauthFetch('cnblogs', '/users');
 * ```
 *
 * The token is refreshed first when due and attached the provider's way; when the
 * provider rejects it, it is refreshed once and the call retried once (bodies up to
 * `maxBufferedBodyBytes`). Redirects are returned, not followed, so credentials never
 * go elsewhere. A gzip/deflate/br answer is decoded, as fetch does.
 */
export function createOAuthFetch(keeper: ApiKeeper, req: Request, options: ApiClientOptions = {}): OAuthFetch {
  const clients = new Map<string, ApiClient>();
  return async (provider, input, init = {}) => {
    let client = clients.get(provider);
    if (!client) {
      client = new ApiClient(keeper, provider, options);
      clients.set(provider, client);
    }
    const url = client.resolve(input);
    const method = (init.method ?? 'GET').toUpperCase();
    if (!/^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$/.test(method)) {
      throw apiRequestInvalid(provider, `"${method.slice(0, 20)}" is not an HTTP method.`);
    }
    const headers = new Headers(init.headers ?? undefined);
    for (const name of TRANSPORT_HEADERS) headers.delete(name);
    const { body, length } = await fetchBody(provider, init.body, headers);
    if (body !== undefined && (method === 'GET' || method === 'HEAD')) {
      throw apiRequestInvalid(provider, `A ${method} request cannot have a body.`);
    }
    const result = await client.call(req, {
      method,
      url,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(length === undefined ? {} : { bodyLength: length }),
      ...(init.signal ? { signal: init.signal } : {}),
      ...(init.timeoutMs === undefined ? {} : { timeoutMs: init.timeoutMs }),
    });
    return toResponse(result, method, url);
  };
}
