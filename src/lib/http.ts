import { EventEmitter } from 'node:events';
import type { Dispatcher } from 'undici';
import { ErrorCodes, OAuthKeeperError } from '../errors.js';

/** A `fetch` to use instead of the global one (a proxy agent, instrumentation, a test double). */
export type FetchLike = (input: string | URL, init: RequestInit) => Promise<Response>;

/** How a call to a provider is made: its timeout and the fetch that makes it. */
export interface HttpOptions {
  timeoutMs?: number;
  fetch?: FetchLike;
}

/** The transport options of a provider's options object (or a bare timeout, as earlier versions took). */
export function httpOptionsOf(from: { timeoutMs?: number | undefined; fetch?: FetchLike | undefined } | number | undefined): HttpOptions {
  if (typeof from === 'number') return { timeoutMs: from };
  return {
    ...(from?.timeoutMs === undefined ? {} : { timeoutMs: from.timeoutMs }),
    ...(from?.fetch === undefined ? {} : { fetch: from.fetch }),
  };
}

export interface HttpRequest extends HttpOptions {
  method: 'GET' | 'POST';
  url: string | URL;
  headers?: Record<string, string>;
  body?: string;
  /** Largest body read, in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  /** The raw body text, exactly as received (signature checks need the raw text). */
  text: string;
}

/** Thrown on transport failures (DNS, refused, reset, timeout, oversized body). */
export class TransportError extends Error {
  readonly timedOut: boolean;
  constructor(message: string, timedOut: boolean, cause?: unknown) {
    super(message, { cause });
    this.name = 'TransportError';
    this.timedOut = timedOut;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BODY = 1024 * 1024;

/**
 * Without a `fetch` of the strategy's, provider calls go through one undici `Agent` per
 * process: keep-alive connections to each provider (idle ones do not hold the process
 * open: undici unrefs them), no WHATWG Request/Response/stream objects per call — a
 * fraction of the global fetch's CPU (bench/RESULTS.md, transport figure). Loaded on the
 * first provider call.
 */
let loading: Promise<typeof import('undici')> | undefined;
/** undici, loaded on first use: an app that never calls a provider or an API does not pay for it at start-up. */
export const loadUndici = (): Promise<typeof import('undici')> => (loading ??= import('undici'));
let pool: Promise<Dispatcher> | undefined;
const sharedPool = (): Promise<Dispatcher> => (pool ??= loadUndici().then(({ Agent }) => new Agent()));

/** A provider call: a timeout for the whole exchange, a size cap, the body as text; redirects are not followed. */
export async function httpRequest(request: HttpRequest): Promise<HttpResponse> {
  return request.fetch === undefined ? viaPool(request) : viaFetch(request, request.fetch);
}

async function viaPool(request: HttpRequest): Promise<HttpResponse> {
  const timeoutMs = request.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBody = request.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const url = typeof request.url === 'string' ? new URL(request.url) : request.url;
  // An EventEmitter is a signal undici takes, without an AbortSignal's timer and DOMException per call.
  const signal = new EventEmitter();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    signal.emit('abort');
  }, timeoutMs);
  try {
    let answer: Dispatcher.ResponseData;
    try {
      answer = await (await sharedPool()).request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: request.method,
        ...(request.headers === undefined ? {} : { headers: request.headers }),
        ...(request.body === undefined ? {} : { body: request.body }),
        signal,
      });
    } catch (cause) {
      throw new TransportError(timedOut ? `no answer within ${timeoutMs} ms` : 'the connection failed', timedOut, cause);
    }
    const text = await readText(answer.body, maxBody, timeoutMs, () => timedOut, () => answer.body.destroy());
    const headers = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      if (Array.isArray(value)) for (const one of value) headers.append(name, one);
      else if (value !== undefined) headers.append(name, value);
    }
    return { status: answer.statusCode, headers, text };
  } finally {
    clearTimeout(timer);
  }
}

/** Through the strategy's own `fetch`. */
async function viaFetch(request: HttpRequest, send: FetchLike): Promise<HttpResponse> {
  const timeoutMs = request.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBody = request.maxBodyBytes ?? DEFAULT_MAX_BODY;
  let response: Response;
  try {
    response = await send(request.url, {
      method: request.method,
      ...(request.headers === undefined ? {} : { headers: request.headers }),
      ...(request.body === undefined ? {} : { body: request.body }),
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (cause) {
    const timedOut = (cause as Error)?.name === 'TimeoutError';
    throw new TransportError(timedOut ? `no answer within ${timeoutMs} ms` : 'the connection failed', timedOut, cause);
  }
  const body = response.body as unknown as AsyncIterable<Uint8Array> | null;
  const text = body === null ? '' : await readText(body, maxBody, timeoutMs, (cause) => (cause as Error)?.name === 'TimeoutError', () => undefined);
  return { status: response.status, headers: response.headers, text };
}

/**
 * A body as UTF-8 text, at most `maxBody` bytes (`stop` ends a larger one); a read that
 * breaks off is a TransportError, timed out when `timedOut(cause)` says so.
 */
async function readText(
  body: AsyncIterable<Uint8Array>,
  maxBody: number,
  timeoutMs: number,
  timedOut: (cause: unknown) => boolean,
  stop: () => void,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.byteLength;
      if (size > maxBody) {
        stop();
        throw new TransportError(`the answer is larger than ${maxBody} bytes`, false);
      }
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    }
  } catch (cause) {
    if (cause instanceof TransportError) throw cause;
    const late = timedOut(cause);
    throw new TransportError(late ? `no complete answer within ${timeoutMs} ms` : 'the answer was cut off', late, cause);
  }
  return chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
}

/** The first error of `type` in an error's cause chain (a few levels deep), e.g. ours wrapped by a library. */
export function findCause<T>(error: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth += 1) {
    if (e instanceof type) return e;
  }
  return undefined;
}

/** Parses JSON without throwing; `undefined` when the text is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The error a token request raises when the endpoint could not be used at all. */
export function tokenTransportError(provider: string, cause: TransportError): OAuthKeeperError {
  return new OAuthKeeperError(
    ErrorCodes.TOKEN_ENDPOINT_FAILED,
    `The ${provider} token endpoint could not be reached: ${cause.message}. Check the provider's URL options and network.`,
    { provider, cause, transient: true, status: cause.timedOut ? 504 : 502 },
  );
}
