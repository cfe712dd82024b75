/** Checking cnblogs id_tokens with jose, and the error each failure maps to. */
import { createHash } from 'node:crypto';
import { decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { ErrorCodes, OAuthKeeperError, type ErrorCode } from '../../errors.js';
import type { CnblogsMetadata, RemoteKeys } from './discovery.js';
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

export interface IdTokenExpectations {
  channel: IdTokenChannel;
  /** The login's nonce; `undefined` skips the nonce check (refresh answers carry none). */
  nonce?: string;
  /** The authorization code, to check `c_hash` against. */
  code?: string;
  /** `c_hash` must be present (the hybrid front-channel id_token). */
  requireCodeHash?: boolean;
  /** The access token, to check `at_hash` against when present. */
  accessToken?: string;
}

const FAILURE_TEXT: Record<string, string> = {
  [ErrorCodes.ID_TOKEN_SIGNATURE_INVALID]: 'its signature does not verify with the provider\'s published keys',
  [ErrorCodes.ID_TOKEN_ISSUER_MISMATCH]: 'it was issued by another issuer (iss) than the configured one',
  [ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH]: 'it was issued to another client (aud) than clientID',
  [ErrorCodes.ID_TOKEN_EXPIRED]: 'it has expired (exp); check this server\'s clock, or start the login again',
  [ErrorCodes.ID_TOKEN_NONCE_MISMATCH]: 'its nonce is not the one of the login started in this browser; start the login again',
  [ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH]: 'its c_hash does not match the authorization code it came with',
};

export function idTokenError(code: ErrorCode, channel: IdTokenChannel, why?: string, cause?: unknown): OAuthKeeperError {
  const reason = why ?? FAILURE_TEXT[code] ?? 'it is not a valid id_token';
  // A bad callback is the request's fault (400); a bad answer from the token endpoint is the provider's (502).
  return new OAuthKeeperError(code, `The cnblogs id_token from the ${channel} was refused: ${reason}.`, {
    provider: PROVIDER,
    status: channel === 'callback' ? 400 : 502,
    ...(cause === undefined ? {} : { cause }),
  });
}

function mapJoseError(error: unknown, channel: IdTokenChannel): OAuthKeeperError {
  if (error instanceof joseErrors.JWTExpired) return idTokenError(ErrorCodes.ID_TOKEN_EXPIRED, channel, undefined, error);
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return idTokenError(ErrorCodes.ID_TOKEN_ISSUER_MISMATCH, channel, undefined, error);
    if (error.claim === 'aud') return idTokenError(ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH, channel, undefined, error);
    return idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, `its "${error.claim}" claim is ${error.reason === 'missing' ? 'missing' : 'not acceptable'}`, error);
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, undefined, error);
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, 'it is signed with a key (kid) the provider\'s JWKS does not hold', error);
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return idTokenError(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID, channel, 'it is signed with an algorithm the provider does not use', error);
  }
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid || !(error instanceof joseErrors.JOSEError) || /JSON Web Key Set/.test(error.message)) {
    return new OAuthKeeperError(
      ErrorCodes.PROVIDER_ERROR,
      'The cnblogs signing keys (JWKS) could not be loaded to check the id_token; it may work on a later try.',
      { provider: PROVIDER, status: 502, transient: true, cause: error },
    );
  }
  return idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'it is not a well-formed signed JWT', error);
}

/**
 * Checks one id_token with jose: signature against the provider's JWKS, `iss`, `aud`
 * (and `azp` with several audiences), `exp`, then `nonce`, `c_hash` and `at_hash`.
 * Returns its claims. Every failure has its own error code; no message carries the token.
 */
export async function verifyCnblogsIdToken(
  options: CnblogsOptions,
  metadata: CnblogsMetadata,
  keys: RemoteKeys,
  idToken: string,
  expect: IdTokenExpectations,
): Promise<JWTPayload> {
  const channel = expect.channel;
  let payload: JWTPayload;
  let alg: string;
  try {
    const verified = await jwtVerify(idToken, keys, {
      issuer: metadata.issuer,
      audience: options.clientID,
      algorithms: metadata.idTokenSigningAlgs,
      clockTolerance: options.clockToleranceSeconds ?? 60,
      requiredClaims: ['sub', 'exp', 'iat'],
    });
    payload = verified.payload;
    alg = verified.protectedHeader.alg;
  } catch (error) {
    throw mapJoseError(error, channel);
  }
  // jose checks exp and nbf but not iat: an id_token issued in the future is refused with the same tolerance.
  if (typeof payload.iat !== 'number' || payload.iat > Date.now() / 1000 + (options.clockToleranceSeconds ?? 60)) {
    throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'its iat (issued at) lies in the future beyond clockToleranceSeconds; check the clocks of this server and the provider');
  }
  if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload['azp'] !== options.clientID) {
    throw idTokenError(ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH, channel, 'it names several audiences and its azp is not clientID');
  }
  if (expect.nonce !== undefined && payload['nonce'] !== expect.nonce) {
    throw idTokenError(ErrorCodes.ID_TOKEN_NONCE_MISMATCH, channel);
  }
  const cHash = payload['c_hash'];
  if (cHash === undefined) {
    if (expect.requireCodeHash) throw idTokenError(ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH, channel, 'it has no c_hash, which a hybrid answer must carry');
  } else if (expect.code !== undefined && cHash !== oidcHalfHash(expect.code, alg)) {
    throw idTokenError(ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH, channel);
  }
  const atHash = payload['at_hash'];
  if (atHash !== undefined && expect.accessToken !== undefined && atHash !== oidcHalfHash(expect.accessToken, alg)) {
    throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, channel, 'its at_hash does not match the access token it came with');
  }
  return payload;
}

/** The `sub` of an id_token, decoded without verification; `undefined` when absent or unreadable. */
export function subjectOf(idToken: string | undefined): string | undefined {
  if (idToken === undefined) return undefined;
  try {
    const sub = decodeJwt(idToken).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}
