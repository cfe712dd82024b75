import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../../errors.js';
import { loadUndici } from '../http.js';
import type { ApiRequest, ApiResponseHead } from '../../provider/types.js';
import { asError, noop, readUpTo, type ReadUpTo } from './body.js';
import { TRANSPORT_HEADERS, type CallerSignal, type DispatcherSource, type HeaderRecord, type PreparedBody } from './types.js';

/**
 * One HTTP exchange with a provider's API over an undici `Dispatcher` (a keep-alive
 * connection pool per origin, unless the app gives its own): timeout, caller abort,
 * error mapping. Chosen by measurement (bench/RESULTS.md, transport figure): undici's
 * `request()` on a pool costs less CPU per proxied answer than node:http with a keep-alive
 * agent, and far less than `fetch`.
 */


/**
 * The dispatcher of a keeper's API calls: the app's (`api: { dispatcher }` — a ProxyAgent,
 * a MockAgent, an Agent with its own TLS or pool settings), or an undici `Agent` of the
 * keeper's own, made on the first call. Idle connections of that agent never keep the
 * process alive (undici unrefs them); `close()` ends them.
 */
export class ApiTransport implements DispatcherSource {
  readonly #given: Dispatcher | undefined;
  #own: Promise<Agent> | undefined;

  constructor(dispatcher?: Dispatcher) {
    if (dispatcher !== undefined && (dispatcher === null || typeof dispatcher !== 'object' || typeof dispatcher.request !== 'function')) {
      throw configurationError('api.dispatcher must be an undici Dispatcher (an Agent, Pool, ProxyAgent, MockAgent...).');
    }
    this.#given = dispatcher;
  }

  dispatcher(): Dispatcher | Promise<Dispatcher> {
    return this.#given ?? (this.#own ??= loadUndici().then(({ Agent }) => new Agent()));
  }

  /** Closes the connections of the keeper's own agent once their calls are done; a given dispatcher is the app's to close. */
  async close(): Promise<void> {
    const own = this.#own;
    this.#own = undefined;
    await (await own)?.close();
  }
}

/** For API clients of a keeper stand-in without a transport of its own. */
export const sharedTransport = new ApiTransport();

/** The provider's answer as the transport hands it over. */
export interface Answer {
  status: number;
  statusText: string;
  headers: Headers;
  body: Readable;
}

export function headersOf(raw: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const name in raw) {
    const value = raw[name];
    if (value === undefined) continue;
    try {
      if (typeof value === 'string') headers.append(name, value);
      else for (const v of value) headers.append(name, v);
    } catch {
      // A header value fetch's Headers refuses is dropped rather than failing the call.
    }
  }
  return headers;
}

/** undici's raw headers (name, value, ...) as a {@link HeaderRecord}, in one pass. */
export function headerRecord(raw: ReadonlyArray<Buffer | string | string[]>): HeaderRecord {
  const headers = Object.create(null) as HeaderRecord;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    const rawValue = raw[i + 1]!;
    for (const one of Array.isArray(rawValue) ? rawValue : [rawValue]) {
      let value = typeof one === 'string' ? one : one.toString('latin1');
      if (value.length > 0 && (isSpace(value.charCodeAt(0)) || isSpace(value.charCodeAt(value.length - 1)))) value = value.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
      const before = headers[name];
      headers[name] = before === undefined ? value : `${before}, ${value}`;
    }
  }
  return headers;
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/** What `isTokenRejected` sees of an answer: its WHATWG `Headers` are made only if it looks at them. */
export function responseHead(status: number, record: HeaderRecord, body?: { value: unknown }): ApiResponseHead {
  let headers: Headers | undefined;
  const head = {
    status,
    get headers(): Headers {
      if (headers === undefined) {
        headers = new Headers();
        for (const name in record) {
          try {
            headers.append(name, record[name]!);
          } catch {
            // A value fetch's Headers refuses is left out, as for a fetched answer.
          }
        }
      }
      return headers;
    },
  } as ApiResponseHead;
  if (body !== undefined) head.body = body.value;
  return head;
}

export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * One attempt: its timer and the caller's abort. It is also the abort signal undici
 * watches (an EventEmitter with `aborted` and `reason`): no AbortController per call.
 */
