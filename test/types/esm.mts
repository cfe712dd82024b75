// The ESM entry points carry the same types as the CommonJS ones; every entry point resolves.
import { oauthKeeper, OAuthKeeperStrategy, type OAuthToken } from 'oauth-keeper';
import { startOAuth2Sandbox } from 'oauth-keeper/sandbox';
import { standardTokenRequest } from 'oauth-keeper/provider';
import { diProvider } from 'oauth-keeper/providers/di';
import { cnblogsProvider } from 'oauth-keeper/providers/cnblogs';
import { callSopGateway } from 'oauth-keeper/providers/sop';

const make: typeof oauthKeeper = oauthKeeper;
const token: OAuthToken | undefined = undefined;
void [make, OAuthKeeperStrategy, startOAuth2Sandbox, token, standardTokenRequest, diProvider, cnblogsProvider, callSopGateway];
