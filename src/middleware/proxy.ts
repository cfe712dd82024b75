import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';
import { ApiClient } from '../lib/api/client.js';
import { API_DEFAULTS, TRANSPORT_HEADERS, type ApiCallResult, type ApiClientOptions, type ApiKeeper, type CallerSignal, type RelayTarget } from '../lib/api/types.js';
import { isUnderBase } from '../lib/api/url-guard.js';
import { ownerOf } from '../passport/session.js';
import { sendError } from './respond.js';

/** Which incoming request headers go upstream (credentials and hop-by-hop headers never do). */
export type ForwardHeadersOption =
  /** Only these (plus `content-type` and `content-encoding` of a body). */
  | { allow: readonly string[] }
  /** Everything except these; replaces the default deny-list (`Origin`, `Referer`, `Forwarded`, `Via`, `X-Forwarded-*`, `X-Real-IP`, `Sec-*`). */
  | { deny: readonly string[] };

export interface ProxyOptions extends ApiClientOptions {
  /** Methods forwarded; others get 405. Default GET, HEAD, POST, PUT, PATCH, DELETE. */
  allowedMethods?: readonly string[];
  /** Default: every header except the deny-list (`Origin`, `Referer`, `Forwarded`, `Via`, `X-Forwarded-*`, `X-Real-IP`, `Sec-*`) and the never-forwarded ones. */
  forwardHeaders?: ForwardHeadersOption;
  /** Replaces the default error answer (JSON with the error's code and message). */
  onError?: (error: OAuthKeeperError, req: Request, res: Response, next: NextFunction) => void;
}