export class Exchange extends EventEmitter {
  readonly #provider: string;
  readonly #timeoutMs: number;
  readonly #signal: CallerSignal | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #abortedBy: 'timeout' | 'caller' | undefined;
  #reason: Error | undefined;
  #response: Readable | undefined;
  readonly #onCallerAbort = () => this.#abort('caller');

  constructor(provider: string, timeoutMs: number, signal: CallerSignal | undefined) {
    super();
    this.#provider = provider;
    this.#timeoutMs = timeoutMs;
    this.#signal = signal;
    this.#timer = setTimeout(() => this.#abort('timeout'), timeoutMs);
    this.#timer.unref?.();
    signal?.addEventListener('abort', this.#onCallerAbort, { once: true });
  }

  /** For undici: whether the call is to be given up, and why. */
  get aborted(): boolean {
    return this.#abortedBy !== undefined;
  }

  get reason(): Error | undefined {
    return this.#reason;
  }

  /** Throws at once when the caller has already given up. */
  checkCaller(): void {
    if (this.#signal?.aborted) throw this.translate(undefined);
  }

  track(response: Readable): void {
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
    this.#reason = error;
    this.emit('abort');
    this.#response?.destroy(error);
  }

  /** The error to raise for a transport failure, by what caused it. */
  translate(cause: unknown): unknown {
    return transportError(this.#provider, this.#timeoutMs, this.#abortedBy ?? (this.#signal?.aborted ? 'caller' : undefined), this.#signal, cause);
  }
}

/** The error a failed exchange raises: by who gave it up (`abortedBy`), else by its cause. */
export function transportError(
  provider: string,
  timeoutMs: number,
  abortedBy: 'timeout' | 'caller' | undefined,
  signal: CallerSignal | undefined,
  cause: unknown,
): unknown {
  if (abortedBy === 'timeout') {
    return new OAuthKeeperError(ErrorCodes.API_UPSTREAM_TIMEOUT, `The ${provider} API did not answer within ${timeoutMs} ms.`, {
      provider,
      transient: true,
    });
  }
  if (abortedBy === 'caller') return signal?.reason ?? new DOMException('The API call was aborted.', 'AbortError');
  if (cause instanceof OAuthKeeperError) return cause;
  const code = (cause as { code?: unknown } | undefined)?.code;
  return new OAuthKeeperError(
    ErrorCodes.API_UPSTREAM_FAILED,
    `The ${provider} API could not be reached or broke off its answer${typeof code === 'string' && /^[A-Z_]+$/.test(code) ? ` (${code})` : ''}; try again later.`,
    { provider, transient: true, ...(cause === undefined ? {} : { cause }) },
  );
}

/** What undici is given for one request (without its signal): target, headers and body. */
export function dispatchOptions(request: ApiRequest, body: PreparedBody): Dispatcher.DispatchOptions {
  const url = request.url;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw configurationError('An API binding produced a request that is not http(s).');
  const headers: string[] = [];
  request.headers.forEach((value, name) => {
    if (!TRANSPORT_HEADERS.has(name)) headers.push(name, value);
  });
  let payload: Buffer | Readable | null = null;
  if (request.body !== undefined) {
    payload = request.body;
    if (request.body.length > 0 || (request.method !== 'GET' && request.method !== 'HEAD')) headers.push('content-length', String(request.body.length));
  } else if (body.kind === 'stream') {
    payload = body.stream;
    if (body.length !== undefined) headers.push('content-length', String(body.length));
  }
  return {
    origin: url.origin,
    path: url.pathname + url.search,
    method: request.method as Dispatcher.HttpMethod,
    headers,
    body: payload,
    // The exchange keeps the time; a streamed answer may take as long as it takes.
    headersTimeout: 0,
    bodyTimeout: 0,
  };
}

export async function send(request: ApiRequest, body: PreparedBody, exchange: Exchange, transport: DispatcherSource): Promise<Answer> {
  const options = dispatchOptions(request, body);
  let data: Dispatcher.ResponseData;
  try {
    const dispatcher = await transport.dispatcher();
    data = await dispatcher.request({ ...options, signal: exchange } as Dispatcher.RequestOptions);
  } catch (cause) {
    throw exchange.translate(cause);
  }
  exchange.track(data.body);
  return { status: data.statusCode, statusText: data.statusText ?? '', headers: headersOf(data.headers), body: data.body };
}

export async function readBuffered(response: Readable, limit: number, exchange: Exchange, provider: string): Promise<Buffer> {
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
