/**
 * Every error the package raises is an {@link OAuthKeeperError} with a stable `code`
 * (one of {@link ErrorCodes}), the HTTP `status` a route should answer with, and an
 * optional `cause`. Messages name the fix and never contain tokens or secrets; raw
 * provider responses are kept on non-enumerable properties so they never reach logs.
 */
export const ErrorCodes = Object.freeze({
  CONFIGURATION_INVALID: 'OAUTH_KEEPER_CONFIGURATION_INVALID',
  MIDDLEWARE_NOT_MOUNTED: 'OAUTH_KEEPER_MIDDLEWARE_NOT_MOUNTED',
  SESSION_NOT_AVAILABLE: 'OAUTH_KEEPER_SESSION_NOT_AVAILABLE',
  UNKNOWN_PROVIDER: 'OAUTH_KEEPER_UNKNOWN_PROVIDER',
  STATE_MISSING: 'OAUTH_KEEPER_STATE_MISSING',
  STATE_MISMATCH: 'OAUTH_KEEPER_STATE_MISMATCH',
  SESSION_COOKIE_MISSING: 'OAUTH_KEEPER_SESSION_COOKIE_MISSING',
  CALLBACK_INVALID: 'OAUTH_KEEPER_CALLBACK_INVALID',
  PROVIDER_ERROR: 'OAUTH_KEEPER_PROVIDER_ERROR',
  VERIFY_FAILED: 'OAUTH_KEEPER_VERIFY_FAILED',
  TOKEN_ENDPOINT_FAILED: 'OAUTH_KEEPER_TOKEN_ENDPOINT_FAILED',
  TOKEN_RESPONSE_MALFORMED: 'OAUTH_KEEPER_TOKEN_RESPONSE_MALFORMED',
  ID_TOKEN_INVALID: 'OAUTH_KEEPER_ID_TOKEN_INVALID',
  ID_TOKEN_NONCE_MISMATCH: 'OAUTH_KEEPER_ID_TOKEN_NONCE_MISMATCH',
  ID_TOKEN_AUDIENCE_MISMATCH: 'OAUTH_KEEPER_ID_TOKEN_AUDIENCE_MISMATCH',
  ID_TOKEN_ISSUER_MISMATCH: 'OAUTH_KEEPER_ID_TOKEN_ISSUER_MISMATCH',
  ID_TOKEN_EXPIRED: 'OAUTH_KEEPER_ID_TOKEN_EXPIRED',
  ID_TOKEN_SIGNATURE_INVALID: 'OAUTH_KEEPER_ID_TOKEN_SIGNATURE_INVALID',
  ID_TOKEN_CODE_HASH_MISMATCH: 'OAUTH_KEEPER_ID_TOKEN_CODE_HASH_MISMATCH',
  RESPONSE_SIGNATURE_INVALID: 'OAUTH_KEEPER_RESPONSE_SIGNATURE_INVALID',
  AUTHORIZATION_REQUIRED: 'OAUTH_KEEPER_AUTHORIZATION_REQUIRED',
  REAUTHORIZATION_REQUIRED: 'OAUTH_KEEPER_REAUTHORIZATION_REQUIRED',
  REFRESH_UNAVAILABLE: 'OAUTH_KEEPER_REFRESH_UNAVAILABLE',
  TOKEN_DECRYPTION_FAILED: 'OAUTH_KEEPER_TOKEN_DECRYPTION_FAILED',
  STORE_UNAVAILABLE: 'OAUTH_KEEPER_STORE_UNAVAILABLE',
  CROSS_ORIGIN_REQUEST: 'OAUTH_KEEPER_CROSS_ORIGIN_REQUEST',
  API_REQUEST_INVALID: 'OAUTH_KEEPER_API_REQUEST_INVALID',
  API_UPSTREAM_FAILED: 'OAUTH_KEEPER_API_UPSTREAM_FAILED',
  API_UPSTREAM_TIMEOUT: 'OAUTH_KEEPER_API_UPSTREAM_TIMEOUT',
  /** Something threw that oauth-keeper did not expect (a bug, or an app hook's own error); see `cause`. */
  INTERNAL_ERROR: 'OAUTH_KEEPER_INTERNAL_ERROR',
} as const);

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface OAuthKeeperErrorOptions {
  status?: number;
  cause?: unknown;
  /** Provider name the error is about, when there is one. */
  provider?: string;
  /** OAuth error code the provider answered with (`invalid_grant`, `access_denied`, ...). */
  oauthError?: string;
  /** True when trying again later may succeed (network, timeout, 5xx). */
  transient?: boolean;
  /**
   * True only when the provider said the grant itself — the code, or the refresh token —
   * is invalid, expired or revoked (`invalid_grant` and the provider's equivalents). Only
   * such an answer makes a refresh delete the stored tokens; faults never do.
   */
  grantInvalid?: boolean;
  /** Seconds after which trying again may succeed, when known (a provider's `Retry-After`). */
  retryAfter?: number;
  /** Anything else worth keeping for debugging; stored non-enumerable so it never reaches logs. */
  details?: Record<string, unknown>;
}

