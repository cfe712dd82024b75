/**
 * The `open.auth.token.app` grant: there is no token endpoint and no client secret, so
 * code exchange and refresh are a signed gateway call whose answer is signed too.
 */
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import { normalizeTokenResponse, type TokenSet } from '../../lib/token-set.js';
import type { Grant } from '../../provider/types.js';
import { postGatewayCall, throwIfGatewayError } from './gateway.js';
import { SOP_NAME, sopName, type SopOptions } from './options.js';
import { nodeText } from './response-node.js';

/** The gateway method that exchanges a code or a refresh token. */
export const SOP_TOKEN_METHOD = 'open.auth.token.app';

/** Node fields that describe the gateway answer itself rather than the token set. */
const ENVELOPE_FIELDS: ReadonlySet<string> = new Set([
  'request_id',
  'code',
  'msg',
  'sub_code',
  'sub_msg',
  'app_auth_token',
  'app_refresh_token',
  'expires_in',
  're_expires_in',
]);

/** The auth service's answers that say the code or refresh token itself is no good; nothing else deletes a stored token. */
const SOP_GRANT_INVALID = new Set(['invalid_grant', 'expired_token']);

/** Maps a verified `open.auth.token.app` node to a token set, or throws the typed failure. */
export function readSopTokenNode(
  node: Record<string, unknown>,
  provider: string = SOP_NAME,
  now = Date.now(),
  secrets: ReadonlyArray<string | undefined> = [],
): TokenSet {
  throwIfGatewayError(provider, SOP_TOKEN_METHOD, node, secrets);
  const error = nodeText(node['error']);
  if (error !== undefined) {
    throw new OAuthKeeperError(ErrorCodes.TOKEN_ENDPOINT_FAILED, `The ${provider} auth service refused ${SOP_TOKEN_METHOD} with "${error}".`, {
      provider,
      oauthError: error,
      grantInvalid: SOP_GRANT_INVALID.has(error),
      details: { description: node['error_description'], requestId: node['request_id'] },
    });
  }
  const body: Record<string, unknown> = {
    access_token: node['app_auth_token'],
    token_type: 'app_auth_token',
    expires_in: node['expires_in'],
    refresh_token_expires_in: node['re_expires_in'],
  };
  if (node['app_refresh_token'] !== undefined) body['refresh_token'] = node['app_refresh_token'];
  for (const [key, value] of Object.entries(node)) if (!ENVELOPE_FIELDS.has(key)) body[key] = value;
  const set = normalizeTokenResponse(body, { now, nonPositiveLifetimeMeansNever: true });
  if (typeof set === 'string') {
    const why = set.replace('access_token', 'app_auth_token').replace('refresh_token_expires_in', 're_expires_in').replace('refresh_token', 'app_refresh_token');
    throw new OAuthKeeperError(ErrorCodes.TOKEN_RESPONSE_MALFORMED, `The ${provider} answer to ${SOP_TOKEN_METHOD} is a success, but ${why}.`, {
      provider,
      details: { requestId: node['request_id'] },
    });
  }
  return set;
}

/**
 * Code exchange or refresh. Whatever fails — the gateway's refusal, an unsigned or badly
 * signed answer, the network — throws a typed error that is not `grantInvalid`: only the
 * auth service saying, in a verified answer, that the code or refresh token is no good
 * may cost the stored tokens.
 */
export async function requestToken(options: SopOptions, grant: Grant): Promise<TokenSet> {
  const secret = grant.grantType === 'authorization_code' ? grant.code : grant.refreshToken;
  const bizContent = JSON.stringify(
    grant.grantType === 'authorization_code'
      ? { grant_type: 'authorization_code', code: grant.code }
      : { grant_type: 'refresh_token', refresh_token: grant.refreshToken },
  );
  const { node } = await postGatewayCall(sopName(options), 'token', options, SOP_TOKEN_METHOD, bizContent, { secrets: [secret] });
  return readSopTokenNode(node, sopName(options), Date.now(), [secret]);
}
