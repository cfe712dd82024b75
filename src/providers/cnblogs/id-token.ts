/**
 * What an id_token failure means: openid-client checks every id_token (signature against the
 * provider's JWKS, `iss`, `aud`/`azp`, `exp`, `nonce`, `c_hash`); this file names each failure
 * with its own error code, and adds the checks OpenID Connect asks for beyond those
 * (`iat` not in the future, `at_hash`, the same `sub` on every id_token of one login and
 * its refreshes).
 */
import { createHash } from 'node:crypto';
import type { ClientError } from 'openid-client';
import { ErrorCodes, OAuthKeeperError, type ErrorCode } from '../../errors.js';
import { PROVIDER, type CnblogsOptions } from './options.js';

/**
 * OpenID Connect §3.3.2.11: the base64url of the left half of the hash of `value`, the
 * hash being the one of the id_token's signing algorithm (SHA-256 for RS256).
 */
export function oidcHalfHash(value: string, alg = 'RS256'): string {
  const bits = alg === 'EdDSA' ? '512' : (/(256|384|512)$/.exec(alg)?.[1] ?? '256');
  const digest = createHash(`sha${bits}`).update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** Where an id_token came from: the callback (front channel) or the token response. */
export type IdTokenChannel = 'callback' | 'token response' | 'refresh response';

const FAILURE_TEXT: Record<string, string> = {
  [ErrorCodes.ID_TOKEN_SIGNATURE_INVALID]: 'its signature does not verify with the provider\'s published keys',
  [ErrorCodes.ID_TOKEN_ISSUER_MISMATCH]: 'it was issued by another issuer (iss) than the configured one',
  [ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH]: 'it was issued to another client (aud) than clientID',
  [ErrorCodes.ID_TOKEN_EXPIRED]: 'it has expired (exp); check this server\'s clock, or start the login again',
  [ErrorCodes.ID_TOKEN_NONCE_MISMATCH]: 'its nonce is not the one of the login started in this browser; start the login again',
  [ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH]: 'its c_hash does not match the authorization code it came with',
};

/** @internal */
export function idTokenError(code: ErrorCode, channel: IdTokenChannel, why?: string, cause?: unknown): OAuthKeeperError {
  const reason = why ?? FAILURE_TEXT[code] ?? 'it is not a valid id_token';
  // A bad callback is the request's fault (400); a bad answer from the token endpoint is the provider's (502).
  return new OAuthKeeperError(code, `The cnblogs id_token from the ${channel} was refused: ${reason}.`, {
    provider: PROVIDER,
    status: channel === 'callback' ? 400 : 502,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The claim an openid-client failure is about, from its cause (`{ claim }`) or its message (`JWT "x" ... claim missing`). */
function claimOf(failure: Error): string | undefined {
  const detail = failure.cause;
  if (typeof detail === 'object' && detail !== null && typeof (detail as { claim?: unknown }).claim === 'string') return (detail as { claim: string }).claim;
  return /"(\w+)" \([^)]*\) claim/.exec(failure.message)?.[1] ?? /ID Token "(\w+)"/.exec(failure.message)?.[1];
}

const CLAIM_CODES: Record<string, ErrorCode> = {
  iss: ErrorCodes.ID_TOKEN_ISSUER_MISMATCH,
  aud: ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH,
  azp: ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH,
  nonce: ErrorCodes.ID_TOKEN_NONCE_MISMATCH,
  c_hash: ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH,
  exp: ErrorCodes.ID_TOKEN_EXPIRED,
};

/**
 * @internal
 * An openid-client id_token failure as our typed error, or `undefined` when the failure is
 * not about an id_token. Messages never carry the token.
 */
export function idTokenFailure(error: ClientError, channel: IdTokenChannel): OAuthKeeperError | undefined {
  const failure = error.cause instanceof Error ? error.cause : error;
  const message = failure.message;
  switch (error.code) {
    case 'OAUTH_KEY_SELECTION_FAILED':
      return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, 'it is signed with a key (kid) the provider\'s JWKS does not hold', error);
    case 'OAUTH_UNSUPPORTED_OPERATION':
      if (/token_type/.test(message)) return undefined;
      return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, 'it is signed with an algorithm the provider does not use', error);
    case 'OAUTH_PARSE_ERROR':
      return idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'it is not a well-formed signed JWT', error);
    case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
    case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED': {
      const claim = claimOf(failure);
      const code = claim === undefined ? undefined : CLAIM_CODES[claim];
      return code ? idTokenError(code, channel, undefined, error) : idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, `its "${claim ?? '?'}" claim is not acceptable`, error);
    }
    case 'OAUTH_INVALID_RESPONSE': {
      if (/signature verification failed/.test(message)) return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, undefined, error);
      if (/"alg" header/.test(message)) return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, 'it is signed with an algorithm the provider does not use', error);
      if (/Invalid JWT|JWT (Header|Payload)/.test(message)) return idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'it is not a well-formed signed JWT', error);
      const claim = claimOf(failure);
      if (claim === undefined || !/JWT|ID Token/.test(message)) return undefined;
      if (/missing|must be|claim value/.test(message) && claim === 'c_hash') {
        return idTokenError(ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH, channel, 'it has no c_hash, which a hybrid answer must carry', error);
      }
      if (claim === 'nonce') return idTokenError(ErrorCodes.ID_TOKEN_NONCE_MISMATCH, channel, undefined, error);
      return idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, `its "${claim}" claim is ${/missing/.test(message) ? 'missing' : 'not acceptable'}`, error);
    }
    default:
      return undefined;
  }
}

/** The JSON object of a JWS's header (0) or payload (1), read without verifying anything; `undefined` when unreadable. */
function jwtPart(jws: string, index: 0 | 1): Record<string, unknown> | undefined {
  const part = jws.split('.')[index];
  if (part === undefined || !/^[\w-]+$/.test(part)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @internal
 * The checks beyond openid-client's, on an id_token it has already verified: `iat` not in the
 * future (beyond the clock tolerance), and `at_hash` / `c_hash` when present (openid-client checks
 * `c_hash` on the front channel only; a token response's id_token that carries one must match too).
 */
export function checkIdTokenExtras(
  options: CnblogsOptions,
  idToken: string,
  channel: IdTokenChannel,
  made: { accessToken?: string; code?: string } = {},
): Record<string, unknown> {
  const header = jwtPart(idToken, 0);
  const payload = jwtPart(idToken, 1);
  if (!header || !payload) throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'it is not a well-formed signed JWT');
  const tolerance = options.clockToleranceSeconds ?? 60;
  if (typeof payload.iat !== 'number' || payload.iat > Date.now() / 1000 + tolerance) {
    throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'its iat (issued at) lies in the future beyond clockToleranceSeconds; check the clocks of this server and the provider');
  }
  const alg = typeof header.alg === 'string' ? header.alg : 'RS256';
  if (payload['at_hash'] !== undefined && made.accessToken !== undefined && payload['at_hash'] !== oidcHalfHash(made.accessToken, alg)) {
    throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'its at_hash does not match the access token it came with');
  }
  if (payload['c_hash'] !== undefined && made.code !== undefined && payload['c_hash'] !== oidcHalfHash(made.code, alg)) {
    throw idTokenError(ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH, channel);
  }
  return payload;
}

/** @internal The `sub` of an id_token, decoded without verification; `undefined` when absent or unreadable. */
export function subjectOf(idToken: string | undefined): string | undefined {
  if (idToken === undefined) return undefined;
  const sub = jwtPart(idToken, 1)?.['sub'];
  return typeof sub === 'string' ? sub : undefined;
}
