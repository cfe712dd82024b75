import { Readable } from 'node:stream';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../../errors.js';
import type { ApiBinding, ApiRequest, ApiResponseHead, ProviderOptions } from '../../provider/types.js';
import { observeApiCall } from '../events.js';
import type { TokenSet } from '../token-set.js';
import { readUpTo, type ReadUpTo } from './body.js';
import { attachedSecretValues, scrubCredentials, scrubHeaderRecord, scrubResult, SecretFormCache, type Secrets } from './credentials.js';
import { inspectBody } from './decode.js';
import { RelayAttempt, type RelayDecision } from './relay.js';
import { dispatchOptions, Exchange, hasNoBody, readBuffered, send, sharedTransport, transportError } from './transport.js';
import {
  API_DEFAULTS,
  apiRequestInvalid,
  authorizationRequired,
  INSPECT_LIMIT,
  type ApiCall,
  type ApiCallResult,
  type ApiClientOptions,
  type ApiKeeper,
  type ApiSession,
  type DispatcherSource,
  type PreparedBody,
  type RelayTarget,
} from './types.js';
import { resolveApiInput, resolveApiPath } from './url-guard.js';

/**
 * Calls a provider's downstream API for the user of one session: the token is
 * refreshed first when it is about to expire, attached the provider's way, and when
 * the provider rejects it the token is refreshed once and the call retried once.
 * Shared by the proxy middleware and `req.oauthFetch`; knows nothing of Express.
 */

interface Attempt {
  rejected: boolean;
  result: ApiCallResult;
}

/** A call's start (see `ApiClient#begin`). */
interface Begun {
  provider: string;
  strategy: ReturnType<ApiKeeper['strategy']>;
  refresher: ApiKeeper['refresher'];
  owner: string;
  request: object;
  tokenSet: TokenSet;
  body: PreparedBody;
}

/** One attempt's request, as sent and as it was before the binding attached the credentials. */
interface Prepared {
  method: string;
  request: ApiRequest;
  unattached: ApiRequest;
  options: ProviderOptions;
  secrets: Secrets;
}

/** What a relayed call answered (the answer itself went to the target). */
export interface RelayResult {
  status: number;
  retried: boolean;
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
  readonly #transport: DispatcherSource;
  readonly #secrets = new SecretFormCache();

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
    this.#transport = keeper.apiTransport ?? sharedTransport;
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
   * Performs the call for `session` (its token owner, and the request its token set is read once for, if any). Throws OAuthKeeperError:
   * AUTHORIZATION_REQUIRED / REAUTHORIZATION_REQUIRED (401), REFRESH_UNAVAILABLE (503),
   * API_UPSTREAM_FAILED (502), API_UPSTREAM_TIMEOUT (504), API_REQUEST_INVALID, or what
   * the provider's binding throws; rejects with the signal's reason when aborted.
   */
  call(session: ApiSession, call: ApiCall): Promise<ApiCallResult> {
    return observeApiCall(this.#keeper.refresher, this.provider, () => this.#call(session, call));
  }

  /**
   * Whether {@link ApiClient.relay} can carry this provider's answers (a binding that reads
   * answers whole, `readResponse`, needs {@link ApiClient.call}).
   */
  get relays(): boolean {
    return this.#binding.readResponse === undefined;
  }

  /**
   * {@link ApiClient.call}, with the answer written straight into `target` (the proxy's
   * response) instead of handed back: the same token handling, retry and masking, without
   * a readable body in between. Resolves once the answer is committed to the target (its
   * status set, its body on the way); throws as `call` does while nothing is committed.
   * Once committed, a failure (the client going away, the upstream breaking off) ends the
   * target's response.
   */
  relay(session: ApiSession, call: ApiCall, target: RelayTarget): Promise<RelayResult> {
    return observeApiCall(this.#keeper.refresher, this.provider, () => this.#relay(session, call, target));
  }

  /**
   * What every call starts with: the session's current token set (read once per request,
   * refreshed when due) and the body as it will be sent.
   */
  async #begin(session: ApiSession, call: ApiCall): Promise<Begun> {
    const provider = this.provider;
    const strategy = this.#keeper.strategy(provider);
    const refresher = this.#keeper.refresher;
    const { owner } = session;
    // Without a request (a worker's call), the call itself is the unit: one read, one refresh cycle, one budget.
    const request = session.request ?? {};
    if (!owner) throw authorizationRequired(provider);
    const tokenSet = await refresher.forRequest(request, owner, strategy.tokens);
    if (!tokenSet) throw authorizationRequired(provider);
    return { provider, strategy, refresher, owner, request, tokenSet, body: await this.#prepareBody(call) };
  }

  async #relay(session: ApiSession, call: ApiCall, target: RelayTarget): Promise<RelayResult> {
    const { provider, strategy, refresher, owner, request, tokenSet, body } = await this.#begin(session, call);

    const first = await this.#relayAttempt(call, body, tokenSet, true, target);
    const held = first.held;
    if (held === undefined) return { status: first.status, retried: false };

    let next: TokenSet | null;
    try {
      next = await refresher.replaceRejected(request, owner, strategy.tokens, tokenSet.accessToken);
    } catch (error) {
      held.discard();
      throw error;
    }
    if (!next) {
      held.discard();
      throw authorizationRequired(provider);
    }
    if (call.signal?.aborted) {
      held.discard();
      throw transportError(provider, this.timeoutMs, 'caller', call.signal, undefined);
    }
    // A streamed body cannot be sent twice; the same token back means nothing to retry with.
    if (body.kind === 'stream' || next.accessToken === tokenSet.accessToken) {
      held.deliver();
      return { status: first.status, retried: false };
    }
    held.discard();
    const second = await this.#relayAttempt(call, body, next, false, target);
    return { status: second.status, retried: true };
  }

  async #relayAttempt(call: ApiCall, body: PreparedBody, tokenSet: TokenSet, inspect: boolean, target: RelayTarget): Promise<RelayDecision> {
    const { method, request, unattached, secrets } = await this.#prepare(call, body, tokenSet);
    const options = dispatchOptions(request, body);
    const texts = secrets.texts;
    const attempt = new RelayAttempt(
      {
        provider: this.provider,
        method,
        timeoutMs: call.timeoutMs ?? this.timeoutMs,
        signal: call.signal,
        forms: secrets.forms,
        scrubHeaders: (headers) => scrubHeaderRecord(headers, request, unattached, texts),
        isTokenRejected: inspect ? this.#binding.isTokenRejected : undefined,
        body: body.kind === 'stream' ? body.stream : undefined,
      },
      target,
    );
    attempt.checkCaller();
    const source = this.#transport.dispatcher();
    const dispatcher = source instanceof Promise ? await source : source;
    try {
      dispatcher.dispatch(options, attempt);
    } catch (error) {
      attempt.onError(error as Error);
    }
    return attempt.decided;
  }