export const DEFAULT_ALLOWED_METHODS: readonly string[] = Object.freeze(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Never forwarded, whatever `forwardHeaders` says: the app's own credentials and
 * cookies (the provider's credentials are attached by its binding), the host, and the
 * hop-by-hop headers of RFC 9110 §7.6.1 (plus any a `Connection` header names).
 */
export const NEVER_FORWARDED_REQUEST_HEADERS: readonly string[] = Object.freeze(['cookie', 'authorization', 'proxy-authorization', ...TRANSPORT_HEADERS]);

/**
 * Not forwarded by default: where the browser was and who the user is on the network
 * are the app's business, not the provider's. `sec-*` headers are dropped as well.
 */
export const DEFAULT_DENIED_REQUEST_HEADERS: readonly string[] = Object.freeze([
  'origin',
  'referer',
  'forwarded',
  'via',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-real-ip',
]);

/** Never passed back to the client: the provider's cookies and the hop-by-hop headers. */
export const NEVER_RETURNED_RESPONSE_HEADERS: readonly string[] = Object.freeze([
  'set-cookie',
  'set-cookie2',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const NEVER_FORWARDED = new Set(NEVER_FORWARDED_REQUEST_HEADERS);
const NEVER_RETURNED = new Set(NEVER_RETURNED_RESPONSE_HEADERS);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

const NONE: ReadonlySet<string> = new Set();
/** The `Connection` values nearly every message carries, answered without parsing. */
const COMMON_CONNECTION: ReadonlyMap<string, ReadonlySet<string>> = new Map(['keep-alive', 'close', 'Keep-Alive', 'Close'].map((v) => [v, new Set([v.toLowerCase()])]));

/** Names a `Connection` header lists: hop-by-hop for this hop only. */
function connectionNames(value: string | string[] | null | undefined): ReadonlySet<string> {
  if (value === undefined || value === null) return NONE;
  const common = typeof value === 'string' ? COMMON_CONNECTION.get(value) : undefined;
  if (common !== undefined) return common;
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(
    text
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
}

type HeaderPolicy = { kind: 'allow'; names: Set<string> } | { kind: 'deny'; names: Set<string>; denySec: boolean };

function headerPolicy(option: ForwardHeadersOption | undefined): HeaderPolicy {
  if (option === undefined) return { kind: 'deny', names: new Set(DEFAULT_DENIED_REQUEST_HEADERS), denySec: true };
  const list = 'allow' in option ? option.allow : 'deny' in option ? option.deny : undefined;
  if (!Array.isArray(list) || !list.every((name) => typeof name === 'string' && HEADER_NAME.test(name.toLowerCase()))) {
    throw configurationError('proxy forwardHeaders must be { allow: [header names] } or { deny: [header names] }.');
  }
  const names = new Set(list.map((name) => name.toLowerCase()));
  return 'allow' in option ? { kind: 'allow', names } : { kind: 'deny', names, denySec: false };
}

/** The incoming headers that may go upstream under `policy`. */
export function forwardableRequestHeaders(incoming: IncomingHttpHeaders, forwardHeaders?: ForwardHeadersOption): Headers {
  return filterRequestHeaders(incoming, headerPolicy(forwardHeaders));
}

function filterRequestHeaders(incoming: IncomingHttpHeaders, policy: HeaderPolicy): Headers {
  const hopByHop = connectionNames(incoming['connection']);
  const headers = new Headers();
  for (const name in incoming) {
    const value = incoming[name];
    if (value === undefined) continue;
    // Node gives the names in lower case already.
    const lower = name.toLowerCase();
    if (NEVER_FORWARDED.has(lower) || hopByHop.has(lower)) continue;
    if (policy.kind === 'allow') {
      if (!policy.names.has(lower) && lower !== 'content-type' && lower !== 'content-encoding') continue;
    } else if (policy.names.has(lower) || (policy.denySec && lower.startsWith('sec-'))) {
      continue;
    }
    try {
      if (typeof value === 'string') headers.append(lower, value);
      else for (const v of value) headers.append(lower, v);
    } catch {
      // A value fetch's Headers refuses is not forwarded.
    }
  }
  return headers;
}

/** The upstream headers that may be passed back to the client. */
export function returnableResponseHeaders(upstream: Headers): Headers {
  const headers = new Headers();
  forEachReturnable(upstream, (value, name) => headers.append(name, value));
  return headers;
}

function forEachReturnable(upstream: Headers, each: (value: string, name: string) => void): void {
  const hopByHop = connectionNames(upstream.get('connection'));
  upstream.forEach((value, name) => {
    if (!NEVER_RETURNED.has(name) && !hopByHop.has(name)) each(value, name);
  });
}

/**
 * The abort signal of one proxied request: set when the client goes away before its
 * answer is complete. Lighter than an AbortController; what the API client needs of one.
 */
class ClientGone implements CallerSignal {
  aborted = false;
  reason: unknown = undefined;
  #listeners: Array<() => void> = [];

  constructor(res: Response) {
    res.once('close', () => {
      if (res.writableFinished) return;
      this.aborted = true;
      this.reason = new DOMException('The client went away.', 'AbortError');
      for (const listener of this.#listeners.splice(0)) listener();
    });
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.#listeners.indexOf(listener);
    if (at !== -1) this.#listeners.splice(at, 1);
  }
}

function hasBody(req: Request): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

function formEncode(value: unknown, key: string, out: URLSearchParams): void {
  if (value === undefined) return;
  if (value === null) {
    out.append(key, '');
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => formEncode(item, typeof item === 'object' && item !== null ? `${key}[${index}]` : key, out));
  } else if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) formEncode(v, key === '' ? k : `${key}[${k}]`, out);
  } else {
    out.append(key, String(value));
  }
}

/**
 * A body already read by express.json()/urlencoded()/text()/raw(), serialized again
 * for its content type. Parsers decode `Content-Encoding`, so the bytes go as identity.
 */
function reserializeParsedBody(req: Request, provider: string, headers: Headers): Buffer | undefined {
  const body: unknown = req.body;
  if (body === undefined || body === null) {
    if (!hasBody(req)) return undefined;
    throw new OAuthKeeperError(
      ErrorCodes.API_REQUEST_INVALID,
      `The request body was read before the ${provider} proxy and left no req.body; mount the proxy before the middleware that reads bodies.`,
      { provider, status: 500 },
    );
  }
  headers.delete('content-encoding');
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  const type = (headers.get('content-type') ?? '').toLowerCase();
  if (/^application\/([\w.+-]+\+)?json\b/.test(type) || /^[\w.+-]+\/[\w.+-]+\+json\b/.test(type)) {
    return Buffer.from(JSON.stringify(body), 'utf8');
  }
  if (type.startsWith('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams();
    formEncode(body, '', form);
    return Buffer.from(form.toString(), 'utf8');
  }
  throw new OAuthKeeperError(
    ErrorCodes.API_REQUEST_INVALID,
    `A body parser read this ${type || 'untyped'} request body before the ${provider} proxy, and it cannot be sent again as it was; mount the proxy before the body parser.`,
    { provider, status: 415 },
  );
}

function requestBody(req: Request, provider: string, headers: Headers): { body?: Buffer | Readable; length?: number } {
  // A body parser that ran has consumed the stream: send its result instead.
  if (req.readableEnded) {
    const body = reserializeParsedBody(req, provider, headers);
    return body === undefined ? {} : { body };
  }
  if (!hasBody(req)) return {};
  const declared = req.headers['content-length'];
  const length = declared === undefined || req.headers['transfer-encoding'] !== undefined ? undefined : Number(declared);
  return { body: req, ...(length !== undefined && Number.isSafeInteger(length) ? { length } : {}) };
}

function rewriteLocation(value: string, target: URL, base: URL, mountPath: string): string {
  let location: URL;
  try {
    location = new URL(value, target);
  } catch {
    return value;
  }
  if (!isUnderBase(base, location)) return value;
  const rest = location.pathname.slice(base.pathname.replace(/\/+$/, '').length);
  const path = `${mountPath.replace(/\/+$/, '')}${rest}` || '/';
  return path + location.search + location.hash;
}

/** What the proxy uses of a keeper (a `Keeper` is one). */
export interface ProxyKeeper extends ApiKeeper {
  loginURL(provider: string): string;
}

/**
 * Forwards requests under its mount path to a provider's API, with the session's
 * credentials attached the provider's way:
 *
 * ```ts
 * app.use('/api/di', keeper.ensureAuthorized('di', { unauthorized: 'status' }), createProxy(keeper, 'di'));
 * ```
 *
 * - The token is refreshed first when due; when the provider rejects it, it is
 *   refreshed once and the request retried once (bodies up to `maxBufferedBodyBytes`).
 * - A request never leaves the API's host and base path: absolute URLs, `//`, `..`
 *   (raw or encoded), backslashes, `@` and control characters are refused with 400.
 * - The app's cookies and `Authorization`, `Host` and hop-by-hop headers are not
 *   forwarded; the provider's `Set-Cookie` and hop-by-hop headers are not returned.
 * - Answers stream back with backpressure; the upstream call is aborted when the
 *   client goes away. Failures answer JSON: 502 unreachable, 504 timed out, 401 no
 *   (usable) authorization, 503 refresh unavailable (with `Retry-After`).
 */
export function createProxy(keeper: ProxyKeeper, provider: string, options: ProxyOptions = {}): RequestHandler {
  const client = new ApiClient(keeper, provider, {
    timeoutMs: options.timeoutMs ?? API_DEFAULTS.timeoutMs,
    maxBufferedBodyBytes: options.maxBufferedBodyBytes ?? API_DEFAULTS.maxBufferedBodyBytes,
    maxBufferedResponseBytes: options.maxBufferedResponseBytes ?? API_DEFAULTS.maxBufferedResponseBytes,
  });
  const methods = options.allowedMethods ?? DEFAULT_ALLOWED_METHODS;
  if (!Array.isArray(methods) || methods.length === 0 || !methods.every((m) => typeof m === 'string' && /^[A-Za-z]+$/.test(m))) {
    throw configurationError(`proxy allowedMethods must be a non-empty list of HTTP methods, such as ${JSON.stringify(DEFAULT_ALLOWED_METHODS)}.`);
  }
  const allowed = new Set(methods.map((m) => m.toUpperCase()));
  const allowHeader = [...allowed].join(', ');
  const policy = headerPolicy(options.forwardHeaders);
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw configurationError('proxy onError must be a function (error, req, res, next).');
  }

  const fail = (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (!(error instanceof OAuthKeeperError)) {
      // The client went away (abort), or a bug: not an answer to shape here.
      if (res.destroyed || req.destroyed) return;
      return next(error);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error.retryAfter !== undefined) res.set('retry-after', String(error.retryAfter));
    if (options.onError) return options.onError(error, req, res, next);
    sendError(req, res, error, (name) => keeper.loginURL(name), true);
  };

  return (req, res, next) => {
    const method = req.method.toUpperCase();
    if (!allowed.has(method)) {
      res.set('allow', allowHeader);
      return fail(
        new OAuthKeeperError(ErrorCodes.API_REQUEST_INVALID, `The ${provider} API proxy does not forward ${method} requests.`, { provider, status: 405 }),
        req,
        res,
        next,
      );
    }
    let target: URL;
    try {
      target = client.resolvePath(req.url);
    } catch (error) {
      return fail(error, req, res, next);
    }
    const gone = new ClientGone(res);
    void (async () => {
      try {
        const headers = filterRequestHeaders(req.headers, policy);
        const { body, length } = requestBody(req, provider, headers);
        const session = { owner: ownerOf(req, false), request: req };
        const call = {
          method,
          url: target,
          headers,
          signal: gone,
          ...(body === undefined ? {} : { body }),
          ...(length === undefined ? {} : { bodyLength: length }),
        };
        if (client.relays) {
          // The answer goes straight into res (see lib/api/relay.ts).
          await client.relay(session, call, proxyAnswer(req, res, target, client.baseURL));
          return;
        }
        const result = await client.call(session, call);
        if (gone.aborted) {
          if (result.body instanceof Readable) result.body.destroy();
          return;
        }
        answer(req, res, result, target, client.baseURL);
      } catch (error) {
        // The client went away: nobody is left to answer.
        if (gone.aborted) return;
        fail(error, req, res, next);
      }
    })();
  };
}

/** Where the relay writes an answer: `res`, with only the returnable headers, a Location under the base rewritten under the mount. */
function proxyAnswer(req: Request, res: Response, target: URL, base: URL): RelayTarget {
  return {
    res,
    head(status, headers) {
      res.statusCode = status;
      const hopByHop = headers['connection'] === undefined ? NONE : connectionNames(headers['connection']);
      for (const name in headers) {
        if (NEVER_RETURNED.has(name) || hopByHop.has(name)) continue;
        const value = headers[name]!;
        res.setHeader(name, name === 'location' ? rewriteLocation(value, target, base, req.baseUrl) : value);
      }
    },
  };
}

function answer(req: Request, res: Response, result: ApiCallResult, target: URL, base: URL): void {
  res.status(result.status);
  forEachReturnable(result.headers, (value, name) => res.setHeader(name, name === 'location' ? rewriteLocation(value, target, base, req.baseUrl) : value));
  const body = result.body;
  if (body === null || req.method === 'HEAD') {
    if (body instanceof Readable) body.destroy();
    res.end();
    return;
  }
  if (Buffer.isBuffer(body)) {
    res.setHeader('content-length', String(body.length));
    res.end(body);
    return;
  }
  // Not stream.pipeline: it makes an AbortController (and a DOMException) per call.
  // The client went away or the upstream broke off mid-answer: nothing left to say.
  body.on('error', () => {
    if (!res.destroyed) res.destroy();
  });
  res.once('close', () => {
    if (!body.destroyed) body.destroy();
  });
  body.pipe(res);
}
