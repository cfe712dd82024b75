/** The sandbox's signing keys, the JWKS publishing them, and the id_tokens signed with them (spoiled as `idTokenTamper` says). */
import { createHash } from 'node:crypto';
import type { JWTPayload } from 'jose';
import type { Grant } from '../engine.js';
import { reply, withFault, type SandboxReply } from '../server.js';
import { takeOidcFault, type CnblogsSandboxState, type SigningKey } from './options.js';

function halfHash(value: string): string {
  const digest = createHash('sha256').update(value, 'ascii').digest();
  return digest.subarray(0, 16).toString('base64url');
}

// jose ships as an ES module only; loaded on first use, so that requiring the sandbox needs no require(esm).
const jose = () => import('jose');

export async function newSigningKey(): Promise<SigningKey> {
  const { calculateJwkThumbprint, exportJWK, generateKeyPair } = await jose();
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
  const jwk = await exportJWK(publicKey);
  // IdentityServer's kids are upper-case hex certificate thumbprints; this one is derived from the key.
  const kid = Buffer.from(await calculateJwkThumbprint(jwk), 'base64url').toString('hex').slice(0, 40).toUpperCase();
  return { kid, privateKey, publicJwk: { ...jwk, kid, use: 'sig', alg: 'RS256' } };
}

/** Signs an id_token for `grant`, with `nonce`, and `c_hash` / `at_hash` of the code / access token given. */
export async function issueIdToken(state: CnblogsSandboxState, grant: Grant, extra: { nonce?: string; code?: string; accessToken?: string }): Promise<string> {
  const tamper = state.knobs.idTokenTamper;
  const now = Math.floor(Date.now() / 1000);
  const iat = tamper === 'expired' ? now - 3 * state.knobs.idTokenTtlSeconds - 600 : now;
  const claims: JWTPayload = {
    nbf: iat,
    exp: iat + state.knobs.idTokenTtlSeconds + (tamper === 'iat_future' ? 3600 : 0),
    iss: tamper === 'iss' ? `${state.issuer}/other-tenant` : state.issuer,
    aud: tamper === 'aud' ? 'some-other-client' : grant.clientId,
    // iat_future: valid nbf and exp, but issued an hour from now.
    iat: tamper === 'iat_future' ? iat + 3600 : iat,
    sub: grant.userId,
    auth_time: Number(grant.extra['authTime'] ?? iat),
    // As in the id_token the provider's document shows.
    idp: 'cnblogs_oauth',
    amr: ['authorization_code'],
  };
  if (extra.nonce !== undefined || tamper === 'nonce') claims['nonce'] = tamper === 'nonce' ? `${extra.nonce ?? ''}-not-yours` : extra.nonce;
  if (extra.code !== undefined) claims['c_hash'] = halfHash(extra.code);
  if (tamper === 'c_hash') claims['c_hash'] = halfHash(`${extra.code ?? ''}-another-code`);
  if (extra.accessToken !== undefined) claims['at_hash'] = halfHash(extra.accessToken);
  const key = state.keys[state.keys.length - 1]!;
  const { SignJWT } = await jose();
  const jwt = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
  if (tamper !== 'signature') return jwt;
  const [header, payload, signature] = jwt.split('.') as [string, string, string];
  const bytes = Buffer.from(signature, 'base64url');
  bytes[0] = bytes[0]! ^ 0xff;
  return `${header}.${payload}.${bytes.toString('base64url')}`;
}

export function jwks(state: CnblogsSandboxState): Promise<SandboxReply> {
  state.oidcCounters.jwks += 1;
  return withFault(takeOidcFault(state, 'jwks'), () => reply.json(200, { keys: state.keys.map((k) => k.publicJwk) }));
}
