import { ErrorCodes, OAuthKeeperError, type ErrorCode } from '../errors.js';

/**
 * The events of logins, API calls and the token store, beside the refresh events: small
 * generic hooks for metrics, traces and logs. No payload carries a token, a code, a state,
 * a session id, an owner key or a URL: only a provider name, outcomes, status numbers,
 * error codes and durations.
 */

/**
 * How a login ended: `refused` when the user or the browser caused it (denied at the
 * provider, a state mismatch, a missing cookie, the verify callback saying no — any 4xx),
 * `fault` when something failed that the user cannot fix (the provider, the token store,
 * the app's own code — any 5xx).
 */
export type LoginFailureOutcome = 'refused' | 'fault';

/** The error code an event reports: the package's typed codes, `aborted` (the caller went away) or `unexpected` (anything else thrown). */
export type EventErrorCode = ErrorCode | 'aborted' | 'unexpected';

export interface LoginEvents {
  /** A login completed: its tokens are stored, the browser is sent on. `durationMs` from the callback's arrival. */
  'login:success': [{ provider: string; durationMs: number }];
  /** A login failed, at its start or at its callback. `status` is the HTTP status it was answered with. */
  'login:failure': [{ provider: string; outcome: LoginFailureOutcome; code: EventErrorCode; status: number; durationMs: number }];
}

export interface ApiCallEvents {
  /**
   * A provider API call (`keeper.proxy()`, `req.oauthFetch`, `forOwner().fetch`) got its
   * answer's status and headers, or failed without one. `status` is the provider's status
   * (absent when there was no answer, then `code` says why); `retried` when the token was
   * refused, refreshed and the call sent again; `durationMs` until the answer's head,
   * a refresh and a retry included.
   */
  'api:call': [{ provider: string; status?: number; code?: EventErrorCode; retried: boolean; durationMs: number }];
}

export interface StoreEvents {
  /**
   * A token store operation failed (the request got `OAUTH_KEEPER_STORE_UNAVAILABLE`):
   * `reason` is `timeout` when the backend gave no answer within `timeoutMs`, else `error`.
   */
  'store:error': [{ operation: StoreOperation; reason: 'timeout' | 'error' }];
}

export type StoreOperation = 'read' | 'write' | 'touch' | 'remove';

/** The stable code of anything thrown, for an event: never its message. */
export function eventCode(error: unknown): EventErrorCode {
  if (error instanceof OAuthKeeperError) return error.code;
  if (error instanceof Error && error.name === 'AbortError') return 'aborted';
  return 'unexpected';
}

/** The `login:failure` payload of an error a login route answers with. */
export function loginFailure(provider: string, error: unknown, startedAt: number): LoginEvents['login:failure'][0] {
  const status = error instanceof OAuthKeeperError ? error.status : 500;
  const code = error instanceof OAuthKeeperError ? error.code : ErrorCodes.INTERNAL_ERROR;
  return { provider, outcome: status < 500 ? 'refused' : 'fault', code, status, durationMs: Date.now() - startedAt };
}

/** Where an API call's event goes: anything with a typed `emit`, such as `keeper.events`. */
interface ApiCallSink {
  emit(name: 'api:call', event: ApiCallEvents['api:call'][0]): boolean;
  listenerCount?(name: 'api:call'): number;
}

/**
 * Runs one API call and emits `api:call` when it settles, on `source.events` when the
 * source has them (a keeper's refresher; a stand-in in a test may not).
 */
export async function observeApiCall<T extends { status: number; retried: boolean }>(
  source: object,
  provider: string,
  call: () => Promise<T>,
): Promise<T> {
  const sink = (source as { events?: ApiCallSink }).events;
  // Nobody listening (no telemetry, no handler): no clock, no event, no extra promise per call.
  if (typeof sink?.emit !== 'function' || sink.listenerCount?.('api:call') === 0) return call();
  const started = Date.now();
  try {
    const result = await call();
    sink.emit('api:call', { provider, status: result.status, retried: result.retried, durationMs: Date.now() - started });
    return result;
  } catch (error) {
    sink.emit('api:call', { provider, code: eventCode(error), retried: false, durationMs: Date.now() - started });
    throw error;
  }
}
