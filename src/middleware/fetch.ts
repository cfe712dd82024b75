import { Readable } from 'node:stream';
import type { Request } from 'express';
import { ApiClient } from '../lib/api/client.js';
import { decodeBuffered, decodedStream } from '../lib/api/decode.js';
import { apiRequestInvalid, TRANSPORT_HEADERS, type ApiCallResult, type ApiClientOptions, type ApiKeeper, type ApiSession } from '../lib/api/types.js';
import { ownerOf } from '../passport/session.js';

/** `req.oauthFetch`: the API client behind a fetch-shaped function that answers a standard `Response`. */

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

async function toResponse(result: ApiCallResult, method: string, url: URL): Promise<Response> {
  // The answer's own headers (the Response copies them once more).
  const headers = result.headers;
  let body: BodyInit | null = null;
  if (method === 'HEAD' || NULL_BODY_STATUS.has(result.status) || result.body === null) {
    if (result.body instanceof Readable) result.body.destroy();
  } else if (Buffer.isBuffer(result.body)) {
    const decoded = headers.has('content-encoding') ? await decodeBuffered(result.body, headers.get('content-encoding')) : result.body;
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
  return fetchFor(apiClients(keeper, options), () => ({ owner: ownerOf(req, false), request: req }));
}

/** One {@link ApiClient} per provider, made on first use (each checks its configuration once). */
export function apiClients(keeper: ApiKeeper, options: ApiClientOptions = {}): (provider: string) => ApiClient {
  const clients = new Map<string, ApiClient>();
  return (provider) => {
    let client = clients.get(provider);
    if (!client) {
      client = new ApiClient(keeper, provider, options);
      clients.set(provider, client);
    }
    return client;
  };
}

/** The fetch-shaped call of `session` (a request's, or a worker's owner) through the API clients. */
export function fetchFor(clientFor: (provider: string) => ApiClient, session: () => ApiSession): OAuthFetch {
  return async (provider, input, init = {}) => {
    const client = clientFor(provider);
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
    const result = await client.call(session(), {
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
