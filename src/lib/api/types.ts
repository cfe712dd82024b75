import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import type { ApiResponseHead, ProviderDefinition, ProviderOptions } from '../../provider/types.js';
import type { RefreshCoordinator } from '../refresh.js';
import type { TokenClient } from '../token-client.js';

/**
 * The shapes of one downstream API call, shared by the client, the transport and the
 * middleware that mount them.
 */

/** What an API call needs of one provider: its definition, options and token client. */
export interface ApiProvider {
  readonly provider: ProviderDefinition<ProviderOptions>;
  readonly options: Readonly<ProviderOptions>;
  readonly tokens: TokenClient<ProviderOptions>;
}

/** The part of the keeper an API call needs. */
export interface ApiKeeper {
  strategy(provider: string): ApiProvider;
  readonly refresher: Pick<RefreshCoordinator, 'forRequest' | 'replaceRejected'>;
  /** @internal The keeper's connection pool (or the app's dispatcher); without one, a pool shared by such keepers. */
  readonly apiTransport?: DispatcherSource;
}

/** Where API calls get their dispatcher (an `ApiTransport`). */
export interface DispatcherSource {
  dispatcher(): Dispatcher | Promise<Dispatcher>;
}

/**
 * Whose call it is: the token owner (none: not logged in) and, for a web request, the
 * object that lives as long as the request, under which its token set is read once and
 * refreshed at most once. Without it (a worker), each call is its own unit.
 */
export interface ApiSession {
  owner: string | undefined;
  request?: object;
}

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

/** The keeper's `api` option: the options of every API call it makes, and how they travel. */
export interface KeeperApiOptions extends ApiClientOptions {
  /**
   * The undici `Dispatcher` every API call of the keeper goes through — the proxy,
   * `req.oauthFetch` and `forOwner(key).fetch`: a `ProxyAgent`, an `Agent` with its own
   * TLS or pool settings, a `MockAgent` in tests. The app closes it. Default: a keep-alive
   * `Agent` of the keeper's own (one pool per origin), closed by `keeper.close()`.
   */
  dispatcher?: Dispatcher;
}

export const API_DEFAULTS = Object.freeze({
  timeoutMs: 30_000,
  maxBufferedBodyBytes: 1024 * 1024,
  maxBufferedResponseBytes: 8 * 1024 * 1024,
});

/** Error answers up to this size are read to let `isTokenRejected` see their body. */
export const INSPECT_LIMIT = 64 * 1024;

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

/** What a call uses of its caller's abort signal: an `AbortSignal` is one. */
export interface CallerSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

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
  signal?: CallerSignal;
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

export type PreparedBody =
  | { kind: 'none' }
  | { kind: 'buffer'; buffer: Buffer }
  | { kind: 'stream'; stream: Readable; length: number | undefined };

export function apiRequestInvalid(provider: string, message: string, status = 400): OAuthKeeperError {
  return new OAuthKeeperError(ErrorCodes.API_REQUEST_INVALID, message, { provider, status });
}

export function authorizationRequired(provider: string): OAuthKeeperError {
  return new OAuthKeeperError(
    ErrorCodes.AUTHORIZATION_REQUIRED,
    `This call needs a ${provider} authorization for the session; log in with ${provider} first.`,
    { provider },
  );
}

/** An answer's headers by lowercase name, repeated ones joined with ", " (as `Headers` does), values trimmed. */
export type HeaderRecord = Record<string, string>;

/** What the relay writes to: an `http.ServerResponse` is one. */
export interface RelayResponse {
  readonly destroyed: boolean;
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): unknown;
  destroy(): unknown;
  on(event: 'drain', listener: () => void): unknown;
  removeListener(event: 'drain', listener: () => void): unknown;
}

/** Where a relayed answer goes. */
export interface RelayTarget {
  readonly res: RelayResponse;
  /** Sets the status and headers (already free of the call's secrets) on `res`, keeping back what must not return. */
  head(status: number, headers: Readonly<HeaderRecord>): void;
}

/**
 * `forms`: the byte forms of the call's secrets (none: nothing to mask, nothing to decode);
 * `isTokenRejected`: the binding's on a first attempt, undefined on a retry; `body`: a
 * streamed request body, whose failure fails the call.
 */
export interface RelaySettings {
  provider: string;
  method: string;
  timeoutMs: number;
  signal: CallerSignal | undefined;
  forms: readonly Buffer[];
  scrubHeaders(headers: HeaderRecord): void;
  isTokenRejected: ((head: ApiResponseHead) => boolean) | undefined;
  body: Readable | undefined;
}
