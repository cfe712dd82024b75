// CommonJS with the old `moduleResolution: node`: every subpath resolves through typesVersions.
import { oauthKeeper } from 'oauth-keeper';
import { startOAuth2Sandbox } from 'oauth-keeper/sandbox';
import { callSopGateway } from 'oauth-keeper/providers/sop';
import { diProvider } from 'oauth-keeper/providers/di';
import { cnblogsProvider } from 'oauth-keeper/providers/cnblogs';
import { standardTokenRequest } from 'oauth-keeper/provider';
void [oauthKeeper, startOAuth2Sandbox, callSopGateway, diProvider, cnblogsProvider, standardTokenRequest];