const DEFAULT_STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.CONFIGURATION_INVALID]: 500,
  [ErrorCodes.MIDDLEWARE_NOT_MOUNTED]: 500,
  [ErrorCodes.SESSION_NOT_AVAILABLE]: 500,
  [ErrorCodes.UNKNOWN_PROVIDER]: 404,
  [ErrorCodes.STATE_MISSING]: 400,
  [ErrorCodes.STATE_MISMATCH]: 400,
  [ErrorCodes.SESSION_COOKIE_MISSING]: 400,
  [ErrorCodes.CALLBACK_INVALID]: 400,
  [ErrorCodes.PROVIDER_ERROR]: 502,
  [ErrorCodes.INTERNAL_ERROR]: 500,
  [ErrorCodes.VERIFY_FAILED]: 500,
  [ErrorCodes.TOKEN_ENDPOINT_FAILED]: 502,
  [ErrorCodes.TOKEN_RESPONSE_MALFORMED]: 502,
  [ErrorCodes.RESPONSE_SIGNATURE_INVALID]: 502,
  [ErrorCodes.ID_TOKEN_INVALID]: 502,
  [ErrorCodes.ID_TOKEN_NONCE_MISMATCH]: 502,
  [ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH]: 502,
  [ErrorCodes.ID_TOKEN_ISSUER_MISMATCH]: 502,
  [ErrorCodes.ID_TOKEN_EXPIRED]: 502,
  [ErrorCodes.ID_TOKEN_SIGNATURE_INVALID]: 502,
  [ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH]: 502,
  [ErrorCodes.AUTHORIZATION_REQUIRED]: 401,
  [ErrorCodes.REAUTHORIZATION_REQUIRED]: 401,
  [ErrorCodes.REFRESH_UNAVAILABLE]: 503,
  [ErrorCodes.TOKEN_DECRYPTION_FAILED]: 500,
  [ErrorCodes.STORE_UNAVAILABLE]: 503,
  [ErrorCodes.CROSS_ORIGIN_REQUEST]: 403,
  [ErrorCodes.API_REQUEST_INVALID]: 400,
  [ErrorCodes.API_UPSTREAM_FAILED]: 502,
  [ErrorCodes.API_UPSTREAM_TIMEOUT]: 504,
};

export class OAuthKeeperError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly provider?: string;
  readonly oauthError?: string;
  readonly transient: boolean;
  readonly grantInvalid: boolean;
  readonly retryAfter?: number;
  declare readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: OAuthKeeperErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OAuthKeeperError';
    this.code = code;
    this.status = options.status ?? DEFAULT_STATUS[code] ?? 500;
    this.transient = options.transient ?? false;
    this.grantInvalid = options.grantInvalid ?? false;
    if (options.retryAfter !== undefined) this.retryAfter = options.retryAfter;
    if (options.provider !== undefined) this.provider = options.provider;
    if (options.oauthError !== undefined) this.oauthError = options.oauthError;
    if (options.details !== undefined) {
      Object.defineProperty(this, 'details', { value: options.details, enumerable: false });
    }
  }

  /** A body that is safe to send to a client: no cause, no details, no stack. */
  toJSON(): { error: ErrorCode; message: string; provider?: string; oauthError?: string } {
    return {
      error: this.code,
      message: this.message,
      ...(this.provider === undefined ? {} : { provider: this.provider }),
      ...(this.oauthError === undefined ? {} : { oauthError: this.oauthError }),
    };
  }
}

export function isOAuthKeeperError(value: unknown): value is OAuthKeeperError {
  return value instanceof OAuthKeeperError;
}

/** Thrown at construction when options are wrong; the message says which option and how to fix it. */
export function configurationError(message: string): OAuthKeeperError {
  return new OAuthKeeperError(ErrorCodes.CONFIGURATION_INVALID, message);
}
