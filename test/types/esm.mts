// The ESM entry points carry the same types as the CommonJS ones.
import { oauthKeeper, OAuthKeeperStrategy, type OAuthToken } from 'oauth-keeper';
import { startOAuth2Sandbox } from 'oauth-keeper/sandbox';

const make: typeof oauthKeeper = oauthKeeper;
const token: OAuthToken | undefined = undefined;
void [make, OAuthKeeperStrategy, startOAuth2Sandbox, token];
