import { createHash, randomBytes } from 'node:crypto';

/** 256 bits of randomness, base64url: for state, nonce, PKCE verifiers and lock owners. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** RFC 7636 S256 challenge of a verifier. */
export function codeChallengeS256(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}
