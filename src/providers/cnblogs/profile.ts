/** The cnblogs userinfo answer, checked against the id_token and mapped to a profile. */
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import type { TokenSet } from '../../lib/token-set.js';
import { fetchUserInfo } from '../../provider/define.js';
import type { Profile } from '../../provider/types.js';
import { PROVIDER, type CnblogsOptions } from './options.js';

/** Maps the userinfo claims (`sub`, `name`, `picture`, `website`, ...) to a profile. */
export function cnblogsProfile(info: Record<string, unknown>): Profile {
  const profile: Profile = { provider: PROVIDER, id: typeof info['sub'] === 'string' ? info['sub'] : String(info['sub'] ?? ''), raw: info };
  if (typeof info['name'] === 'string') profile.displayName = info['name'];
  if (typeof info['email'] === 'string') profile.emails = [{ value: info['email'] }];
  if (typeof info['picture'] === 'string' && info['picture'].length > 0) profile.photos = [{ value: info['picture'] }];
  return profile;
}

/** Fetches userinfo with the access token and maps it; refuses an answer about another user than `claims.sub`. */
export async function fetchCnblogsProfile(
  options: CnblogsOptions,
  userinfoEndpoint: string,
  tokenSet: TokenSet,
  claims: Record<string, unknown> | undefined,
): Promise<Profile> {
  const info = await fetchUserInfo(PROVIDER, userinfoEndpoint, tokenSet, options);
  // OpenID Connect §5.3.2: userinfo must be about the user the id_token names.
  if (claims?.['sub'] !== undefined && info['sub'] !== claims['sub']) {
    throw new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, 'The cnblogs userinfo answer is about another user (sub) than the id_token.', {
      provider: PROVIDER,
    });
  }
  return cnblogsProfile(info);
}
