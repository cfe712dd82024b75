import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../../errors.js';
import type { ApiRequest } from '../../provider/types.js';
import { asError, noop, readUpTo, type ReadUpTo } from './body.js';
import { TRANSPORT_HEADERS, type PreparedBody } from './types.js';

/** One HTTP exchange over node:http(s) with a keep-alive-free request: timeout, caller abort, error mapping. */

export function headersOf(response: IncomingMessage): Headers {
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

export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

export class Exchange {
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

export function send(request: ApiRequest, body: PreparedBody, exchange: Exchange): Promise<IncomingMessage> {
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

export async function readBuffered(response: IncomingMessage, limit: number, exchange: Exchange, provider: string): Promise<Buffer> {
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