  async #call(session: ApiSession, call: ApiCall): Promise<ApiCallResult> {
    const { provider, strategy, refresher, owner, request, tokenSet, body } = await this.#begin(session, call);

    const first = await this.#attempt(call, body, tokenSet, true);
    if (!first.rejected) return first.result;

    let next: TokenSet | null;
    try {
      next = await refresher.replaceRejected(request, owner, strategy.tokens, tokenSet.accessToken);
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

  /** The attempt's request with the credentials attached, and the secrets they make. */
  async #prepare(call: ApiCall, body: PreparedBody, tokenSet: TokenSet): Promise<Prepared> {
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
    const secrets = this.#secrets.get(attachedSecretValues(request, unattached, tokenSet, options, binding.secretParameters ?? []));
    return { method, request, unattached, options, secrets };
  }

  async #attempt(call: ApiCall, body: PreparedBody, tokenSet: TokenSet, inspect: boolean): Promise<Attempt> {
    const provider = this.provider;
    const binding = this.#binding;
    const { method, request, unattached, options, secrets } = await this.#prepare(call, body, tokenSet);
    const forms = secrets.forms;

    const exchange = new Exchange(provider, call.timeoutMs ?? this.timeoutMs, call.signal);
    try {
      exchange.checkCaller();
      const response = await send(request, body, exchange, this.#transport);
      const { status, statusText, headers } = response;
      scrubCredentials(headers, request, unattached, forms);

      if (binding.readResponse) {
        const raw = await readBuffered(response.body, this.maxBufferedResponseBytes, exchange, provider);
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
        const rejected = inspect && binding.isTokenRejected({ status: read.status, headers: read.headers, body: await inspectBody(read.body, read.headers) });
        const noBody = hasNoBody(method, read.status);
        const result = { status: read.status, statusText, headers: read.headers, body: noBody ? null : read.body, retried: false };
        return { rejected, result: await scrubResult(result, forms, provider) };
      }

      if (hasNoBody(method, status)) {
        response.body.resume();
        exchange.dispose();
        const rejected = inspect && binding.isTokenRejected({ status, headers });
        return { rejected, result: { status, statusText, headers, body: null, retried: false } };
      }

      const head: ApiResponseHead = { status, headers };
      let responseBody: Buffer | Readable = response.body;
      const declared = Number(headers.get('content-length') ?? NaN);
      if (inspect && status >= 400 && !(declared > INSPECT_LIMIT)) {
        let peek: ReadUpTo;
        try {
          peek = await readUpTo(response.body, INSPECT_LIMIT);
        } catch (cause) {
          throw exchange.translate(cause);
        }
        if (peek.complete) {
          exchange.dispose();
          responseBody = peek.buffer;
          head.body = await inspectBody(peek.buffer, headers);
        } else {
          responseBody = peek.rest;
        }
      }
      // From here the answer streams for as long as it takes; only the caller can stop it.
      exchange.stopTimer();
      const rejected = inspect && binding.isTokenRejected(head);
      return { rejected, result: await scrubResult({ status, statusText, headers, body: responseBody, retried: false }, forms, provider) };
    } catch (error) {
      exchange.dispose();
      throw error;
    }
  }
}

function discard(result: ApiCallResult): void {
  if (result.body instanceof Readable) result.body.destroy();
}
